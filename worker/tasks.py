"""The worker's one task, `apply(ctx, kind, fact_id)`: a recorded fact goes to the ledger, then to the live
boards, then its notices to the outbox (issue 4; issue 10: one room per kind of fact).

`kind` names the fact's module in scoring/facts/ (visit, attendance, activity, media, survey, void,
redemption), which owns the rule; the task is the same few steps for all of them: one transaction that
calls the module's `apply`, turns its notices into outbox rows (scoring.notify.send) and plans the board
bumps of its entries; then the bumps (scoring.live: once per entry, whatever runs twice); then the
rank-change check. The bot enqueues the job with a deterministic id (scoring.facts.common.Job); arq may
still run a job twice, and the sweeper enqueues copies under other ids: every step is idempotent.

Exactly once, step by step
- the transaction posts entries under unique keys, so a second run writes nothing (and hands the same
  entries to the boards, which count each once);
- just before it commits, the fact is recorded as an *intent* (`{kind}:{id}`) in Redis; after the commit
  the entries are bumped onto the boards and the intent dropped in one round trip. A worker killed
  between commit and bump leaves the intent, and the sweeper re-runs the fact, which bumps its entries;
- a worker killed before the commit leaves the fact unapplied in SQL, and the sweeper re-enqueues it;
- a Redis that restarts empty loses the queue, the intents and the boards: the sweeper asks every fact
  module for what SQL says is unapplied (`unapplied()`), and rebuilds the boards from the ledger.

Failures: transient database or Redis errors are retried with exponential backoff (arq `Retry`); after
MAX_TRIES, or at once for any other error (a LedgerConflict, bad data, an unknown kind), the fact goes to
`dead_letters` (kind, fact id, reason) for admins (scoring/dead_letters.py). The sweeper leaves
non-transient dead letters alone until an admin resolves them; a later success resolves the dead letter.

Visits coalesce: a visit's job applies its visit together with up to BATCH other pending ones (one commit
for many facts, scoring.facts.visit.apply_batch), one batch at a time per process; the other jobs then
find their visit marked done in Redis and finish without touching the database.

Upgrading from the per-kind tasks (apply_visit, apply_activity, ... before issue 10): jobs still queued
under those names fail with "function not found" and are dropped by arq; their facts are unapplied in
SQL, so the sweeper enqueues them again as `apply` within a minute or two. Intents left under the old
names (`apply_visit:{id}`) are read as their kind. `release_flag` jobs are the one exception (a release
then lived only in its job), so that task stays for them (LEGACY) until no such job can be queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import redis.exceptions as redis_errors
from arq import Retry, cron
from sqlalchemy import exc as sa_errors
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import admin, bookings, dead_letters, live, notify
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.facts import visit
from scoring.facts.common import APPLY, Applied, Job, Params
from scoring.facts.kinds import BY_KIND, MODULES
from scoring.periods import Period
from worker import push

log = logging.getLogger(__name__)

MAX_TRIES: Final = 8  # below WorkerSettings.max_tries, so the dead letter is ours to write
SWEEP_AFTER_S: Final = 60
SWEEP_LIMIT: Final = 5000
SWEEP_HEAD: Final = timedelta(hours=1)
PG_TRANSIENT: Final = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300", "08000", "08003", "08006"}


@dataclass
class Done:
    outcome: str
    notifications: list[int] = field(default_factory=list)


def params(ctx: dict[str, Any]) -> Params:
    """The rules' parameters from the worker's settings (read once per process: settings do not change)."""
    p = ctx.get("params")
    if p is None or p[0] is not ctx["settings"]:
        p = ctx["params"] = (ctx["settings"], Params.from_settings(ctx["settings"]))
    return p[1]


# -- the task ----------------------------------------------------------------------------------------


async def startup(ctx: dict[str, Any]) -> None:
    """Worker start: the process-wide lock of the visit batches and the ids of the visits this process
    settled lately (arq copies ctx into each job's ctx)."""
    ctx["visit_lock"] = asyncio.Lock()
    ctx["visits_settled"] = Settled()
    if "settings" in ctx:
        params(ctx)  # kept in the process's ctx, which arq copies into every job's


class Settled:
    """Visits this process settled lately (committed, bumped and marked done in Redis): the jobs of a
    batch's other visits find theirs here without a Redis round trip. Holds the last LIMIT ids."""

    LIMIT: Final = 20_000

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._order: deque[int] = deque()

    def __contains__(self, visit_id: object) -> bool:
        return visit_id in self._ids

    def add(self, ids: Iterable[int]) -> None:
        for i in ids:
            if i not in self._ids:
                self._ids.add(i)
                self._order.append(i)
        while len(self._order) > self.LIMIT:
            self._ids.discard(self._order.popleft())


async def apply(ctx: dict[str, Any], kind: str, fact_id: int) -> str:
    """Apply one recorded fact (see the module's docstring)."""
    if kind == visit.KIND:
        return await _guarded(ctx, kind, fact_id, lambda: _visits_or_alone(ctx, fact_id))
    return await _guarded(ctx, kind, fact_id, lambda: _apply(ctx, kind, fact_id))


async def _apply(ctx: dict[str, Any], kind: str, fact_id: int) -> Done:
    fact = BY_KIND.get(kind)
    if fact is None:
        raise ValueError(f"unknown kind of fact {kind!r}")
    redis, p = ctx["redis"], params(ctx)
    intent = f"{kind}:{fact_id}"
    async with transaction(ctx["sessions"]) as s:
        outcome = await fact.apply(s, fact_id, p)
        bumps = await live.plan(s, outcome.entries if isinstance(outcome, Applied) else [])
        ids = await notify.ids_of(s, await notify.send(s, outcome.notices, admins=p.admin_openids))
        await live.intend(redis, [intent])
    await live.bump(redis, bumps, settled=[intent])
    described = ("already" if outcome.already else "applied") if isinstance(outcome, Applied) \
        else f"refused:{outcome.reason}"
    return Done(described, ids + await _rank_check(ctx, bumps))


async def _visits_or_alone(ctx: dict[str, Any], visit_id: int) -> Done:
    try:
        return await _visits(ctx, visit_id, visit.BATCH)
    except Exception as err:
        if transient(err):
            raise
        log.warning("visit batch with %s failed (%s: %s); applying it alone", visit_id, type(err).__name__, err)
        return await _visits(ctx, visit_id, 1)


async def _visits(ctx: dict[str, Any], visit_id: int, batch: int) -> Done:
    redis = ctx["redis"]
    settled: Settled = ctx.get("visits_settled") or Settled()
    if visit_id in settled or await live.is_done(redis, visit.KIND, visit_id):
        return Done("already")
    lock: asyncio.Lock = ctx.get("visit_lock") or asyncio.Lock()
    async with lock:  # one batch at a time per process: the others wait, then mostly find theirs done
        if visit_id in settled or await live.is_done(redis, visit.KIND, visit_id):
            return Done("already")
        p = params(ctx)
        async with transaction(ctx["sessions"]) as s:
            b = await visit.apply_batch(s, visit_id, p, limit=batch)
            await bookings.keep_for_visits(s, b.visit_ids, utcnow())  # a check-in keeps that day's booking there
            bumps = await live.plan(s, b.entries)
            ids = await notify.ids_of(s, await notify.send(s, b.notices, admins=p.admin_openids))
            intents = [f"{visit.KIND}:{i}" for i in b.visit_ids]
            await live.intend(redis, intents)
        await live.bump(redis, bumps, done=[(visit.KIND, i) for i in b.settled], settled=intents)
        settled.add(b.settled)
    return Done(visit.describe(b, visit_id), ids + await _rank_check(ctx, bumps))


async def _rank_check(ctx: dict[str, Any], bumps: Sequence[live.Bump]) -> list[int]:
    """After a bump of this month's station board: tell operators of rank changes (throttled; the
    cron catches up). A failure here never fails the task: the points are in."""
    month = Period.parse("month", now=utcnow())
    key = live.board_key("station", month)
    if not any(key in b.boards for b in bumps):
        return []
    try:
        if await notify.may_check_ranks(ctx["redis"], month.key):
            return await notify.check_ranks(ctx["sessions"], ctx["redis"])
    except Exception:
        log.exception("rank check failed; the cron retries within a minute")
    return []


def transient(err: BaseException) -> bool:
    """Errors worth retrying: lost connections, timeouts, locks, serialization failures."""
    if isinstance(err, redis_errors.ConnectionError | redis_errors.TimeoutError | redis_errors.BusyLoadingError
                  | redis_errors.TryAgainError | OSError | TimeoutError | sa_errors.OperationalError
                  | sa_errors.InterfaceError | sa_errors.TimeoutError):
        return True
    if isinstance(err, sa_errors.DBAPIError):
        if err.connection_invalidated:
            return True
        code = getattr(err.orig, "sqlstate", None) or getattr(err.orig, "pgcode", None)
        return code in PG_TRANSIENT
    return False


def backoff(job_try: int) -> float:
    return float(min(60, 2 ** max(0, job_try - 1)))


async def _guarded(ctx: dict[str, Any], kind: str, fact_id: int, run: Callable[[], Awaitable[Done]]) -> str:
    tries = int(ctx.get("job_try") or 1)
    try:
        done = await run()
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"[:2000]
        if transient(err):
            if tries < MAX_TRIES:
                log.warning("%s %s try %d: %s; retrying", kind, fact_id, tries, reason)
                raise Retry(defer=backoff(tries)) from err
            reason = f"{dead_letters.TRANSIENT}, {tries} tries: {reason}"
        else:
            log.exception("%s %s failed: dead letter", kind, fact_id)
        async with transaction(ctx["sessions"]) as s:
            await dead_letters.record(s, kind, fact_id, reason)
        await ctx["redis"].zrem(live.INTENTS, f"{kind}:{fact_id}")
        return f"dead: {reason}"
    if tries > 1 or ":sweep:" in str(ctx.get("job_id", "")):
        async with transaction(ctx["sessions"]) as s:
            await dead_letters.resolve(s, kind, fact_id)
    await kick(ctx, done.notifications)
    return done.outcome


async def kick(ctx: dict[str, Any], notification_ids: Iterable[int]) -> None:
    """Hand new outbox rows to worker.push for prompt delivery (its cron delivers them anyway)."""
    ids = list(notification_ids)
    if not ids:
        return
    try:
        await push.kick(ctx, ids)
    except Exception as err:
        log.warning("could not enqueue delivery of %d notifications (%s); the outbox sweep will", len(ids), err)


# -- the sweeper -------------------------------------------------------------------------------------


async def unapplied(sessions: async_sessionmaker[AsyncSession], p: Params, *, cutoff: datetime, now: datetime,
                    limit: int = SWEEP_LIMIT) -> list[tuple[str, int]]:
    """(kind, fact id) of the facts recorded before `cutoff` and still not applied, as each kind's module
    finds them."""
    out: list[tuple[str, int]] = []
    async with sessions() as s:
        for fact in MODULES:
            out += [(fact.KIND, i) for i in await fact.unapplied(s, cutoff=cutoff, now=now, params=p, limit=limit)]
    return out


def _intended(intent: str) -> tuple[str, int] | None:
    name, _, raw_id = intent.rpartition(":")
    kind = name.removeprefix("apply_")  # intents left by a worker from before issue 10 name its old task
    return (kind, int(raw_id)) if kind in BY_KIND and raw_id.isdigit() else None


async def sweep(ctx: dict[str, Any], *, min_age_s: float = SWEEP_AFTER_S, now: datetime | None = None
                ) -> dict[str, int]:
    """Re-enqueue what should have been applied by now (cron, every minute): facts SQL says are unapplied,
    facts whose worker died between commit and board bump (stale intents); and rebuild the boards when
    Redis lost them. Job ids carry a `:sweep:{unix ms}` tag, so a job id that arq still remembers (queued,
    running, or its result kept) never blocks the copy; duplicates are harmless.

    The copies are scored an hour in the past: they sort before whatever a SIGKILLed worker left at the
    head of the queue. Such jobs stay "in progress" until their lease (worker/settings.py: 15 s, renewed
    while a live worker runs them) expires, and arq reads only the first `queue_read_limit` ids per poll,
    so enough of them would otherwise hide every newer job from the live workers for that long."""
    redis, sessions = ctx["redis"], ctx["sessions"]
    now = now or utcnow()
    counts: Counter[str] = Counter()
    rebuilt = await live.ensure_built(sessions, redis)
    if rebuilt is not None:
        log.warning("live boards were missing: rebuilt %d boards from %d entries in %.1f s",
                    rebuilt.boards, rebuilt.entries, rebuilt.seconds)
        counts["rebuilt"] = 1
    facts = await unapplied(sessions, params(ctx), cutoff=now - timedelta(seconds=min_age_s), now=now)
    stale = await live.stale_intents(redis, time.time() - min_age_s)
    facts += [f for i in stale if (f := _intended(i))]
    stamp = int(time.time() * 1000)
    overdue = datetime.now(UTC) - SWEEP_HEAD
    for kind, fid in dict.fromkeys(facts):
        job = Job(kind, fid, f"sweep:{stamp}")
        if await redis.enqueue_job(APPLY, *job.args, _job_id=job.id, _defer_until=overdue):
            counts[kind] += 1
    legacy = [i for i in stale if i.startswith("apply_")]
    if legacy:  # re-enqueued under their kind, whose jobs write intents of their own
        await redis.zrem(live.INTENTS, *legacy)
    if counts:
        log.info("sweeper: %s", dict(counts))
    return dict(counts)


async def check_ranks(ctx: dict[str, Any]) -> int:
    ids = await notify.check_ranks(ctx["sessions"], ctx["redis"])
    await kick(ctx, ids)
    return len(ids)


async def reconcile_boards(ctx: dict[str, Any]) -> int:
    """Nightly: compare the live boards with SQL, log and repair any drift."""
    result = await live.reconcile(ctx["sessions"], ctx["redis"])
    return len(result.drift)


# -- LEGACY: jobs queued before issue 10 -----------------------------------------------------------------


async def release_flag(ctx: dict[str, Any], flag_id: int, actor: str = "admin") -> str:
    """A `release_flag` job queued by a bot from before issue 10, whose release lived only in the job:
    record it as the bot now does (scoring.admin.release_flag), then apply the visit. Remove once no such
    job can be queued any more."""
    async with transaction(ctx["sessions"]) as s:
        released = await admin.release_flag(s, flag_id, actor)
    if isinstance(released, admin.Released) and released.job is not None:
        return await apply(ctx, *released.job.args)
    return "already"


FUNCTIONS: Final = [apply, release_flag]
CRON: Final = [
    # A rebuild after Redis lost the boards runs inside the sweep: 10,000,000 entries took 155 s (74 s in a
    # clean worker start; BENCHMARKS.md "Province"), so the sweep may take as long as the rebuild's lock.
    cron(sweep, name="tasks:sweep", second=0, run_at_startup=True, timeout=live.REBUILD_LOCK_S),
    cron(check_ranks, name="tasks:ranks", second=30, timeout=55),
    cron(reconcile_boards, name="tasks:reconcile", hour=3, minute=30, second=0, timeout=300),
]
