"""Tasks that apply recorded facts to the ledger, then the live boards, then the outbox (issue 4).

Every task is `async def task(ctx, fact_id)`: one transaction that calls the domain, then the board bumps
for the fact's entries (scoring.live: once per entry, whatever runs twice), then notifications.
The bot enqueues them with deterministic job ids (`apply_visit:{visit_id}` ...); arq may still run a job
twice, and the sweeper enqueues copies under other ids: every step is idempotent.

Exactly once, step by step
- the transaction posts entries under unique keys, so a second run writes nothing;
- just before it commits, the fact is recorded as an *intent* in Redis; after the commit the entries are
  bumped onto the boards and the intent dropped in one round trip. A worker killed between commit and
  bump leaves the intent, and the sweeper re-runs the task, which bumps the (already posted) entries;
- a worker killed before the commit leaves the fact unapplied in SQL, and the sweeper re-enqueues it;
- a Redis that restarts empty loses the queue, the intents and the boards: the sweeper finds the facts
  that SQL says are unapplied, and rebuilds the boards from the ledger.

Failures: transient database or Redis errors are retried with exponential backoff (arq `Retry`); after
MAX_TRIES, or at once for any other error (a LedgerConflict, bad data), the fact goes to `dead_letters`
(task, fact id, reason) for admins. The sweeper leaves non-transient dead letters alone until an admin
resolves them; a later success resolves the dead letter.

Visits coalesce: `apply_visit` applies its visit together with up to BATCH other pending ones (one
commit for many facts, scoring.fraud.apply_visits), one batch at a time per process; the other jobs then
find their visit marked done in Redis and finish without touching the database.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import redis.exceptions as redis_errors
from arq import Retry, cron
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy import exc as sa_errors
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import fraud, ledger, live, notify
from scoring.clock import utcnow
from scoring.db import insert, transaction
from scoring.ledger import Posted
from scoring.models import (
    Activity,
    Attendance,
    DeadLetter,
    Entry,
    Flag,
    MediaReport,
    PublicityReport,
    Redemption,
    SurveyResult,
    Visit,
    Void,
)
from scoring.periods import Period
from scoring.settings import Settings

log = logging.getLogger(__name__)

BATCH: Final = 500  # visits per transaction
MAX_TRIES: Final = 8  # below WorkerSettings.max_tries, so the dead letter is ours to write
SWEEP_AFTER_S: Final = 60
SWEEP_LIMIT: Final = 5000
R1_LOOKBACK: Final = timedelta(days=60)
RELEASE_LOOKBACK: Final = timedelta(hours=1)
SWEEP_HEAD: Final = timedelta(hours=1)
PG_TRANSIENT: Final = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300", "08000", "08003", "08006"}


@dataclass
class Done:
    outcome: str
    notifications: list[int] = field(default_factory=list)


# -- the tasks ---------------------------------------------------------------------------------------


async def startup(ctx: dict[str, Any]) -> None:
    """Worker start: the process-wide lock of the visit batches (arq copies ctx into each job's ctx)."""
    ctx["visit_lock"] = asyncio.Lock()


async def apply_visit(ctx: dict[str, Any], visit_id: int) -> str:
    async def run() -> Done:
        try:
            return await _visits(ctx, visit_id, BATCH)
        except Exception as err:
            if transient(err):
                raise
            log.warning("visit batch with %s failed (%s: %s); applying it alone", visit_id, type(err).__name__, err)
            return await _visits(ctx, visit_id, 1)

    return await _guarded(ctx, "apply_visit", visit_id, run)


async def apply_activity(ctx: dict[str, Any], activity_id: int) -> str:
    settings: Settings = ctx["settings"]

    async def step(s: AsyncSession) -> tuple[Posted, list[tuple[str, int]], list[str]]:
        posted = await ledger.apply_activity(s, activity_id, lead_hours=settings.activity_lead_hours,
                                             min_attendees=settings.activity_min_attendees)
        return posted, [("activity", activity_id)], []

    return await _guarded(ctx, "apply_activity", activity_id, lambda: _apply(ctx, "apply_activity", activity_id, step))


async def apply_media(ctx: dict[str, Any], activity_id: int) -> str:
    async def step(s: AsyncSession) -> tuple[Posted, list[tuple[str, int]], list[str]]:
        return await ledger.apply_media(s, activity_id), [("media", activity_id)], []

    return await _guarded(ctx, "apply_media", activity_id, lambda: _apply(ctx, "apply_media", activity_id, step))


async def apply_survey(ctx: dict[str, Any], survey_id: int) -> str:
    async def step(s: AsyncSession) -> tuple[Posted, list[tuple[str, int]], list[str]]:
        return await ledger.apply_survey(s, survey_id), [("survey", survey_id)], []

    return await _guarded(ctx, "apply_survey", survey_id, lambda: _apply(ctx, "apply_survey", survey_id, step))


async def apply_void(ctx: dict[str, Any], void_id: int) -> str:
    async def step(s: AsyncSession) -> tuple[Posted, list[tuple[str, int]], list[str]]:
        v = await fraud.apply_void(s, void_id)
        facts = v.facts + [("#reverses", i) for i in v.originals]
        return v.posted, facts, v.notifications

    return await _guarded(ctx, "apply_void", void_id, lambda: _apply(ctx, "apply_void", void_id, step))


async def apply_redemption(ctx: dict[str, Any], redemption_id: int) -> str:
    async def step(s: AsyncSession) -> tuple[Posted, list[tuple[str, int]], list[str]]:
        posted = await ledger.apply_redemption(s, redemption_id)
        return posted, [], await notify.tell_redemption(s, redemption_id)  # spending: on no board

    return await _guarded(ctx, "apply_redemption", redemption_id,
                          lambda: _apply(ctx, "apply_redemption", redemption_id, step))


async def release_flag(ctx: dict[str, Any], flag_id: int, actor: str = "admin") -> str:
    """An admin released a hold (bot word 释放): post the held visit's entries, then let apply_visit bump
    the boards (the sweeper's released-holds pass catches up if this process dies in between)."""
    async def run() -> Done:
        async with transaction(ctx["sessions"]) as s:
            posted = await fraud.release_flag(s, flag_id, actor)
            visit_id = await s.scalar(select(Flag.visit_id).where(Flag.id == flag_id))
        if visit_id is not None:
            await ctx["redis"].enqueue_job("apply_visit", visit_id, _job_id=f"apply_visit:{visit_id}:release")
        return Done(_describe(posted))

    return await _guarded(ctx, "release_flag", flag_id, run)


# -- how a task runs ---------------------------------------------------------------------------------


def _describe(posted: Posted) -> str:
    if posted.applied:
        return "applied"
    return f"refused:{posted.refused}" if posted.refused else "already"


async def _entries(s: AsyncSession, facts: Sequence[tuple[str, int]]) -> list[Entry]:
    """Every entry of these facts (originals and reversals); ("#reverses", id) means the reversal of id."""
    by_kind: dict[str, list[int]] = defaultdict(list)
    for kind, fid in facts:
        by_kind[kind].append(fid)
    conds = [and_(Entry.fact_kind == kind, Entry.fact_id.in_(ids)) for kind, ids in by_kind.items()
             if kind != "#reverses"]
    if by_kind.get("#reverses"):
        conds.append(Entry.reverses_id.in_(by_kind["#reverses"]))
    if not conds:
        return []
    return list((await s.scalars(select(Entry).where(or_(*conds)).order_by(Entry.id))).all())


Step = Callable[[AsyncSession], Awaitable[tuple[Posted, list[tuple[str, int]], list[str]]]]


async def _apply(ctx: dict[str, Any], task: str, fact_id: int, step: Step) -> Done:
    """The shape of every task but apply_visit: domain, bump, notifications."""
    redis = ctx["redis"]
    intent = f"{task}:{fact_id}"
    async with transaction(ctx["sessions"]) as s:
        posted, facts, keys = await step(s)
        bumps = await live.plan(s, await _entries(s, facts))
        ids = await notify.ids_of(s, keys)
        await live.intend(redis, [intent])
    await live.bump(redis, bumps, settled=[intent])
    return Done(_describe(posted), ids + await _rank_check(ctx, bumps))


async def _visits(ctx: dict[str, Any], visit_id: int, batch: int) -> Done:
    redis = ctx["redis"]
    if await live.is_done(redis, "visit", visit_id):
        return Done("already")
    lock: asyncio.Lock = ctx.get("visit_lock") or asyncio.Lock()
    async with lock:  # one batch at a time per process: the others wait, then mostly find theirs done
        if await live.is_done(redis, "visit", visit_id):
            return Done("already")
        async with transaction(ctx["sessions"]) as s:
            b = await fraud.apply_visits(s, visit_id, fraud.Thresholds.from_settings(ctx["settings"]), limit=batch)
            bumps = await live.plan(s, await _entries(s, [("visit", i) for i in b.visit_ids]))
            ids = await notify.ids_of(s, b.notifications)
            intents = [f"apply_visit:{i}" for i in b.visit_ids]
            await live.intend(redis, intents)
        await live.bump(redis, bumps, done=[("visit", i) for i in b.settled], settled=intents)
    outcome = "held" if visit_id in b.held else "settled" if visit_id in b.settled else "skipped"
    return Done(f"{outcome} (batch of {len(b.visit_ids)}, {b.applied} new)", ids + await _rank_check(ctx, bumps))


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


async def _guarded(ctx: dict[str, Any], task: str, fact_id: int, run: Callable[[], Awaitable[Done]]) -> str:
    tries = int(ctx.get("job_try") or 1)
    try:
        done = await run()
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"[:2000]
        if transient(err):
            if tries < MAX_TRIES:
                log.warning("%s(%s) try %d: %s; retrying", task, fact_id, tries, reason)
                raise Retry(defer=backoff(tries)) from err
            reason = f"transient, {tries} tries: {reason}"
        else:
            log.exception("%s(%s) failed: dead letter", task, fact_id)
        await dead_letter(ctx["sessions"], task, fact_id, reason)
        await ctx["redis"].zrem(live.INTENTS, f"{task}:{fact_id}")
        return f"dead: {reason}"
    if tries > 1 or ":sweep:" in str(ctx.get("job_id", "")):
        await resolve_dead_letter(ctx["sessions"], task, fact_id)
    await kick(ctx, done.notifications)
    return done.outcome


async def dead_letter(sessions: async_sessionmaker[AsyncSession], task: str, fact_id: int, reason: str) -> None:
    """Record (or count again) a fact that could not be applied."""
    async with transaction(sessions) as s:
        stmt = insert(s, DeadLetter).values(task=task, fact_id=fact_id, reason=reason, attempts=1, created_at=utcnow())
        await s.execute(stmt.on_conflict_do_update(
            index_elements=["task", "fact_id"],
            set_={"reason": stmt.excluded.reason, "attempts": DeadLetter.attempts + 1, "resolved_at": None}))


async def resolve_dead_letter(sessions: async_sessionmaker[AsyncSession], task: str, fact_id: int) -> None:
    async with transaction(sessions) as s:
        await s.execute(update(DeadLetter).where(
            DeadLetter.task == task, DeadLetter.fact_id == fact_id, DeadLetter.resolved_at.is_(None)
        ).values(resolved_at=utcnow()))


async def kick(ctx: dict[str, Any], notification_ids: Iterable[int]) -> None:
    """Hand new outbox rows to worker.push for prompt delivery (its cron delivers them anyway)."""
    ids = list(notification_ids)
    if not ids:
        return
    try:
        push = importlib.import_module("worker.push")
    except ModuleNotFoundError:
        return
    if hasattr(push, "kick"):
        try:
            await push.kick(ctx, ids)
        except Exception as err:
            log.warning("could not enqueue delivery of %d notifications (%s); the outbox sweep will", len(ids), err)


# -- the sweeper -------------------------------------------------------------------------------------


async def unapplied(sessions: async_sessionmaker[AsyncSession], settings: Settings, *, cutoff: datetime,
                    now: datetime, limit: int = SWEEP_LIMIT) -> list[tuple[str, int]]:
    """(task, fact id) of the facts recorded before `cutoff` and still not applied."""
    out: list[tuple[str, int]] = []
    async with sessions() as s:
        out += [("apply_visit", i) for i in (await s.scalars(select(Visit.id).where(
            Visit.status == "accepted", Visit.applied_at.is_(None), Visit.scanned_at < cutoff, ~fraud.OPEN_HOLD,
            ~fraud.dead("apply_visit", Visit.id)).order_by(Visit.id).limit(limit))).all()]
        # (reports of a voided activity are never marked applied by ledger.apply_media: not its business)
        out += [("apply_media", i) for i in (await s.scalars(select(MediaReport.activity_id).join(
            Activity, Activity.id == MediaReport.activity_id).where(
            MediaReport.applied_at.is_(None), MediaReport.voided_at.is_(None), MediaReport.created_at < cutoff,
            Activity.status == "published", ~fraud.dead("apply_media", MediaReport.activity_id)
        ).distinct().limit(limit))).all()]
        out += [("apply_survey", i) for i in (await s.scalars(select(SurveyResult.id).where(
            SurveyResult.status == "pending", SurveyResult.created_at < cutoff,
            ~fraud.dead("apply_survey", SurveyResult.id)).limit(limit))).all()]
        out += [("apply_void", i) for i in (await s.scalars(select(Void.id).where(
            Void.applied_at.is_(None), Void.created_at < cutoff, ~fraud.dead("apply_void", Void.id)
        ).limit(limit))).all()]
        out += [("apply_redemption", i) for i in (await s.scalars(select(Redemption.id).where(
            Redemption.status == "pending", Redemption.created_at < cutoff,
            ~fraud.dead("apply_redemption", Redemption.id)).limit(limit))).all()]
        attendees = select(func.count(func.distinct(Attendance.talent_id))).where(
            Attendance.activity_id == Activity.id).scalar_subquery()
        candidates = (await s.execute(select(Activity.id, Activity.starts_at, Activity.published_at).where(
            Activity.status == "published", Activity.ends_at < cutoff, Activity.ends_at >= now - R1_LOOKBACK,
            select(PublicityReport.id).where(PublicityReport.activity_id == Activity.id).exists(),
            ~select(Entry.id).where(Entry.fact_kind == "activity", Entry.fact_id == Activity.id).exists(),
            attendees >= settings.activity_min_attendees, ~fraud.dead("apply_activity", Activity.id),
        ).limit(limit))).all()
        lead = timedelta(hours=settings.activity_lead_hours)
        out += [("apply_activity", i) for i, starts, published in candidates if published <= starts - lead]
    return out


async def released_not_bumped(sessions: async_sessionmaker[AsyncSession], redis: Any, now: datetime) -> list[int]:
    """Visits whose hold an admin released lately and whose points may not be on the boards yet."""
    async with sessions() as s:
        ids = (await s.scalars(select(Flag.visit_id).where(
            Flag.hold.is_(True), Flag.status == "released", Flag.resolved_at >= now - RELEASE_LOOKBACK))).all()
    return [i for i in ids if i is not None and not await live.is_done(redis, "visit", i)]


async def sweep(ctx: dict[str, Any], *, min_age_s: float = SWEEP_AFTER_S, now: datetime | None = None
                ) -> dict[str, int]:
    """Re-enqueue what should have been applied by now (cron, every minute): facts SQL says are unapplied,
    facts whose worker died between commit and board bump (stale intents), released holds; and rebuild
    the boards when Redis lost them. Job ids carry a `:sweep:{unix ms}` suffix, so a job id that arq
    still remembers (queued, running, or its result kept) never blocks the copy; duplicates are harmless.

    The copies are scored an hour in the past: they sort before whatever a SIGKILLed worker left at the
    head of the queue. arq keeps such jobs "in progress" until the longest function timeout + 10 s has
    passed and reads only the first `queue_read_limit` ids per poll, so enough of them would otherwise
    hide every newer job from the live workers for that long."""
    redis, sessions = ctx["redis"], ctx["sessions"]
    now = now or utcnow()
    counts: Counter[str] = Counter()
    rebuilt = await live.ensure_built(sessions, redis)
    if rebuilt is not None:
        log.warning("live boards were missing: rebuilt %d boards from %d entries in %.1f s",
                    rebuilt.boards, rebuilt.entries, rebuilt.seconds)
        counts["rebuilt"] = 1
    facts = await unapplied(sessions, ctx["settings"], cutoff=now - timedelta(seconds=min_age_s), now=now)
    for intent in await live.stale_intents(redis, time.time() - min_age_s):
        name, _, raw_id = intent.rpartition(":")
        if name in TASKS and raw_id.isdigit():
            facts.append((name, int(raw_id)))
    facts += [("apply_visit", i) for i in await released_not_bumped(sessions, redis, now)]
    stamp = int(time.time() * 1000)
    overdue = datetime.now(UTC) - SWEEP_HEAD
    for task, fid in dict.fromkeys(facts):
        if await redis.enqueue_job(task, fid, _job_id=f"{task}:{fid}:sweep:{stamp}", _defer_until=overdue):
            counts[task] += 1
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


TASKS: Final = {f.__name__: f for f in (apply_visit, apply_activity, apply_media, apply_survey, apply_void,
                                        apply_redemption, release_flag)}
FUNCTIONS: Final = list(TASKS.values())
CRON: Final = [
    cron(sweep, name="tasks:sweep", second=0, run_at_startup=True, timeout=180),
    cron(check_ranks, name="tasks:ranks", second=30, timeout=55),
    cron(reconcile_boards, name="tasks:reconcile", hour=3, minute=30, second=0, timeout=300),
]
