"""Ledger benchmark (SPEC 7; issue 2, "Benchmark").

On SQLite (a file in a temporary folder) and on PostgreSQL (a throwaway cluster), load stations,
talents and accepted visit facts spread over the current year, then time in the same run:

  (a) ours: every visit credited by rule R3 through the ledger, `scoring.facts.visit.credit` (the rule
      and `scoring.ledger.post`, without the fraud screen), one transaction per
      batch of facts; the baseline: plain batched INSERTs of the same entry rows (two per fact) into a
      bare table with the same columns and only a primary key, one transaction per batch of the same size
      (for information, not a baseline: the same INSERTs into a table with all the indexes of `entries`,
      which shows what the schema's indexes cost by themselves);
  (b) the station boards, on a ledger of their own (visit credits over the 400 days before a clock set to
      00:00 local on the 3rd of a month: its month has two days of entries, the month before is whole): for
      the month just begun, the month before, the year and the total, the top 50
      (`scoring.boards.station_top`), one station's own line (`station_rank`) and, for information, the
      whole board (`station_board`: every station ranked in Python); the baseline: one
      `SELECT station_id, SUM(amount) FROM entries WHERE occurred_at in range GROUP BY station_id` over the
      same entries. Ours and the baseline alternate call by call; medians of wall and CPU time.

Targets: facts/s ours ≥ 0.3x bare; a board's top and a station's own rank ≤ 2x the bare GROUP BY, on both
databases, at the start of a month and at its end.

    .venv/bin/python bench/ledger.py                 # 1,000,000 facts, 10,000 stations, 200,000 talents
    .venv/bin/python bench/ledger.py --quick         # 50,000 facts, 1,000 stations, 20,000 talents
    .venv/bin/python bench/ledger.py --db sqlite --facts 200000 --batch 2000
    .venv/bin/python bench/ledger.py --only boards --board-facts 500000   # the boards only, both databases
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from sqlalchemy import Column, Index, MetaData, Table, UniqueConstraint, func, insert, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine  # noqa: E402

from bench.common import (  # noqa: E402
    Stopwatch,
    chunks,
    create_pg_database,
    fmt_int,
    format_table,
    loadavg,
    machine_info,
    print_machine,
    stop_on_sigterm,
    temp_dir,
    temp_postgres,
    timed,
)
from scoring import periods  # noqa: E402
from scoring.boards import station_board, station_rank, station_top  # noqa: E402
from scoring.clock import utcnow  # noqa: E402
from scoring.db import make_engine, make_sessionmaker, transaction  # noqa: E402
from scoring.facts import visit  # noqa: E402
from scoring.models import Base, BigId, Entry, Station, Talent, Visit  # noqa: E402
from scoring.periods import Period  # noqa: E402
from scoring.rules import RULES  # noqa: E402
from talenthome.servers import ServerUnavailable  # noqa: E402

FACTS_TARGET = 0.3  # ours / bare facts per second, at least
BOARD_TARGET = 2.0  # ours / bare board time, at most
TYPES = ("comprehensive", "industry", "professional", "service")
COUNTIES = ("鲤城区", "丰泽区", "洛江区", "泉港区", "晋江市", "石狮市", "南安市", "惠安县", "安溪县", "永春县",
            "德化县")

# Same columns as `entries`, only a primary key: no unique key, no foreign key, no other index.
bare_metadata = MetaData()
bare_entries = Table(
    "bare_entries", bare_metadata, Column("id", BigId, primary_key=True),
    *(Column(c.name, c.type) for c in Entry.__table__.columns if c.name != "id"),
)
# Not a baseline, an explanation: the same plain INSERTs into a table with every index and unique key of
# `entries` (no foreign keys). Its time is what the schema's indexes cost by themselves.
indexed_entries = Table(
    "indexed_entries", bare_metadata, Column("id", BigId, primary_key=True),
    *(Column(c.name, c.type) for c in Entry.__table__.columns if c.name != "id"),
    *(UniqueConstraint(*(c.name for c in uc.columns), name=f"uq_indexed_{i}")
      for i, uc in enumerate(Entry.__table__.constraints) if isinstance(uc, UniqueConstraint)),
    *(Index(f"{ix.name}_indexed", *(c.name for c in ix.columns), unique=ix.unique)
      for ix in Entry.__table__.indexes),
)


@dataclass(frozen=True)
class Size:
    facts: int
    stations: int
    talents: int


FULL = Size(1_000_000, 10_000, 200_000)
QUICK = Size(50_000, 1_000, 20_000)


@dataclass(frozen=True)
class Fact:
    """One accepted visit: ids are 1-based and assigned in time order."""

    talent_id: int
    station_id: int
    day: date
    at: datetime


@dataclass
class Result:
    db: str
    facts: int
    batch: int
    load_s: float
    ours_s: float
    bare_s: float
    indexed_s: float

    @property
    def ours_fps(self) -> float:
        return self.facts / self.ours_s

    @property
    def bare_fps(self) -> float:
        return self.facts / self.bare_s

    @property
    def indexed_fps(self) -> float:
        return self.facts / self.indexed_s


# -- data -------------------------------------------------------------------------------------------


def make_facts(size: Size, now: datetime, seed: int = 20261) -> list[Fact]:
    """`size.facts` distinct (talent, station, local day) visits between 1 January (local) and now,
    between 08:00 and 21:00 local time, sorted by time (visit ids follow time, as in production)."""
    rng = random.Random(seed)
    today = periods.local_day(now)
    first = date(today.year, 1, 1)
    days = [first + timedelta(days=i) for i in range((today - first).days + 1)]
    midnights = [periods.local_midnight_utc(d) for d in days]
    if size.facts > size.talents * size.stations * len(days) // 4:
        raise SystemExit("too many facts for so few talents, stations and days")
    seen: set[tuple[int, int, int]] = set()
    out: list[Fact] = []
    while len(out) < size.facts:
        t, s, d = rng.randrange(size.talents) + 1, rng.randrange(size.stations) + 1, rng.randrange(len(days))
        if (t, s, d) in seen:
            continue
        at = midnights[d] + timedelta(seconds=rng.randrange(8 * 3600, 21 * 3600))
        if at > now:
            continue
        seen.add((t, s, d))
        out.append(Fact(t, s, days[d], at))
    out.sort(key=lambda f: f.at)
    return out


def station_rows(n: int, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for i in range(1, n + 1):
        certified = date(2019 + i % 6, 1 + i % 12, 1 + i % 28)  # 2019..2024: eligible this year
        rows.append({
            "id": i, "code": f"S{i:05d}", "name": f"人才之家{i:05d}", "kind": "home" if i % 4 else "community",
            "type": TYPES[i % 4], "county": COUNTIES[i % len(COUNTIES)], "certified_on": certified,
            "eligible_from": periods.eligible_from(certified), "stars": 3, "status": "active",
            "demotion_streak": 0, "created_at": now, "updated_at": now})
    return rows


def talent_rows(n: int, now: datetime) -> list[dict[str, Any]]:
    return [{"id": i, "cert_no": f"QZ{i:07d}", "name": f"人才{i}", "phone": f"138{i:08d}", "category": "A",
             "county": COUNTIES[i % len(COUNTIES)], "openid": f"o{i:07d}", "bound_at": now, "created_at": now}
            for i in range(1, n + 1)]


def visit_rows(facts: Sequence[Fact], first_id: int) -> list[dict[str, Any]]:
    return [{"id": first_id + i, "openid": f"o{f.talent_id:07d}", "talent_id": f.talent_id,
             "station_id": f.station_id, "activity_id": None, "source": "station", "scanned_at": f.at,
             "local_day": f.day, "status": "accepted", "reason": None,
             "credit_key": visit.credit_key(f.talent_id, f.station_id, f.day), "operator_openid": None,
             "applied_at": None}
            for i, f in enumerate(facts)]


def bare_rows(facts: Sequence[Fact], first_id: int, recorded_at: datetime) -> list[dict[str, Any]]:
    """The rows the ledger writes for these visits (same keys, figures and columns)."""
    r3 = RULES["R3"]
    rows = []
    for i, f in enumerate(facts):
        key = f"visit:{visit.credit_key(f.talent_id, f.station_id, f.day)}"
        common = {"rule": r3.tag, "fact_kind": "visit", "fact_id": first_id + i, "occurred_at": f.at,
                  "recorded_at": recorded_at, "reverses_id": None, "actor": None, "reason": None}
        rows.append({"key": key + "#station", "amount": r3.station, "station_id": f.station_id,
                     "talent_id": None, **common})
        rows.append({"key": key + "#talent", "amount": r3.talent, "station_id": None,
                     "talent_id": f.talent_id, **common})
    return rows


async def bulk_insert(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Loading only (not timed against anything): COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        cols = list(rows[0])
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=[tuple(r[c] for c in cols) for r in rows], columns=cols)
    else:
        for part in chunks(rows, 50_000):
            await conn.execute(insert(table), list(part))


async def load(engine: AsyncEngine, size: Size, facts: list[Fact], now: datetime) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(bare_metadata.create_all)
    async with engine.begin() as conn:
        await bulk_insert(conn, Station.__table__, station_rows(size.stations, now))  # type: ignore[arg-type]
        await bulk_insert(conn, Talent.__table__, talent_rows(size.talents, now))  # type: ignore[arg-type]
    for part in chunks(range(len(facts)), 200_000):
        async with engine.begin() as conn:
            await bulk_insert(conn, Visit.__table__,  # type: ignore[arg-type]
                              visit_rows(facts[part.start:part.stop], part.start + 1))
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for table in ("stations", "talents", "visits"):
                await conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    await analyze(engine)


async def analyze(engine: AsyncEngine) -> None:
    """Planner statistics, as a production database has them (autovacuum; `PRAGMA optimize`)."""
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        await conn.commit()


# -- the boards' own ledger --------------------------------------------------------------------------


def board_as_of(now: datetime) -> datetime:
    """The boards' clock: 00:00 local on the 3rd of the current month (the previous month's before the 3rd),
    so that the month of the clock has exactly two days of entries and the month before is whole."""
    today = periods.local_day(now)
    first = today.replace(day=1)
    if today.day < 3:
        first = (first - timedelta(days=1)).replace(day=1)
    return periods.local_midnight_utc(first.replace(day=3))


def board_entry_rows(n: int, stations: int, talents: int, as_of: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """`n` visit credits (a station leg and a talent leg each) spread evenly over the 400 days before `as_of`,
    between 08:00 and 21:00 local time; ids in time order."""
    rng = random.Random(seed)
    first = periods.local_day(as_of) - timedelta(days=400)
    ats = sorted(periods.local_midnight_utc(first + timedelta(days=rng.randrange(400)))
                 + timedelta(seconds=rng.randrange(8 * 3600, 21 * 3600)) for _ in range(n))
    rows = []
    for i, at in enumerate(ats):
        s, t = rng.randrange(stations) + 1, rng.randrange(talents) + 1
        common = {"rule": "R3@1", "fact_kind": "visit", "fact_id": i + 1, "occurred_at": at, "recorded_at": at,
                  "reverses_id": None, "actor": None, "reason": None, "amount": 1}
        rows.append({"id": 2 * i + 1, "key": f"visit:{i + 1}#station", "station_id": s, "talent_id": None, **common})
        rows.append({"id": 2 * i + 2, "key": f"visit:{i + 1}#talent", "station_id": None, "talent_id": t, **common})
    return rows


async def load_board_ledger(engine: AsyncEngine, size: Size, entries: int, as_of: datetime) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with engine.begin() as conn:
        await bulk_insert(conn, Station.__table__, station_rows(size.stations, as_of))  # type: ignore[arg-type]
        await bulk_insert(conn, Talent.__table__, talent_rows(size.talents, as_of))  # type: ignore[arg-type]
    rows = board_entry_rows(entries, size.stations, size.talents, as_of)
    for part in chunks(rows, 200_000):
        async with engine.begin() as conn:
            await bulk_insert(conn, Entry.__table__, list(part))  # type: ignore[arg-type]
    await analyze(engine)


# -- the timed parts --------------------------------------------------------------------------------


async def apply_all(engine: AsyncEngine, facts: list[Fact], batch: int) -> tuple[float, float, float]:
    """(ours, bare, indexed) seconds. The three alternate batch by batch, so that they see the same
    machine load and the same database size; each batch is one transaction on every side."""
    sessions = make_sessionmaker(engine)
    ours, bare, indexed = Stopwatch(), Stopwatch(), Stopwatch()
    applied = 0
    for part in chunks(range(len(facts)), batch):
        ids = range(part.start + 1, part.stop + 1)  # visit ids follow the facts' order
        rows = bare_rows(facts[part.start:part.stop], ids.start, utcnow())  # built outside the timer
        with bare:
            async with engine.begin() as conn:
                await conn.execute(insert(bare_entries), rows)
        with indexed:
            async with engine.begin() as conn:
                await conn.execute(insert(indexed_entries), rows)
        with ours:
            async with transaction(sessions) as s:
                applied += await visit.credit(s, ids)
        if part.start // batch % 100 == 99:
            print(f"    {part.stop:>9,} facts: ours {part.stop / ours.seconds:,.0f}/s, "
                  f"bare {part.stop / bare.seconds:,.0f}/s", flush=True)
    if applied != len(facts):
        raise AssertionError(f"credit applied {applied} of {len(facts)} facts")
    return ours.seconds, bare.seconds, indexed.seconds


async def verify(engine: AsyncEngine, n: int, batch: int) -> None:
    """Not timed: every fact has its two entries, every visit is marked, a second apply writes nothing."""
    async with engine.connect() as conn:
        entries, total = (await conn.execute(select(func.count(), func.sum(Entry.amount)))).one()
        bare = await conn.scalar(select(func.count()).select_from(bare_entries))
        bare += await conn.scalar(select(func.count()).select_from(indexed_entries)) or 0
        unapplied = await conn.scalar(select(func.count()).where(Visit.applied_at.is_(None)))
    if (entries, total, bare, unapplied) != (2 * n, 2 * n, 4 * n, 0):
        raise AssertionError(f"entries={entries} sum={total} bare={bare} unapplied={unapplied}, facts={n}")
    sessions = make_sessionmaker(engine)
    async with transaction(sessions) as s:
        again = await visit.credit(s, range(1, min(batch, n) + 1))
    async with engine.connect() as conn:
        after = await conn.scalar(select(func.count()).select_from(Entry))
    if again or after != entries:
        raise AssertionError(f"a second apply wrote something: {again} facts, {after - entries} entries")


@dataclass(frozen=True)
class BoardTime:
    db: str
    case: str  # "month 2026-11, 2 days in", ...
    board: str  # top 50 | own rank | whole board
    ours_ms: float
    bare_ms: float
    cpu_ours_ms: float
    cpu_bare_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.bare_ms

    @property
    def counted(self) -> bool:
        """The target is for the top of a board and a station's own line; the whole board (every
        station, ranked in Python) is for information."""
        return self.board != WHOLE


TOP_N = 50
WHOLE = "whole board (info)"


async def timed_pair(ours: Any, bare: Any, repeat: int) -> tuple[float, float, float, float]:
    """(ours ms, bare ms, ours CPU ms, bare CPU ms): medians, the two alternating call by call after a
    warm-up, so that both see the same machine load."""
    await ours()
    await bare()
    walls: dict[str, list[float]] = {"ours": [], "bare": []}
    cpus: dict[str, list[float]] = {"ours": [], "bare": []}
    for _ in range(repeat):
        for name, fn in (("ours", ours), ("bare", bare)):
            c0, t0 = time.process_time(), time.perf_counter()
            await fn()
            walls[name].append((time.perf_counter() - t0) * 1000)
            cpus[name].append((time.process_time() - c0) * 1000)
    return (statistics.median(walls["ours"]), statistics.median(walls["bare"]),
            statistics.median(cpus["ours"]), statistics.median(cpus["bare"]))


async def boards(db: str, engine: AsyncEngine, as_of: datetime, stations: int, repeat: int) -> list[BoardTime]:
    """Every station board at `as_of` (2 days into a month): the month of as_of (its start), the month
    before (whole: its end), the year, the total; each as its top 50, one station's own line and (info) the
    whole board, against the bare GROUP BY of the same period."""
    sessions = make_sessionmaker(engine)
    month = Period.parse("month", now=as_of)
    cases = [(f"month {month.key}, 2 days in", month),
             (f"month {periods.previous_month(month.key)}, whole", Period("month", periods.previous_month(month.key))),
             (f"year {month.key[:4]}", Period.parse("year", now=as_of)),
             ("total", Period("total", "all"))]
    middle = stations // 2 + 1
    out = []
    for case, period in cases:
        start, end = period.bounds()

        async def bare(start: datetime | None = start, end: datetime | None = end) -> int:
            stmt = select(Entry.station_id, func.sum(Entry.amount))
            if start is not None:
                stmt = stmt.where(Entry.occurred_at >= start, Entry.occurred_at < end)
            async with engine.connect() as conn:
                rows = (await conn.execute(stmt.group_by(Entry.station_id))).all()
            # The talent legs come back as one NULL group; the board counts station points only.
            return sum(int(p) for sid, p in rows if sid is not None)

        async def whole(period: Period = period) -> list[Any]:
            async with sessions() as s:
                return await station_board(s, period, now=as_of)

        async def top(period: Period = period) -> list[Any]:
            async with sessions() as s:
                return await station_top(s, period, TOP_N, now=as_of)

        async def own(period: Period = period) -> Any:
            async with sessions() as s:
                return await station_rank(s, middle, period, now=as_of)

        board = await whole()
        if sum(r.points for r in board) != await bare():  # every station here is eligible in every period
            raise AssertionError(f"{case}: the board's sum and the bare GROUP BY's differ")
        if [(r.rank, r.code) for r in await top()] != [(r.rank, r.code) for r in board[:TOP_N]]:
            raise AssertionError(f"{case}: station_top is not the board's top {TOP_N}")
        line = await own()
        if line is None or (line.rank, line.points) != next(
                (r.rank, r.points) for r in board if r.standing.id == middle):
            raise AssertionError(f"{case}: station_rank is not the station's line on the board")
        for name, fn in ((f"top {TOP_N}", top), ("own rank", own), (WHOLE, whole)):
            out.append(BoardTime(db, case, name, *await timed_pair(fn, bare, repeat)))
    return out


async def run_boards(db: str, url: str, size: Size, entries: int, repeat: int) -> list[BoardTime]:
    as_of = board_as_of(utcnow())
    print(f"\n== {db} boards: {fmt_int(size.stations)} stations, {fmt_int(entries)} visit credits "
          f"({fmt_int(2 * entries)} entries) over the 400 days before {as_of} UTC", flush=True)
    engine = make_engine(url)
    try:
        with timed("load the boards' ledger (stations, talents, entries, ANALYZE)"):
            await load_board_ledger(engine, size, entries, as_of)
        with timed("boards"):
            return await boards(db, engine, as_of, size.stations, repeat)
    finally:
        await engine.dispose()


async def run_one(db: str, url: str, size: Size, facts: list[Fact], batch: int, now: datetime,
                  repeat: int) -> Result:
    print(f"\n== {db}: {fmt_int(size.stations)} stations, {fmt_int(size.talents)} talents, "
          f"{fmt_int(len(facts))} facts, {batch} facts per transaction", flush=True)
    engine = make_engine(url)
    try:
        with timed("load (schema, stations, talents, visits, ANALYZE)") as t_load:
            await load(engine, size, facts, now)
        with timed("apply: facts.visit.credit, bare and indexed INSERTs, alternating"):
            ours_s, bare_s, indexed_s = await apply_all(engine, facts, batch)
        with timed("verify (counts, idempotency)"):
            await verify(engine, len(facts), batch)
    finally:
        await engine.dispose()
    return Result(db, len(facts), batch, t_load.seconds, ours_s, bare_s, indexed_s)


async def run(args: argparse.Namespace) -> tuple[list[Result], list[BoardTime]]:
    size = QUICK if args.quick else FULL
    if args.facts is not None:
        size = Size(args.facts, size.stations, size.talents)
    if args.stations is not None:
        size = Size(size.facts, args.stations, size.talents)
    if args.talents is not None:
        size = Size(size.facts, size.stations, args.talents)
    board_entries = args.board_facts or size.facts
    now = utcnow()
    facts: list[Fact] = []
    if args.only != "boards":
        with timed(f"generate {fmt_int(size.facts)} facts"):
            facts = make_facts(size, now)
    results: list[Result] = []
    board_times: list[BoardTime] = []
    for db in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        with temp_dir() as folder:
            if db == "sqlite":
                if args.only != "boards":
                    url = f"sqlite+aiosqlite:///{os.path.join(folder, 'ledger.db')}"
                    results.append(await run_one(db, url, size, facts, args.batch, now, args.repeat))
                if args.only != "apply":
                    url = f"sqlite+aiosqlite:///{os.path.join(folder, 'boards.db')}"
                    board_times += await run_boards(db, url, size, board_entries, args.repeat)
            else:
                try:
                    with temp_postgres() as server:
                        if args.only != "boards":
                            url = await create_pg_database(server, "bench")
                            results.append(await run_one(db, url, size, facts, args.batch, now, args.repeat))
                        if args.only != "apply":
                            url = await create_pg_database(server, "boards")
                            board_times += await run_boards(db, url, size, board_entries, args.repeat)
                except ServerUnavailable as err:
                    print(f"\n== postgresql skipped: {err}")
    return results, board_times


def report(results: list[Result], board_times: list[BoardTime], argv: list[str], load_before: str,
           load_after: str) -> str:
    facts_rows = [
        (r.db, fmt_int(r.facts), r.batch, fmt_int(r.ours_fps), fmt_int(r.bare_fps),
         f"{r.ours_fps / r.bare_fps:.2f}x", "yes" if r.ours_fps / r.bare_fps >= FACTS_TARGET else "NO",
         f"{fmt_int(r.indexed_fps)} ({r.ours_fps / r.indexed_fps:.2f}x)")
        for r in results]
    board_rows = [
        (t.db, t.case, t.board, f"{t.ours_ms:.1f}", f"{t.bare_ms:.1f}", f"{t.ratio:.2f}x",
         f"{t.cpu_ours_ms / t.cpu_bare_ms:.2f}x" if t.cpu_bare_ms else "-",
         ("yes" if t.ratio <= BOARD_TARGET else "NO") if t.counted else "")
        for t in board_times]
    counted = [t for t in board_times if t.counted]
    out = [
        "command: " + " ".join([".venv/bin/python", "bench/ledger.py", *argv]),
        f"load average (1, 5, 15 min): {load_before} before, {load_after} after",
    ]
    if results:
        out += [
            "",
            f"Apply visit facts, one transaction per batch (target: ours >= {FACTS_TARGET}x bare)",
            "",
            format_table(("database", "facts", "batch", "ours facts/s", "bare facts/s", "ratio", "met",
                          "info: indexed facts/s (ours/it)"), facts_rows),
        ]
    if board_times:
        worst = max(counted, key=lambda t: t.ratio)
        out += [
            "",
            f"Station boards at 00:00 local on the 3rd of a month (target: the top {TOP_N} and a station's own "
            f"rank <= {BOARD_TARGET}x the bare GROUP BY of the same period, on both databases, at the start "
            "of a month and at its end; median ms of alternating calls; CPU: this process's CPU time, "
            "ours / bare, the database's own work on PostgreSQL not included)",
            "",
            format_table(("database", "period", "board", "ours ms", "bare ms", "ratio", "CPU ratio", "met"),
                         board_rows),
            "",
            f"worst counted ratio: {worst.ratio:.2f}x ({worst.db}, {worst.case}, {worst.board}); "
            f"target met: {'yes' if worst.ratio <= BOARD_TARGET else 'NO'}",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--facts", type=int, help="visit facts (default 1,000,000; 50,000 with --quick)")
    p.add_argument("--quick", action="store_true", help="50,000 facts, 1,000 stations, 20,000 talents")
    p.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--batch", type=int, default=1000, help="facts per transaction (default 1000)")
    p.add_argument("--stations", type=int, help=argparse.SUPPRESS)
    p.add_argument("--talents", type=int, help=argparse.SUPPRESS)
    p.add_argument("--repeat", type=int, default=5, help="board timings per period (median; default 5)")
    p.add_argument("--only", choices=("apply", "boards"), help="the apply part only, or the boards only")
    p.add_argument("--board-facts", type=int, help="visit credits of the boards' own ledger (default: --facts)")
    args = p.parse_args(argv)
    stop_on_sigterm()
    print("machine:")
    print_machine(machine_info())
    load_before = loadavg()
    results, board_times = asyncio.run(run(args))
    if not results and not board_times:
        print("no database could be benchmarked")
        return 1
    print("\n" + report(results, board_times, argv, load_before, loadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
