"""scoring/live.py: the live boards in Redis equal the SQL boards (scoring.boards), whatever the order,
duplication or timing of bumps, across rebuilds, delistings and period boundaries; rebuild, journal,
reconciliation and the `rebuild-boards` command."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import boards, live, periods
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts import redemption, survey
from scoring.models import Entry, Station, Talent
from scoring.periods import Period
from scoring.ranking import Ranked
from talenthome.servers import RedisServer
from tests import factories as f
from tests.conftest import new_sqlite_database
from tests.scoring import builders as b

Sessions = async_sessionmaker[AsyncSession]
NOW = b.local(2027, 6, 1, 12)

# Instants around the boundaries that matter: years and months in Asia/Shanghai, an extension's days.
INSTANTS = [b.local(2025, 12, 31, 23, 59), b.local(2026, 1, 1, 0, 0), b.local(2026, 1, 1, 7, 30),
            b.local(2026, 1, 31, 23, 59, 59), b.local(2026, 2, 1), b.local(2026, 6, 30, 16, 30),
            b.local(2026, 12, 31, 23, 30), b.local(2027, 1, 1, 7, 30), b.local(2027, 1, 9, 12),
            b.local(2027, 1, 11, 0, 0), b.local(2027, 1, 11, 0, 1), b.local(2027, 3, 3, 3)]


def lines(board: Sequence[Ranked]) -> list[tuple[int, str, int, datetime | None]]:
    return [(r.rank, r.code, r.points, r.standing.reached_at) for r in board]


async def assert_equal(sessions: Sessions, redis: Any, now: datetime = NOW) -> None:
    async with sessions() as s:
        station = [Period("total", "all")] + [Period("year", str(y)) for y in (2025, 2026, 2027)] + \
            [Period("month", m) for m in ("2025-12", "2026-01", "2026-02", "2026-06", "2026-07", "2026-12",
                                          "2027-01", "2027-03")]
        for p in station:
            assert lines(await live.station_board(s, redis, p, now=now)) == \
                lines(await boards.station_board(s, p, now=now)), p
        for p in [Period("total", "all")] + [Period("year", str(y)) for y in (2025, 2026, 2027)]:
            assert lines(await live.talent_board(s, redis, p)) == lines(await boards.talent_board(s, p)), p
        for limit in (1, 2, 3):
            p = Period("total", "all")
            assert lines(await live.talent_board(s, redis, p, limit=limit)) == \
                lines(await boards.talent_board(s, p, limit=limit))


async def bump_entries(sessions: Sessions, redis: Any, entries: Sequence[Entry]) -> None:
    async with sessions() as s:
        bumps = await live.plan(s, list(entries))
    await live.bump(redis, bumps)


async def town(sessions: Sessions) -> tuple[list[Station], list[Talent]]:
    async with transaction(sessions) as s:
        sts = [await f.station(s, "A1", certified_on=date(2020, 3, 1)),
               await f.station(s, "B2", certified_on=date(2025, 8, 1)),  # eligible from 2026
               await f.station(s, "C3", certified_on=date(2026, 5, 1)),  # eligible from 2027
               await f.station(s, "D4", certified_on=date(2019, 1, 1))]
        await b.extension(s, sts[0], 2026, 10)  # 2026 for A1 runs to 2027-01-11 local
        tls = [await f.talent(s, f"P{i}") for i in range(4)]
    return sts, tls


# -- the property --------------------------------------------------------------------------------------

OPS = st.lists(st.one_of(
    st.tuples(st.just("visit"), st.integers(0, 3), st.integers(0, 3), st.integers(0, len(INSTANTS) - 1)),
    st.tuples(st.just("void"), st.integers(0, 10_000)),
    st.tuples(st.just("survey"), st.integers(0, 3), st.sampled_from([2026, 2027]), st.integers(-20, 20)),
    st.tuples(st.just("redeem"), st.integers(0, 3)),
    st.tuples(st.just("flush"), st.integers(0, 1_000)),
    st.tuples(st.just("rebuild")),
    st.tuples(st.just("delist"), st.integers(0, 3)),
), min_size=1, max_size=30)


async def scenario(url: str, redis_url: str, ops: list[tuple[Any, ...]]) -> None:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    redis = aioredis.from_url(redis_url)
    try:
        await redis.flushall()
        sts, tls = await town(sessions)
        await live.rebuild(sessions, redis)
        pending: list[Entry] = []  # posted, not yet bumped (a worker between commit and bump)
        rng = random.Random(len(ops))
        gift = None
        seen: set[tuple[int, int, date]] = set()
        for op in ops:
            if op[0] == "visit":
                credit = (op[1], op[2], periods.local_day(INSTANTS[op[3]]))
                if credit in seen:
                    continue  # one accepted visit per talent, station and day: the bot rejects the second
                seen.add(credit)
            async with transaction(sessions) as s:
                if op[0] == "visit":
                    _, t, stn, i = op
                    v = await f.visit(s, tls[t], sts[stn], INSTANTS[i] + timedelta(seconds=t))
                    pending += await b.credited(s, v)
                elif op[0] == "void":
                    ids = (await s.scalars(select(Entry.id).where(
                        Entry.reverses_id.is_(None), Entry.fact_kind != "redemption").order_by(Entry.id))).all()
                    if ids:
                        pending += await b.reversed_now(s, [ids[op[1] % len(ids)]])
                elif op[0] == "survey":
                    sv = await b.survey(s, sts[op[1]], op[2], op[3])
                    pending += b.written(await survey.apply(s, sv.id, now=NOW))
                elif op[0] == "redeem":
                    gift = gift or await b.gift(s, cost=1)
                    red = await b.redemption(s, tls[op[1]], gift)
                    pending += b.written(await redemption.apply(s, red.id, now=INSTANTS[5]))
                elif op[0] == "delist":
                    st_ = await s.get(Station, sts[op[1]].id)
                    assert st_ is not None
                    st_.status = "delisted"
            if op[0] == "flush" and pending:  # some pending bumps, in any order, some twice
                rng.shuffle(pending)
                k = op[1] % len(pending) + 1
                await bump_entries(sessions, redis, pending[:k] + pending[:k // 2])
                pending = pending[k:]
            elif op[0] == "rebuild":
                await live.rebuild(sessions, redis)  # counts the pending ones; bumping them later is a no-op
        await bump_entries(sessions, redis, pending + pending[:2])
        await assert_equal(sessions, redis)
    finally:
        await redis.aclose()
        await engine.dispose()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_live_boards_equal_sql_boards(ops: list[tuple[Any, ...]], sqlite_template: str, tmp_path: Any,
                                      redis_server: RedisServer) -> None:
    url = new_sqlite_database(sqlite_template, str(tmp_path))
    asyncio.run(scenario(url, redis_server.url, ops))


# -- examples ------------------------------------------------------------------------------------------


async def test_periods_eligibility_extension_and_ties(sessions: Sessions, redis: Any) -> None:
    sts, tls = await town(sessions)
    await live.rebuild(sessions, redis)
    posted: list[Entry] = []
    async with transaction(sessions) as s:
        for t, stn, at in [(0, 0, b.local(2027, 1, 5, 9)),     # A1: inside its 2026 extension
                           (1, 1, b.local(2025, 12, 20, 9)),   # B2: before it is eligible
                           (1, 1, b.local(2026, 3, 1, 9)),
                           (2, 3, b.local(2026, 2, 1, 9)),     # D4
                           (3, 0, b.local(2026, 3, 1, 10)),
                           (0, 2, b.local(2026, 9, 1, 9))]:    # C3: certified in 2026
            v = await f.visit(s, tls[t], sts[stn], at)
            posted += await b.credited(s, v)
    await bump_entries(sessions, redis, posted)
    await assert_equal(sessions, redis)
    async with sessions() as s:
        y2026 = await live.station_board(s, redis, Period("year", "2026"), now=NOW)
        y2027 = await live.station_board(s, redis, Period("year", "2027"), now=NOW)
        total = await live.station_board(s, redis, Period("total", "all"), now=NOW)
        standing = await live.talent_standing(redis, tls[0].id, Period("total", "all"))
    # A1's check-in of 2027-01-05 is inside its 2026 extension; D4 reached 1 point before B2 did
    assert [(r.rank, r.code, r.points) for r in y2026] == [(1, "A1", 2), (2, "D4", 1), (2, "B2", 1)]
    assert [(r.rank, r.code, r.points) for r in y2027] == [(1, "A1", 0), (1, "B2", 0), (1, "C3", 0), (1, "D4", 0)]
    # B2's check-in before its eligibility and C3's of 2026 are not on the total board
    assert [(r.code, r.points) for r in total] == [("A1", 2), ("D4", 1), ("B2", 1), ("C3", 0)]
    assert standing == (1, 2)


async def test_delisted_stations_leave_and_reads_fall_back_to_sql(sessions: Sessions, redis: Any) -> None:
    sts, tls = await town(sessions)
    async with transaction(sessions) as s:
        v = await f.visit(s, tls[0], sts[3], b.local(2026, 6, 1))
        entries = await b.credited(s, v)
    async with sessions() as s:  # not built yet: the SQL board answers
        assert not await live.is_built(redis)
        assert [r.code for r in await live.station_board(s, redis, Period("month", "2026-06"), now=NOW)
                if r.points] == ["D4"]
    assert (await live.bump(redis, await _plan(sessions, entries))).unbuilt == 2  # counted by the next rebuild
    await live.rebuild(sessions, redis)
    await assert_equal(sessions, redis)
    async with transaction(sessions) as s:
        (await s.get(Station, sts[3].id)).status = "delisted"  # type: ignore[union-attr]
    await assert_equal(sessions, redis)
    async with sessions() as s:
        assert "D4" not in [r.code for r in await live.station_board(s, redis, Period("total", "all"), now=NOW)]


async def _plan(sessions: Sessions, entries: Sequence[Entry]) -> list[live.Bump]:
    async with sessions() as s:
        return await live.plan(s, list(entries))


async def test_entries_bumped_during_a_rebuild_are_neither_lost_nor_doubled(
        sessions: Sessions, redis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sts, tls = await town(sessions)
    posted: list[Entry] = []
    async with transaction(sessions) as s:
        for i in range(3):
            v = await f.visit(s, tls[i], sts[0], b.local(2026, 5, 1 + i))
            posted += await b.credited(s, v)
    await live.rebuild(sessions, redis)
    real = live.read_snapshot

    async def snapshot_then_traffic(conn: Any) -> live.Snapshot:
        snap = await real(conn)
        # while the rebuild writes: new entries committed and bumped, old ones bumped again
        more: list[Entry] = []
        async with transaction(sessions) as s:
            for i in range(3):
                v = await f.visit(s, tls[i], sts[1], b.local(2026, 5, 10 + i))
                more += await b.credited(s, v)
        await bump_entries(sessions, redis, more + posted)
        return snap

    monkeypatch.setattr(live, "read_snapshot", snapshot_then_traffic)
    rebuilt = await live.rebuild(sessions, redis)
    assert rebuilt is not None and rebuilt.entries == 6 and rebuilt.replayed == 6
    await assert_equal(sessions, redis)
    assert not await redis.exists(live.REBUILDING) and not await redis.exists(live.JOURNAL)


async def test_reconcile_logs_and_repairs_drift(sessions: Sessions, redis: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    sts, tls = await town(sessions)
    async with transaction(sessions) as s:
        v = await f.visit(s, tls[0], sts[0], b.local(2027, 5, 20))
        entries = await b.credited(s, v)
    await live.rebuild(sessions, redis)
    assert (await live.reconcile(sessions, redis, now=NOW)).drift == []
    await redis.zincrby(live.board_key("station", Period("month", "2027-05")), 5, str(sts[0].id))
    await redis.zrem(live.board_key("talent", Period("total", "all")), str(tls[0].id))
    result = await live.reconcile(sessions, redis, now=NOW)
    assert {(d.board, d.account_id) for d in result.drift} == {
        (live.board_key("station", Period("month", "2027-05")), sts[0].id),
        (live.board_key("talent", Period("total", "all")), tls[0].id)}
    assert result.rebuilt is not None and "drift" in caplog.text
    await assert_equal(sessions, redis)
    assert (await live.bump(redis, await _plan(sessions, entries))).already == 2


def test_marker_bitmaps_match_redis_bit_order() -> None:
    islands = [(1, 3), (8, 8), (15, 17), ((1 << live.SHARD_BITS) - 2, (1 << live.SHARD_BITS) + 1)]
    maps = live.marker_bitmaps(islands)
    ids = {i for a, z in islands for i in range(a, z + 1)}
    for i in [*ids, 0, 4, 7, 9, 14, 18, 1 << 20]:
        key, bit = live.seen_bit(i)
        buf = maps.get(key, b"")
        got = len(buf) > bit // 8 and bool(buf[bit // 8] & (0x80 >> (bit % 8)))
        assert got == (i in ids), i


def test_rebuild_boards_command(sqlite_url: str, redis_server: RedisServer, tmp_path: Any,
                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from talenthome.cli import main

    async def seed() -> None:
        engine = make_engine(sqlite_url)
        sessions = make_sessionmaker(engine)
        _, tls = await town(sessions)
        async with transaction(sessions) as s:
            sts = (await s.scalars(select(Station).order_by(Station.id))).all()
            for i in range(5):
                v = await f.visit(s, tls[i % 4], sts[i % 4], b.local(2026, 4, 1 + i))
                await b.credited(s, v)
        await engine.dispose()
        client = aioredis.from_url(redis_server.url)
        await client.flushall()
        await client.aclose()

    asyncio.run(seed())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main(["rebuild-boards"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rebuilt ") and "from 10 ledger entries" in out and " s (read " in out

    async def check() -> None:
        engine = make_engine(sqlite_url)
        client = aioredis.from_url(redis_server.url)
        try:
            await assert_equal(make_sessionmaker(engine), client)
        finally:
            await client.aclose()
            await engine.dispose()

    asyncio.run(check())
    assert os.listdir(tmp_path) == [] or "var" not in os.listdir(tmp_path)


async def test_an_extension_granted_later_moves_counted_entries(sessions: Sessions, redis: Any) -> None:
    sts, tls = await town(sessions)
    async with transaction(sessions) as s:
        v = await f.visit(s, tls[0], sts[3], b.local(2027, 1, 3, 9))  # D4, no extension yet: counts 2027
        entries = await b.credited(s, v)
    await live.rebuild(sessions, redis)
    assert await live.ensure_built(sessions, redis) is None  # nothing changed
    await live.bump(redis, await _plan(sessions, entries))
    async with transaction(sessions) as s:
        await b.extension(s, sts[3], 2026, 5)  # granted after the fact: the check-in now counts for 2026
    assert await live.ensure_built(sessions, redis) is not None
    await assert_equal(sessions, redis)
    async with sessions() as s:
        y2026 = await live.station_board(s, redis, Period("year", "2026"), now=NOW)
    assert [(r.code, r.points) for r in y2026 if r.points] == [("D4", 1)]


def test_rank_change_decisions() -> None:
    from scoring.notify import decide
    from scoring.ranking import Standing, rank

    def board(points: dict[str, int]) -> list[Ranked]:
        return rank([Standing(int(code[1:]), code, code, p) for code, p in points.items()])

    first = board({"S1": 0, "S2": 0, "S3": 0, "S4": 0, "S5": 0})
    changes, base = decide({}, first)
    assert changes == [] and set(base.values()) == {(0, False)}  # nobody has points: nothing to tell
    second = board({"S1": 9, "S2": 8, "S3": 7, "S4": 6, "S5": 1})
    changes, silent = decide(base, second)
    assert [(c.code, c.event) for c in changes] == [("S1", "enter_top3"), ("S2", "enter_top3"), ("S3", "enter_top3")]
    assert silent == {4: (4, False), 5: (5, False)}  # first points, outside the top 3: placed silently
    base = {**base, **silent, **{c.station_id: (c.new, c.top) for c in changes}}
    third = board({"S1": 9, "S2": 8, "S3": 7, "S4": 6, "S5": 10})
    assert [(c.code, c.event, c.old, c.new) for c in decide(base, third)[0]] == [
        ("S5", "enter_top3", 5, 1), ("S3", "leave_top3", 3, 4)]
    fourth = board({"S1": 1, "S2": 8, "S3": 7, "S4": 6, "S5": 10, "S6": 9, "S7": 9})
    base = {1: (2, True), 4: (9, False), 6: (2, True), 2: (6, False)}
    # S6 stays in the top 3, S2 rises 2 places (6th -> 4th), S4 rises 3 (9th -> 6th), S1 leaves the top 3
    assert [(c.code, c.event) for c in decide(base, fourth)[0]] == [("S4", "up"), ("S1", "leave_top3")]
    assert [(c.code, c.event) for c in decide({5: (1, True), 2: (1, True)}, board({"S2": 1, "S5": 1}))[0]] == []


async def test_rebuild_marks_entries_across_id_gaps(sessions: Sessions, redis: Any) -> None:
    sts, tls = await town(sessions)
    async with transaction(sessions) as s:
        v = await f.visit(s, tls[0], sts[0], b.local(2026, 5, 1))
        first = await b.credited(s, v)
        s.add(Entry(id=first[-1].id + 100, key="survey:gap", amount=3, rule="R4@1", fact_kind="survey", fact_id=1,
                    station_id=sts[1].id, occurred_at=b.local(2026, 5, 2)))  # ids need not be dense (PostgreSQL)
    rebuilt = await live.rebuild(sessions, redis)
    assert rebuilt is not None and rebuilt.entries == 3
    async with sessions() as s:
        everything = list((await s.scalars(select(Entry))).all())
    assert (await live.bump(redis, await _plan(sessions, everything))).already == 3
    await assert_equal(sessions, redis)


async def test_a_whole_talent_board_beyond_the_bind_limit(pg_url: str, redis: Any) -> None:
    """A whole talent board (compare, the nightly reconcile) of more talents than one PostgreSQL statement can
    bind (asyncpg: 32,767 parameters) reads their names all the same (it raised InterfaceError: found by
    bench/scale.py at 1,000,000 talents)."""
    from sqlalchemy import text

    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    n, at = 33_000, b.local(2026, 5, 1)
    try:
        async with transaction(sessions) as s:
            await s.execute(text(
                "INSERT INTO talents (id, cert_no, name, phone, category, county, created_at) "
                "SELECT g, 'C' || g, 'T' || g, '', '', '', :at FROM generate_series(1, :n) g"), {"at": at, "n": n})
            await s.execute(text(
                "INSERT INTO entries (key, talent_id, amount, rule, fact_kind, fact_id, occurred_at, recorded_at) "
                "SELECT 'bench:' || g, g, 1 + g % 7, 'R3@1', 'visit', g, :at, :at FROM generate_series(1, :n) g"),
                {"at": at, "n": n})
        assert await live.rebuild(sessions, redis) is not None
        async with sessions() as s:
            board = await live.talent_board(s, redis, Period("total", "all"))
            assert len(board) == n and (board[0].points, board[-1].points) == (7, 1)
            assert lines(board) == lines(await boards.talent_board(s, Period("total", "all")))
            assert await live.compare(s, redis, now=NOW) == []
    finally:
        await engine.dispose()
