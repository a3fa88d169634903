"""The window's domain reads: live.version (what the web's board cache keys on) and the whole-board read of
live.station_board for large boards, against the SQL boards."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from scoring import boards, directory, live
from scoring.db import transaction
from scoring.models import Entry
from scoring.periods import Period
from tests import factories


async def test_version_changes_with_every_entry_and_rebuild(sessions: Any, redis: Any) -> None:
    assert await live.version(redis) is None  # not built: the SQL boards answer, no version
    async with transaction(sessions) as s:
        st = await factories.station(s, "V001")
    await live.rebuild(sessions, redis)
    built = await live.version(redis)
    assert built is not None
    async with transaction(sessions) as s:
        e = Entry(key="v:1", station_id=st.id, amount=2, rule="R3@1", fact_kind="visit",
                  occurred_at=datetime(2026, 11, 3, 2))
        s.add(e)
        await s.flush()
        bumps = await live.plan(s, [e])
    await live.bump(redis, bumps)
    bumped = await live.version(redis)
    assert bumped is not None and bumped != built
    await live.bump(redis, bumps)  # counted once: the same version
    assert await live.version(redis) == bumped
    await live.rebuild(sessions, redis)
    assert await live.version(redis) != bumped  # a new gen


async def test_a_large_live_board_equals_the_sql_board(sessions: Any, redis: Any) -> None:
    """More stations than WHOLE_BOARD_AT: the live board reads the whole zset; same lines as SQL, ties,
    stations without entries and an ineligible station included."""
    n = live.WHOLE_BOARD_AT + 40
    async with transaction(sessions) as s:
        stations = [await factories.station(s, f"L{i:04d}") for i in range(n)]
        await factories.station(s, "LNEW", certified_on=date(2026, 2, 1))
        for i, st in enumerate(stations[: n // 2]):
            s.add(Entry(key=f"l:{i}", station_id=st.id, amount=1 + i % 7, rule="R3@1", fact_kind="visit",
                        occurred_at=datetime(2026, 11, 1 + i % 20, 3)))
    await live.rebuild(sessions, redis)
    now = datetime(2026, 11, 25, 3)
    for period in (Period("month", "2026-11"), Period("year", "2026"), Period("total", "all")):
        async with sessions() as s:
            sql = await boards.station_board(s, period, now=now)
            got = await live.station_board(s, redis, period, now=now)
            rows = await directory.board(s, redis, period, now=now)
        assert [(r.rank, r.code, r.points, r.standing.reached_at) for r in got] == \
            [(r.rank, r.code, r.points, r.standing.reached_at) for r in sql]
        assert [(r.rank, r.code, r.points) for r in rows] == [(r.rank, r.code, r.points) for r in sql]
