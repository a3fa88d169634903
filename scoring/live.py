"""Live boards: the ledger's sums per account and period, kept in Redis so that reading a board costs no
GROUP BY (issue 4, "Live boards"). SQL stays the source of truth: everything here can be lost and rebuilt.

Keys (all under `th:live:`)
---------------------------
- `station:{kind}:{period}` and `talent:{kind}:{period}`: a sorted set, account id -> points; kinds
  `total` (period `all`), `year` (`2026`) and, for stations, `month` (`2026-11`). Beside each, the hash
  `...:at`, account id -> when it reached that score (microseconds since the epoch of the latest
  `occurred_at` among its entries in the period), the first tie-break of SPEC 3, as in `scoring.boards`.
- `seen:{n}`: bitmaps, one bit per entry id (8M ids per key): the per-entry marker. An entry is added to
  its boards only when its bit was 0, in the same Lua script that sets the bit (BUMP below), so a retried
  task, two workers or a replay can never count an entry twice.
- `gen`: set by a completed rebuild. Missing (a fresh or flushed Redis): boards are not built; bumps are
  skipped (the next rebuild counts those entries) and reads fall back to the SQL boards. It also records
  the extensions the build saw: an extension granted later moves counted entries into another year, so
  the sweeper (`ensure_built`, every minute) rebuilds then. A station's `eligible_from` edited later
  (a re-imported certification date) is repaired by the nightly reconciliation.
- `rebuilding` (the rebuild's lock and token), `journal` (ids of entries bumped while it runs), `keys`
  (every board key, so a rebuild can drop stale ones), `intents` (facts whose entries may not be on the
  boards yet; the worker's sweeper re-runs the stale ones), `done:visit:{n}` (visits needing no more work).

What counts where (the same as scoring.boards; tests/scoring/test_live.py checks it property by property)
- a station entry: its local month; the year of the station's scoring window it falls in (an extension of
  year Y moves entries of the first days of Y+1 into Y); the total board when `occurred_at` is on or after
  the station's `eligible_from`. Month and year sets hold every station: who is ranked (certified before
  that year, not delisted) is decided when reading, from the database, so a delisting leaves at once.
- a talent entry: total and its local year, except redemptions (spending, not points).
- reversals keep their original's `occurred_at`, so they correct the period the original counted in.

Rebuild (`rebuild`) reads the ledger in one consistent snapshot (a WAL read transaction on SQLite, which
does not block writers; REPEATABLE READ on PostgreSQL), aggregates in SQL, writes temporary keys with
pipelined ZADDs and swaps them in with one Lua script (RENAME). Entries bumped while it ran are journaled
and replayed after the swap against the new markers, so none is lost or doubled.

Asia/Shanghai has been UTC+8 without daylight saving since 1991; the SQL aggregation uses that fixed offset.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, cast

from redis.asyncio import Redis
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from scoring import boards as sql_boards
from scoring import periods
from scoring.clock import utcnow
from scoring.db import make_engine
from scoring.models import Entry, Extension, Station, Talent
from scoring.periods import Period
from scoring.ranking import Ranked, Standing, rank

log = logging.getLogger(__name__)

PREFIX: Final = "th:live"
GEN: Final = f"{PREFIX}:gen"
REBUILDING: Final = f"{PREFIX}:rebuilding"
JOURNAL: Final = f"{PREFIX}:journal"
INDEX: Final = f"{PREFIX}:keys"
INTENTS: Final = f"{PREFIX}:intents"
SHARD_BITS: Final = 23  # 8,388,608 entry ids (1 MiB) per marker bitmap
REBUILD_LOCK_S: Final = 900
TMP_TTL_S: Final = 3600
CHUNK: Final = 5000
NAMES_IN_AT_MOST: Final = 30_000  # talent ids bound in one IN list; more: read every talent's name
WHOLE_BOARD_AT: Final = 500  # reading more members than this: the whole zset and hash instead (_scores)
EPOCH: Final = datetime(1970, 1, 1)
UTC_OFFSET: Final = timedelta(hours=8)
assert periods.TZ.utcoffset(datetime(2026, 1, 1)) == UTC_OFFSET

# Entries onto their boards, each atomically with its marker: one call for a whole batch.
# KEYS: gen, rebuilding, journal, index, then the marker shards and the boards (each board zset followed by
# its reached-at hash) that the entries name by position.
# ARGV, per entry: shard's KEYS position, bit, entry id, member, amount, reached-at (µs), n, then the KEYS
# positions of its n board zsets.
# Returns, per entry: 1 bumped, 0 already counted, -1 boards not built (the next rebuild counts it).
BUMP: Final = """
local rebuilding = redis.call('EXISTS', KEYS[2]) == 1
local built = redis.call('EXISTS', KEYS[1]) == 1
local out, indexed = {}, {}
local i = 1
while i <= #ARGV do
  local shard, member, amount, reached = KEYS[tonumber(ARGV[i])], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local first, n = i + 7, tonumber(ARGV[i + 6])
  if rebuilding then redis.call('RPUSH', KEYS[3], ARGV[i + 2]) end
  if not built then
    out[#out + 1] = -1
  elseif redis.call('SETBIT', shard, ARGV[i + 1], 1) == 1 then
    out[#out + 1] = 0
  else
    if not indexed[shard] then redis.call('SADD', KEYS[4], shard); indexed[shard] = true end
    for k = first, first + n - 1 do
      local z = tonumber(ARGV[k])
      redis.call('ZINCRBY', KEYS[z], amount, member)
      local at = redis.call('HGET', KEYS[z + 1], member)
      if (not at) or tonumber(at) < tonumber(reached) then redis.call('HSET', KEYS[z + 1], member, reached) end
      if not indexed[z] then redis.call('SADD', KEYS[4], KEYS[z], KEYS[z + 1]); indexed[z] = true end
    end
    out[#out + 1] = 1
  end
  i = first + n
end
return out
"""
BUMP_CHUNK: Final = 1000  # entries per script call: Redis runs one call at a time, keep each short

# Take the rebuild lock and start a fresh journal.
ACQUIRE: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

# Swap the rebuilt keys in. KEYS: rebuilding, gen, index, then n temporary keys, then their n live names.
# ARGV: token, n, gen value. Every key of the old index goes (stale months, old markers).
SWAP: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[2])
for _, k in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('UNLINK', k) end
redis.call('DEL', KEYS[3])
for i = 1, n do
  local tmp, live = KEYS[3 + i], KEYS[3 + n + i]
  if redis.call('EXISTS', tmp) == 1 then
    redis.call('RENAME', tmp, live)
    redis.call('PERSIST', live)
    redis.call('SADD', KEYS[3], live)
  end
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[1])
return 1
"""


def board_key(scope: str, period: Period) -> str:
    return f"{PREFIX}:{scope}:{period.kind}:{period.key}"


def at_key(zkey: str) -> str:
    return zkey + ":at"


def seen_bit(entry_id: int) -> tuple[str, int]:
    return f"{PREFIX}:seen:{entry_id >> SHARD_BITS}", entry_id & ((1 << SHARD_BITS) - 1)


def done_bit(kind: str, fact_id: int) -> tuple[str, int]:
    return f"{PREFIX}:done:{kind}:{fact_id >> SHARD_BITS}", fact_id & ((1 << SHARD_BITS) - 1)


def micros(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _s(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


# -- what an entry counts toward ---------------------------------------------------------------------


@dataclass(frozen=True)
class Bump:
    """One entry and the boards it counts toward."""

    entry_id: int
    member: str
    amount: int
    reached: int
    boards: tuple[str, ...]


Extensions = dict[tuple[int, int], int]  # (station_id, year) -> extension days


def counted_year(occurred_at: datetime, station_id: int, ext: Extensions) -> int:
    """The year whose scoring window holds `occurred_at` (periods.scoring_window): the local year, or the
    one before while inside that year's extension."""
    y = periods.year_of(occurred_at)
    prev = ext.get((station_id, y - 1), 0)
    if prev and occurred_at < periods.local_midnight_utc(date(y, 1, 1)) + timedelta(days=prev):
        return y - 1
    return y


def station_boards(occurred_at: datetime, station_id: int, eligible_from: datetime, ext: Extensions) -> list[str]:
    keys = [board_key("station", Period("month", periods.month_key(occurred_at))),
            board_key("station", Period("year", str(counted_year(occurred_at, station_id, ext))))]
    if occurred_at >= eligible_from:
        keys.append(board_key("station", Period("total", "all")))
    return keys


def talent_boards(occurred_at: datetime, fact_kind: str) -> list[str]:
    if fact_kind == "redemption":
        return []
    return [board_key("talent", Period("total", "all")),
            board_key("talent", Period("year", str(periods.year_of(occurred_at))))]


async def _eligible_from(session: AsyncSession, station_ids: Iterable[int]) -> dict[int, datetime]:
    ids = sorted(set(station_ids))
    if not ids:
        return {}
    rows = (await session.execute(select(Station.id, Station.eligible_from).where(Station.id.in_(ids)))).all()
    return {sid: at for sid, at in rows}


async def _extensions(session: AsyncSession, station_ids: Iterable[int] | None = None) -> Extensions:
    stmt = select(Extension.station_id, Extension.year, func.sum(Extension.days)).group_by(
        Extension.station_id, Extension.year)
    if station_ids is not None:
        ids = sorted(set(station_ids))
        if not ids:
            return {}
        stmt = stmt.where(Extension.station_id.in_(ids))
    return {(sid, y): int(d) for sid, y, d in (await session.execute(stmt)).all()}


async def plan(session: AsyncSession, entries: Sequence[Entry]) -> list[Bump]:
    """The boards of each entry (in the caller's transaction, so it sees what it just posted)."""
    station_ids = [e.station_id for e in entries if e.station_id is not None]
    eligible = await _eligible_from(session, station_ids)
    ext = await _extensions(session, station_ids)
    out = []
    for e in entries:
        if e.station_id is not None:
            member, keys = str(e.station_id), station_boards(
                e.occurred_at, e.station_id, eligible[e.station_id], ext)
        elif e.talent_id is not None:
            member, keys = str(e.talent_id), talent_boards(e.occurred_at, e.fact_kind)
        else:  # pragma: no cover - the schema forbids it
            continue
        if keys:
            out.append(Bump(e.id, member, e.amount, micros(e.occurred_at), tuple(keys)))
    return out


# -- bumping -----------------------------------------------------------------------------------------


@dataclass
class Bumped:
    added: int = 0
    already: int = 0
    unbuilt: int = 0


def _bump_call(bumps: Sequence[Bump]) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one BUMP call for these entries (each marker shard and board named once)."""
    keys = [GEN, REBUILDING, JOURNAL, INDEX]
    position: dict[str, int] = {}
    args: list[Any] = []

    def at(key: str, *beside: str) -> int:
        if key not in position:
            position[key] = len(keys) + 1  # Lua's KEYS are 1-based
            keys.append(key)
            keys.extend(beside)
        return position[key]

    for b in bumps:
        shard, bit = seen_bit(b.entry_id)
        args += [at(shard), bit, b.entry_id, b.member, b.amount, b.reached, len(b.boards)]
        args += [at(z, at_key(z)) for z in b.boards]
    return keys, args


async def bump(redis: Redis, bumps: Sequence[Bump], *, done: Iterable[tuple[str, int]] = (),
               settled: Iterable[str] = ()) -> Bumped:
    """Add each entry to its boards once (one script call per BUMP_CHUNK entries, pipelined), then, in the
    same round trip, mark `done` facts ((kind, id)) and drop `settled` intents."""
    done, settled = list(done), list(settled)
    result = Bumped()
    if not bumps and not done and not settled:
        return result
    script = redis.register_script(BUMP)
    calls = 0
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(0, len(bumps), BUMP_CHUNK):
            keys, args = _bump_call(bumps[i:i + BUMP_CHUNK])
            await script(keys=keys, args=args, client=pipe)
            calls += 1
        for kind, fact_id in done:
            key, bit = done_bit(kind, fact_id)
            pipe.setbit(key, bit, 1)
        if settled:
            pipe.zrem(INTENTS, *settled)
        replies = await pipe.execute()
    for r in (r for reply in replies[:calls] for r in reply):
        if r == 1:
            result.added += 1
        elif r == 0:
            result.already += 1
        else:
            result.unbuilt += 1
    return result


async def is_done(redis: Redis, kind: str, fact_id: int) -> bool:
    key, bit = done_bit(kind, fact_id)
    return bool(await redis.getbit(key, bit))


async def intend(redis: Redis, facts: Iterable[str], now: float | None = None) -> None:
    """Record facts about to be applied (before the commit); `bump(..., settled=...)` drops them after."""
    facts = list(facts)
    if facts:
        ts = time.time() if now is None else now
        await redis.zadd(INTENTS, dict.fromkeys(facts, ts))


async def stale_intents(redis: Redis, older_than: float, limit: int = 10_000) -> list[str]:
    """Facts intended before `older_than` (unix time) and never settled: their worker died."""
    raw = await redis.zrangebyscore(INTENTS, "-inf", older_than, start=0, num=limit)
    return [_s(x) for x in raw]


async def is_built(redis: Redis) -> bool:
    return bool(await redis.exists(GEN))


VERSION_SHARDS: Final = 16  # marker shards counted by version(): 134M entry ids


async def version(redis: Redis) -> tuple[str, tuple[int, ...]] | None:
    """A value that changes whenever an entry is added to the live boards (each sets its marker bit) or
    they are rebuilt (a new `gen`): a reader that ranks often may keep a board while it is unchanged. None
    when the boards are not built: reads fall back to the SQL boards then, which have no such value."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(GEN)
        for n in range(VERSION_SHARDS):
            pipe.bitcount(f"{PREFIX}:seen:{n}")
        gen, *counts = await pipe.execute()
    if gen is None:
        return None
    return _s(gen), tuple(int(c) for c in counts)


# -- reading -----------------------------------------------------------------------------------------


async def _scores(redis: Redis, zkey: str, members: Sequence[str]) -> list[tuple[int, datetime | None]]:
    if not members:
        return []
    if len(members) > WHOLE_BOARD_AT:
        # Most of a board: read all of it (no 10^4 arguments to pack and send) and look the members up.
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zrange(zkey, 0, -1, withscores=True)
            pipe.hgetall(at_key(zkey))
            pairs, reached = await pipe.execute()
        by_member = {_s(m): p for m, p in pairs}
        at_of = {_s(m): a for m, a in reached.items()}
        scores = [by_member.get(m) for m in members]
        ats = [at_of.get(m) for m in members]
    else:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zmscore(zkey, list(members))
            pipe.hmget(at_key(zkey), list(members))
            scores, ats = await pipe.execute()
    return [(int(p) if p is not None else 0, from_micros(int(a)) if a is not None else None)
            for p, a in zip(scores, ats, strict=True)]


async def active_stations(session: AsyncSession, station_type: str | None = None) -> list[Any]:
    """The rows station_board ranks from (id, code, name, status, certified_on, eligible_from) of the active
    stations; a caller that ranks often may keep them while the stations do not change."""
    stmt = select(Station.id, Station.code, Station.name, Station.status, Station.certified_on,
                  Station.eligible_from).where(Station.status == "active")  # plain rows: cheaper than objects
    if station_type is not None:
        stmt = stmt.where(Station.type == station_type)
    return list((await session.execute(stmt)).all())


async def station_board(session: AsyncSession, redis: Redis, period: Period, *, now: datetime | None = None,
                        station_type: str | None = None, stations: Sequence[Any] | None = None) -> list[Ranked]:
    """Like scoring.boards.station_board (every eligible active station, 0 without entries), read from
    Redis; the SQL board when the live boards are not built. `stations`: the caller's copy of
    active_stations(session, station_type), else read now."""
    if not await is_built(redis):
        return await sql_boards.station_board(session, period, now=now, station_type=station_type)
    now = now or utcnow()
    if stations is None:
        stations = await active_stations(session, station_type)
    stations = [st for st in stations if sql_boards.station_eligible(st, period, now)]
    values = await _scores(redis, board_key("station", period), [str(st.id) for st in stations])
    return rank([Standing(st.id, st.code, st.name, p, at) for st, (p, at) in zip(stations, values, strict=True)])


async def station_standing(session: AsyncSession, redis: Redis, station_id: int, period: Period, *,
                           now: datetime | None = None) -> Ranked | None:
    """The station's line on the board; None when it is not ranked (not eligible, delisted)."""
    return next((r for r in await station_board(session, redis, period, now=now)
                 if r.standing.id == station_id), None)


async def talent_board(session: AsyncSession, redis: Redis, period: Period, *,
                       limit: int | None = None) -> list[Ranked]:
    """Like scoring.boards.talent_board (total or year), read from Redis: with `limit`, the top of the
    board only (ties at the cut are ordered before cutting)."""
    if period.kind == "month" or not await is_built(redis):
        return await sql_boards.talent_board(session, period, limit=limit)
    zkey = board_key("talent", period)
    if limit is None:
        top = await redis.zrange(zkey, 0, -1, desc=True, withscores=True)
    else:
        if limit <= 0:
            return []
        top = await redis.zrange(zkey, 0, limit - 1, desc=True, withscores=True)
        if top:
            floor = top[-1][1]
            tied = await redis.zrangebyscore(zkey, floor, floor, withscores=True)
            top = [m for m in top if m[1] > floor] + list(tied)
    ids = [int(_s(m)) for m, _ in top]
    values = await _scores(redis, zkey, [str(i) for i in ids])
    # A whole board (compare, reconcile) can hold more talents than a statement can bind parameters
    # (asyncpg: 32,767): then every talent is read, as scoring.boards.talent_board does.
    names = {tid: (cert, name) for tid, cert, name in (await session.execute(
        select(Talent.id, Talent.cert_no, Talent.name).where(Talent.id.in_(ids)) if len(ids) < NAMES_IN_AT_MOST
        else select(Talent.id, Talent.cert_no, Talent.name))).all()} if ids else {}
    ranked = rank([Standing(tid, *names.get(tid, (str(tid), "")), p, at)
                   for tid, (p, at) in zip(ids, values, strict=True)])
    return ranked[:limit] if limit is not None else ranked


async def talent_standing(redis: Redis, talent_id: int, period: Period) -> tuple[int, int] | None:
    """(rank, points) of one talent on the total or a year board (competition rank: 1 + how many have
    more); None when not on it or the boards are not built (then ask scoring.boards)."""
    zkey = board_key("talent", period)
    score = await redis.zscore(zkey, str(talent_id))
    if score is None:
        return None
    above = await redis.zcount(zkey, f"({score}", "+inf")
    return int(above) + 1, int(score)


# -- rebuild -----------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Board contents computed from the ledger: {board key: {member: (points, reached µs)}} and the ids of
    the entries they count, as closed ranges."""

    boards: dict[str, dict[str, tuple[int, int]]] = field(default_factory=lambda: defaultdict(dict))
    islands: list[tuple[int, int]] = field(default_factory=list)

    @property
    def entries(self) -> int:
        return sum(b - a + 1 for a, b in self.islands)


@dataclass(frozen=True)
class Rebuilt:
    boards: int
    members: int
    entries: int
    replayed: int
    seconds: float
    read_s: float
    write_s: float


def _engine(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    return cast(AsyncEngine, sessions.kw["bind"])


@asynccontextmanager
async def snapshot_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only connection whose statements all see one snapshot of the database, without blocking
    writers: a deferred transaction in WAL mode on SQLite (the app's engine begins IMMEDIATE, which would
    take the write lock), REPEATABLE READ on PostgreSQL."""
    if engine.dialect.name == "sqlite":
        snap = make_engine(engine.url, snapshot=True)
        try:
            async with snap.connect() as conn:
                await conn.exec_driver_sql("BEGIN")
                try:
                    yield conn
                finally:
                    # A read was cut off (the worker stopping cancels it mid-query): the connection is then
                    # unusable and is thrown away with the engine; the original exception is what counts.
                    with suppress(SQLAlchemyError):
                        await conn.exec_driver_sql("ROLLBACK")
        finally:
            await snap.dispose()
    else:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                yield conn


def _local(conn: AsyncConnection, kind: str, col: Any) -> ColumnElement[str]:
    if conn.dialect.name == "sqlite":
        return func.strftime("%Y-%m" if kind == "month" else "%Y", col, "+8 hours")
    return func.to_char(col + UTC_OFFSET, "YYYY-MM" if kind == "month" else "YYYY")


def _merge(into: dict[str, tuple[int, int]], member: str, points: int, reached: int) -> None:
    old = into.get(member)
    into[member] = (points, reached) if old is None else (old[0] + points, max(old[1], reached))


async def read_snapshot(conn: AsyncConnection) -> Snapshot:
    """Every board from the ledger, aggregated in SQL."""
    snap = Snapshot()
    month = _local(conn, "month", Entry.occurred_at)
    year = _local(conn, "year", Entry.occurred_at)
    ext = {(sid, y): int(d) for sid, y, d in (await conn.execute(
        select(Extension.station_id, Extension.year, func.sum(Extension.days))
        .group_by(Extension.station_id, Extension.year))).all()}
    # Station years moved by an extension are summed over their windows; the others from their months.
    windowed = {(sid, y + d) for sid, y in ext for d in (0, 1)}
    total = board_key("station", Period("total", "all"))
    rows = await conn.execute(
        select(Entry.station_id, month, func.sum(Entry.amount), func.max(Entry.occurred_at))
        .where(Entry.station_id.is_not(None)).group_by(Entry.station_id, month))
    for sid, mkey, points, reached in rows.all():
        us = micros(reached)
        snap.boards[board_key("station", Period("month", mkey))][str(sid)] = (int(points), us)
        if (sid, int(mkey[:4])) not in windowed:
            _merge(snap.boards[board_key("station", Period("year", mkey[:4]))], str(sid), int(points), us)
    for sid, y in sorted(windowed):
        start, end = periods.scoring_window(y, ext.get((sid, y), 0), ext.get((sid, y - 1), 0))
        points, reached = (await conn.execute(select(func.sum(Entry.amount), func.max(Entry.occurred_at)).where(
            Entry.station_id == sid, Entry.occurred_at >= start, Entry.occurred_at < end))).one()
        if points is not None:
            snap.boards[board_key("station", Period("year", str(y)))][str(sid)] = (int(points), micros(reached))
    # Totals count from each station's eligible_from, which is a local month's start (1 January): summed
    # from the months; a station whose eligible_from is anything else gets its own query.
    months: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    for zkey, members in snap.boards.items():
        if zkey.startswith(f"{PREFIX}:station:month:"):
            for member, (points, us) in members.items():
                months[int(member)].append((zkey.rsplit(":", 1)[1], points, us))
    for sid, eligible in (await conn.execute(select(Station.id, Station.eligible_from))).all():
        local = periods.to_local(eligible)
        if (local.day, local.hour, local.minute, local.second, local.microsecond) == (1, 0, 0, 0, 0):
            first = periods.month_key(eligible)
            for mkey, points, us in months.get(sid, []):
                if mkey >= first:
                    _merge(snap.boards[total], str(sid), points, us)
        else:
            points, reached = (await conn.execute(select(func.sum(Entry.amount), func.max(Entry.occurred_at)).where(
                Entry.station_id == sid, Entry.occurred_at >= eligible))).one()
            if points is not None:
                snap.boards[total][str(sid)] = (int(points), micros(reached))
    t_total = board_key("talent", Period("total", "all"))
    talents = await conn.execute(
        select(Entry.talent_id, year, func.sum(Entry.amount), func.max(Entry.occurred_at))
        .where(Entry.talent_id.is_not(None), sql_boards.EARNED).group_by(Entry.talent_id, year))
    for tid, ykey, points, reached in talents.all():
        us = micros(reached)
        snap.boards[board_key("talent", Period("year", ykey))][str(tid)] = (int(points), us)
        _merge(snap.boards[t_total], str(tid), int(points), us)
    # The entry ids as islands of consecutive ids: usually one (ids are dense), else found by a window.
    low, high, n = (await conn.execute(select(func.min(Entry.id), func.max(Entry.id), func.count(Entry.id)))).one()
    if not n:
        snap.islands = []
    elif high - low + 1 == n:
        snap.islands = [(int(low), int(high))]
    else:
        numbered = select(Entry.id.label("id"), (Entry.id - func.row_number().over(order_by=Entry.id)).label("g")
                          ).subquery()
        snap.islands = sorted((int(a), int(b)) for a, b in (await conn.execute(
            select(func.min(numbered.c.id), func.max(numbered.c.id)).group_by(numbered.c.g))).all())
    return snap


def marker_bitmaps(islands: Sequence[tuple[int, int]]) -> dict[str, bytes]:
    """The `seen` bitmaps (Redis bit order: bit 0 is the top bit of byte 0) with every id of `islands` set."""
    shards: dict[int, bytearray] = {}
    size = 1 << SHARD_BITS
    for a, b in islands:
        lo = a
        while lo <= b:
            shard = lo >> SHARD_BITS
            hi = min(b, (shard + 1) * size - 1)
            buf = shards.setdefault(shard, bytearray())
            _set_range(buf, lo - shard * size, hi - shard * size)
            lo = hi + 1
    return {f"{PREFIX}:seen:{n}": bytes(buf) for n, buf in shards.items()}


def _set_range(buf: bytearray, lo: int, hi: int) -> None:
    need = hi // 8 + 1
    if len(buf) < need:
        buf.extend(bytes(need - len(buf)))
    first, last = lo // 8, hi // 8
    if first == last:
        for bit in range(lo, hi + 1):
            buf[first] |= 0x80 >> (bit % 8)
        return
    for bit in range(lo, (first + 1) * 8):
        buf[first] |= 0x80 >> (bit % 8)
    buf[first + 1:last] = b"\xff" * (last - first - 1)
    for bit in range(last * 8, hi + 1):
        buf[last] |= 0x80 >> (bit % 8)


async def _write_tmp(redis: Redis, tmp: str, snap: Snapshot) -> list[str]:
    """Write the snapshot under the `tmp` prefix; returns the live names written (zsets, hashes, bitmaps)."""
    names: list[str] = []
    async with redis.pipeline(transaction=False) as pipe:
        queued = 0
        for zkey, members in snap.boards.items():
            items = list(members.items())
            for i in range(0, len(items), CHUNK):
                part = items[i:i + CHUNK]
                pipe.zadd(tmp + zkey, {m: p for m, (p, _) in part})
                pipe.hset(tmp + at_key(zkey), mapping={m: at for m, (_, at) in part})
                queued += 2
                if queued >= 20:
                    await pipe.execute()
                    queued = 0
            pipe.expire(tmp + zkey, TMP_TTL_S)
            pipe.expire(tmp + at_key(zkey), TMP_TTL_S)
            names += [zkey, at_key(zkey)]
        for key, bits in marker_bitmaps(snap.islands).items():
            pipe.set(tmp + key, bits, ex=TMP_TTL_S)
            names.append(key)
        await pipe.execute()
    return names


async def rebuild(sessions: async_sessionmaker[AsyncSession], redis: Redis) -> Rebuilt | None:
    """Recreate every live board from the ledger alone; None when another rebuild is running."""
    t0 = time.perf_counter()
    token = secrets.token_hex(8)
    if not await redis.register_script(ACQUIRE)(keys=[REBUILDING, JOURNAL], args=[token, REBUILD_LOCK_S]):
        return None
    try:
        async with snapshot_connection(_engine(sessions)) as conn:
            snap = await read_snapshot(conn)
            fingerprint = await extensions_fingerprint(conn)
        t1 = time.perf_counter()
        tmp = f"{PREFIX}:tmp:{token}:"
        names = await _write_tmp(redis, tmp, snap)
        gen = json.dumps({"built_at": utcnow().isoformat(), "entries": snap.entries, "extensions": fingerprint})
        swapped = await redis.register_script(SWAP)(
            keys=[REBUILDING, GEN, INDEX, *[tmp + n for n in names], *names], args=[token, len(names), gen])
        t2 = time.perf_counter()
        if not swapped:
            log.warning("live boards: rebuild %s lost its lock (Redis flushed?); not swapped", token)
            return None
    except BaseException:
        await redis.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
        )(keys=[REBUILDING], args=[token])
        raise
    replayed = await replay_journal(sessions, redis)
    members = sum(len(m) for m in snap.boards.values())
    return Rebuilt(boards=len(snap.boards), members=members, entries=snap.entries, replayed=replayed,
                   seconds=time.perf_counter() - t0, read_s=t1 - t0, write_s=t2 - t1)


async def replay_journal(sessions: async_sessionmaker[AsyncSession], redis: Redis) -> int:
    """Bump the entries journaled during a rebuild; those the rebuild counted are marked and skipped."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lrange(JOURNAL, 0, -1)
        pipe.delete(JOURNAL)
        raw, _ = await pipe.execute()
    ids = sorted({int(_s(x)) for x in raw})
    added = 0
    for i in range(0, len(ids), 500):
        async with sessions() as s:
            entries = (await s.scalars(select(Entry).where(Entry.id.in_(ids[i:i + 500])))).all()
            bumps = await plan(s, entries)
        added += (await bump(redis, bumps)).added
    return added


async def extensions_fingerprint(conn: AsyncConnection | AsyncSession) -> str:
    """Changes whenever an extension is granted: entries already counted may move to another year."""
    n, top, days = (await conn.execute(select(
        func.count(Extension.id), func.max(Extension.id), func.sum(Extension.days)))).one()
    return f"{n}:{top}:{days}"


async def ensure_built(sessions: async_sessionmaker[AsyncSession], redis: Redis) -> Rebuilt | None:
    """Rebuild when the boards are not built (a fresh or flushed Redis) or an extension was granted since
    they were (the sweeper calls this every minute)."""
    raw = await redis.get(GEN)
    if raw is not None:
        built = json.loads(raw).get("extensions")
        async with sessions() as s:
            if built == await extensions_fingerprint(s):
                return None
    return await rebuild(sessions, redis)


# -- reconciliation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    board: str
    account_id: int
    live: tuple[int, datetime | None] | None
    sql: tuple[int, datetime | None] | None


def _lines(board: Sequence[Ranked]) -> dict[int, tuple[int, datetime | None]]:
    return {r.standing.id: (r.standing.points, r.standing.reached_at) for r in board}


async def compare(session: AsyncSession, redis: Redis, *, now: datetime | None = None) -> list[Drift]:
    """Differences between the live boards and the SQL boards (scoring.boards) for the current periods and
    the month before: station total, year, month; talent total, year."""
    now = now or utcnow()
    month = Period.parse("month", now=now)
    checks: list[tuple[str, Period]] = [
        ("station", Period("total", "all")), ("station", Period.parse("year", now=now)), ("station", month),
        ("station", Period("month", periods.previous_month(month.key))),
        ("talent", Period("total", "all")), ("talent", Period.parse("year", now=now))]
    drift = []
    for scope, period in checks:
        if scope == "station":
            live = _lines(await station_board(session, redis, period, now=now))
            sql = _lines(await sql_boards.station_board(session, period, now=now))
        else:
            live = _lines(await talent_board(session, redis, period))
            sql = _lines(await sql_boards.talent_board(session, period))
        for account in sorted(set(live) | set(sql)):
            if live.get(account) != sql.get(account):
                drift.append(Drift(board_key(scope, period), account, live.get(account), sql.get(account)))
    return drift


@dataclass(frozen=True)
class Reconciled:
    drift: list[Drift]
    rebuilt: Rebuilt | None


async def reconcile(sessions: async_sessionmaker[AsyncSession], redis: Redis, *,
                    now: datetime | None = None) -> Reconciled:
    """Compare Redis with SQL; on any drift log it and repair by a rebuild (which is exact even while
    tasks run: see `rebuild`). A drift seen while entries are in flight only costs a needless rebuild."""
    if not await is_built(redis):
        log.warning("live boards: not built; rebuilding")
        return Reconciled([], await rebuild(sessions, redis))
    async with sessions() as s:
        drift = await compare(s, redis, now=now)
    if not drift:
        return Reconciled([], None)
    for d in drift[:20]:
        log.warning("live boards: drift on %s account %s: live %s, ledger %s", d.board, d.account_id, d.live, d.sql)
    log.warning("live boards: %d drifting lines; rebuilding from the ledger", len(drift))
    return Reconciled(drift, await rebuild(sessions, redis))
