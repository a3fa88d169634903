"""Fraud rules, holds, releases and voids (SPEC 3 "Fraud", [A3.3]).

Visits go through `apply_visits` on their way into the ledger (the worker's apply_visit task):
- **multi_station** (hold): a talent's visit whose trailing window of `multi_station_minutes` (its own
  visit included; ties by id) holds visits at `multi_station_count` or more different stations gets a
  Flag(hold=True) and no entries. The earlier visits of the run keep their points; every later one within
  the window is held too. An admin releases (`release_flag`: the entries are posted then) or voids it.
- **daily_volume** (mark only): when a station's accepted visits on a local day exceed
  max(`daily_floor`, `daily_median_factor` x the median of its daily counts over the 30 days before,
  days without visits counting 0), one Flag(hold=False) marks that station-day (on the visit being
  applied when it is first seen); the points are posted as usual.
- Staff at their own station and expired codes never get here: the bot rejects those scans.
Flags are idempotent (UNIQUE rule + visit_id). Decisions read the recorded visits, not what is applied,
so a retry or another worker reaches the same decision.

`apply_visits` also coalesces: besides the visit asked for, it applies up to `limit` other pending
visits in the same transaction (one commit for many facts; the ledger's keys make overlaps harmless).

`apply_void` turns an admin's Void (target entry | visit | activity | media | flag) into reversal
entries through `scoring.ledger.reverse`; running it again changes nothing.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import ledger, notify
from scoring.clock import utcnow
from scoring.db import dialect_name, insert, lock
from scoring.ledger import Posted, Refusal
from scoring.models import (
    Activity,
    DeadLetter,
    Entry,
    Flag,
    MediaReport,
    Station,
    Talent,
    Visit,
    Void,
)
from scoring.rules import MEDIA_LEVELS, media_points
from scoring.settings import Settings

MULTI_STATION: Final = "multi_station"
DAILY_VOLUME: Final = "daily_volume"
MEDIAN_DAYS: Final = 30


@dataclass(frozen=True)
class Thresholds:
    multi_station_count: int = 3
    multi_station_minutes: int = 30
    daily_floor: int = 20
    daily_median_factor: int = 5
    admin_openids: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, s: Settings) -> Thresholds:
        return cls(s.fraud_multi_station_count, s.fraud_multi_station_minutes, s.fraud_daily_floor,
                   s.fraud_daily_median_factor, tuple(sorted(s.admin_openid_set)))


@dataclass
class VisitBatch:
    """What `apply_visits` did. `visit_ids`: every visit it looked at; `settled`: those that need no more
    work (applied now or before, rejected, voided); `held`: waiting for an admin; `notifications`: keys of
    the outbox rows it added."""

    visit_ids: list[int] = field(default_factory=list)
    applied: int = 0
    settled: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    flagged: list[int] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)


async def add_flag(session: AsyncSession, *, rule: str, hold: bool, visit: Visit, detail: str) -> int | None:
    """Insert a flag unless (rule, visit) has one; returns the new flag's id."""
    stmt = insert(session, Flag).values(
        rule=rule, hold=hold, station_id=visit.station_id, talent_id=visit.talent_id, visit_id=visit.id,
        detail=detail, status="open", created_at=utcnow()).on_conflict_do_nothing(
        index_elements=["rule", "visit_id"]).returning(Flag.id)
    return (await session.execute(stmt)).scalar()


HOLD_RULES: Final = (MULTI_STATION,)  # the rules that hold; naming them lets the (rule, visit_id) key serve
OPEN_HOLD = exists().where(Flag.rule.in_(HOLD_RULES), Flag.visit_id == Visit.id, Flag.hold.is_(True),
                           Flag.status == "open")


def dead(task: str, fact_id: Any) -> Any:
    """An unresolved dead letter that is not a transient failure: the sweeper and batches leave it alone."""
    return exists().where(DeadLetter.task == task, DeadLetter.fact_id == fact_id,
                          DeadLetter.resolved_at.is_(None), ~DeadLetter.reason.startswith("transient"))


async def pending_visits(session: AsyncSession, *, limit: int, exclude: int | None = None) -> list[Visit]:
    """Accepted visits not applied yet, oldest first, not held, not dead-lettered. On PostgreSQL rows
    another worker is applying are skipped (FOR UPDATE SKIP LOCKED)."""
    stmt = select(Visit).where(Visit.status == "accepted", Visit.applied_at.is_(None), ~OPEN_HOLD,
                               ~dead("apply_visit", Visit.id)).order_by(Visit.id).limit(limit)
    if exclude is not None:
        stmt = stmt.where(Visit.id != exclude)
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.scalars(stmt)).all())


async def apply_visits(session: AsyncSession, visit_id: int, limits: Thresholds, *, limit: int = 500,
                       now: datetime | None = None) -> VisitBatch:
    """Apply visit `visit_id` and up to `limit - 1` other pending visits through the fraud rules."""
    now = now or utcnow()
    out = VisitBatch()
    target = await lock(session, Visit, visit_id)
    visits = ([target] if target is not None else []) + (
        await pending_visits(session, limit=limit - 1, exclude=visit_id) if limit > 1 else [])
    out.visit_ids = [v.id for v in visits]
    if not visits:
        return out
    ids = out.visit_ids
    flags: dict[int, list[Flag]] = defaultdict(list)
    for f in (await session.scalars(select(Flag).where(Flag.visit_id.in_(ids)))).all():
        assert f.visit_id is not None
        flags[f.visit_id].append(f)
    voided = set((await session.scalars(select(Void.target_id).where(
        Void.target_kind == "visit", Void.target_id.in_(ids)))).all())
    to_post: list[Visit] = []
    to_screen: list[Visit] = []
    for v in visits:
        holds = [f for f in flags[v.id] if f.hold]
        if v.status != "accepted" or v.talent_id is None or v.station_id is None:
            out.settled.append(v.id)
        elif any(f.status == "open" for f in holds):
            out.held.append(v.id)
        elif v.id in voided or any(f.status == "voided" for f in holds):
            v.applied_at = v.applied_at or now  # handled: it gets no points
            out.settled.append(v.id)
        elif v.applied_at is not None or any(f.status == "released" for f in holds):
            to_post.append(v)
        else:
            to_screen.append(v)
    held, marks = await screen(session, to_screen, limits)
    for v in to_screen:
        if v.id in held:
            n, detail = held[v.id]
            flag_id = await add_flag(session, rule=MULTI_STATION, hold=True, visit=v, detail=detail)
            out.held.append(v.id)
            if flag_id is not None:
                out.notifications += await _tell_hold(session, flag_id, v, n, detail, limits)
            continue
        if v.id in marks and await add_flag(session, rule=DAILY_VOLUME, hold=False, visit=v, detail=marks[v.id]):
            out.flagged.append(v.id)
        to_post.append(v)
    if to_post:
        out.applied = await ledger.apply_visits(session, [v.id for v in to_post])
        out.settled += [v.id for v in to_post]
    return out


async def screen(session: AsyncSession, visits: Sequence[Visit], limits: Thresholds
                 ) -> tuple[dict[int, tuple[int, str]], dict[int, str]]:
    """({visit_id: (stations, detail)} to hold, {visit_id: detail} to mark)."""
    if not visits:
        return {}, {}
    return await _multi_station(session, visits, limits), await _daily_volume(session, visits, limits)


async def _multi_station(session: AsyncSession, visits: Sequence[Visit], limits: Thresholds
                         ) -> dict[int, tuple[int, str]]:
    window = timedelta(minutes=limits.multi_station_minutes)
    talents = sorted({v.talent_id for v in visits if v.talent_id is not None})
    lo, hi = min(v.scanned_at for v in visits) - window, max(v.scanned_at for v in visits)
    rows = (await session.execute(select(Visit.id, Visit.talent_id, Visit.station_id, Visit.scanned_at).where(
        Visit.status == "accepted", Visit.talent_id.in_(talents), Visit.scanned_at >= lo,
        Visit.scanned_at <= hi))).all()
    by_talent: dict[int, list[tuple[int, int, datetime]]] = defaultdict(list)
    for vid, tid, sid, at in rows:
        if tid is not None and sid is not None:
            by_talent[tid].append((vid, sid, at))
    codes: dict[int, str] = {}
    out: dict[int, tuple[int, str]] = {}
    for v in visits:
        assert v.talent_id is not None
        stations = {sid for vid, sid, at in by_talent[v.talent_id]
                    if at >= v.scanned_at - window and (at, vid) <= (v.scanned_at, v.id)}
        if len(stations) >= limits.multi_station_count:
            missing = stations - codes.keys()
            if missing:
                codes.update({sid: code for sid, code in (await session.execute(
                    select(Station.id, Station.code).where(Station.id.in_(sorted(missing))))).all()})
            names = "、".join(sorted(codes[s] for s in stations))
            out[v.id] = (len(stations), f"{limits.multi_station_minutes}分钟内在{len(stations)}个不同站点打卡：{names}")
    return out


def daily_threshold(history: Sequence[int], limits: Thresholds) -> float:
    """max(floor, factor x median of the daily counts before), the counts listing every day (0 included)."""
    return max(limits.daily_floor, limits.daily_median_factor * statistics.median(history or [0]))


async def _daily_volume(session: AsyncSession, visits: Sequence[Visit], limits: Thresholds) -> dict[int, str]:
    days = {(v.station_id, v.local_day) for v in visits if v.station_id is not None}
    stations = sorted({s for s, _ in days})
    first = min(d for _, d in days) - timedelta(days=MEDIAN_DAYS)
    last = max(d for _, d in days)
    counts = {(sid, day): n for sid, day, n in (await session.execute(
        select(Visit.station_id, Visit.local_day, func.count()).where(
            Visit.status == "accepted", Visit.station_id.in_(stations), Visit.local_day >= first,
            Visit.local_day <= last).group_by(Visit.station_id, Visit.local_day))).all()}
    over: dict[tuple[int, date], str] = {}
    for sid, day in days:
        assert sid is not None
        history = [counts.get((sid, day - timedelta(days=k)), 0) for k in range(1, MEDIAN_DAYS + 1)]
        limit = daily_threshold(history, limits)
        today = counts.get((sid, day), 0)
        if today > limit:
            over[(sid, day)] = f"{day.isoformat()}打卡{today}次，超过阈值{limit:g}（近30日中位数的" \
                               f"{limits.daily_median_factor}倍，至少{limits.daily_floor}次）"
    if not over:
        return {}
    marked = set((await session.execute(select(Flag.station_id, Visit.local_day).join(
        Visit, Visit.id == Flag.visit_id).where(
        Flag.rule == DAILY_VOLUME, Flag.station_id.in_(sorted({s for s, _ in over}))))).all())
    out = {}
    for (sid, day), detail in over.items():
        if (sid, day) in marked:
            continue
        last_visit = max((v for v in visits if (v.station_id, v.local_day) == (sid, day)), key=lambda v: v.id)
        out[last_visit.id] = detail
    return out


async def _tell_hold(session: AsyncSession, flag_id: int, visit: Visit, n: int, detail: str,
                     limits: Thresholds) -> list[str]:
    assert visit.station_id is not None and visit.talent_id is not None
    station = await session.get(Station, visit.station_id)
    talent = await session.get(Talent, visit.talent_id)
    assert station is not None and talent is not None
    keys = []
    data = {"flag_id": flag_id, "station": station.name, "talent": talent.name, "detail": detail}
    for openid in (await notify.operators(session, [station.id])).get(station.id, []):
        keys.append(await notify.tell(session, f"hold:{flag_id}:{openid}", openid, notify.HOLD_OPERATOR.format(
            station=station.name, talent=talent.name, n=n), "hold", data))
    for openid in await notify.admins(session, limits.admin_openids):
        keys.append(await notify.tell(session, f"hold:{flag_id}:{openid}", openid, notify.HOLD_ADMIN.format(
            talent=talent.name, cert_no=talent.cert_no, minutes=limits.multi_station_minutes, n=n,
            flag_id=flag_id), "hold", data))
    return [k for k in keys if k]


async def release_flag(session: AsyncSession, flag_id: int, actor: str, *, now: datetime | None = None) -> Posted:
    """An admin releases a hold: the held visit's entries are posted (once). The caller then enqueues
    `apply_visit` (job id `apply_visit:{visit_id}:release`) so the live boards count them."""
    flag = await lock(session, Flag, flag_id)
    if flag is None or not flag.hold or flag.visit_id is None:
        return Posted(refused=Refusal.NOT_FOUND)
    if flag.status == "voided":
        return Posted(refused=Refusal.NOT_ACCEPTED)
    if flag.status == "open":
        flag.status, flag.resolved_at, flag.resolved_by = "released", now or utcnow(), actor
    return await ledger.apply_visit(session, flag.visit_id)


# -- voids -------------------------------------------------------------------------------------------


@dataclass
class Voided:
    """What a void did: the reversal post, the facts whose entries changed (for the boards), new outbox
    rows."""

    posted: Posted
    facts: list[tuple[str, int]] = field(default_factory=list)
    originals: list[int] = field(default_factory=list)  # the entries it reverses
    notifications: list[str] = field(default_factory=list)


async def _void_visit(session: AsyncSession, visit_id: int, now: datetime) -> list[int]:
    visit = await lock(session, Visit, visit_id)  # against a concurrent apply_visit of the same visit
    if visit is None:
        return []
    for f in (await session.scalars(select(Flag).where(
            Flag.visit_id == visit_id, Flag.status == "open"))).all():
        f.status, f.resolved_at = "voided", now
    if visit.applied_at is None:
        visit.applied_at = now  # handled: a later apply_visit posts nothing
    return await ledger.fact_entries(session, "visit", visit_id)


async def _resettle_media(session: AsyncSession, activity_id: int) -> list[int]:
    """Entries to reverse so that R2 pays the best report still standing (then apply_media pays it)."""
    levels = (await session.scalars(select(MediaReport.level).where(
        MediaReport.activity_id == activity_id, MediaReport.voided_at.is_(None),
        MediaReport.level.in_(MEDIA_LEVELS)))).all()
    target = max((media_points(lv) for lv in levels), default=0)
    paid = await session.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).where(
        Entry.fact_kind == "media", Entry.fact_id == activity_id))
    return await ledger.fact_entries(session, "media", activity_id) if target < int(paid or 0) else []


async def apply_void(session: AsyncSession, void_id: int, *, now: datetime | None = None) -> Voided:
    """Reverse everything the void's target produced; idempotent (reversal keys are `void:{entry id}`)."""
    now = now or utcnow()
    void = await session.get(Void, void_id)
    if void is None:
        return Voided(Posted(refused=Refusal.NOT_FOUND))
    kind, tid = void.target_kind, void.target_id
    facts: list[tuple[str, int]] = []
    ids: list[int] = []
    media_activity: int | None = None
    if kind == "entry":
        entry = await session.get(Entry, tid)
        if entry is not None and entry.reverses_id is None:
            ids = [entry.id]
            if entry.fact_id is not None:
                facts = [(entry.fact_kind, entry.fact_id)]
    elif kind == "visit":
        ids, facts = await _void_visit(session, tid, now), [("visit", tid)]
    elif kind == "flag":
        flag = await lock(session, Flag, tid)
        if flag is not None and flag.visit_id is not None:
            flag.status, flag.resolved_at, flag.resolved_by = "voided", now, void.actor
            ids, facts = await _void_visit(session, flag.visit_id, now), [("visit", flag.visit_id)]
    elif kind == "activity":
        activity = await lock(session, Activity, tid)
        if activity is not None:
            activity.status = "voided"  # R1 and R2 are not paid for it again
            ids = (await ledger.fact_entries(session, "activity", tid)
                   + await ledger.fact_entries(session, "media", tid))
            facts = [("activity", tid), ("media", tid)]
    elif kind == "media":
        report = await session.get(MediaReport, tid)
        if report is not None:
            await lock(session, Activity, report.activity_id)
            report.voided_at = report.voided_at or now
            media_activity = report.activity_id
            ids, facts = await _resettle_media(session, media_activity), [("media", media_activity)]
    posted = await ledger.reverse(session, ids, actor=void.actor, reason=void.reason) if ids \
        else Posted(already=True, refused=Refusal.NOT_FOUND)
    if media_activity is not None:
        await ledger.apply_media(session, media_activity, now=now)
    void.applied_at = void.applied_at or now
    out = Voided(posted, facts, ids)
    out.notifications = await _tell_void(session, void, posted.entries)
    return out


async def _tell_void(session: AsyncSession, void: Void, reversals: Iterable[Entry]) -> list[str]:
    per_station: dict[int, list[int]] = defaultdict(list)
    for e in reversals:
        if e.station_id is not None:
            per_station[e.station_id].append(e.amount)
    if not per_station:
        return []
    names = {sid: name for sid, name in (await session.execute(
        select(Station.id, Station.name).where(Station.id.in_(sorted(per_station))))).all()}
    recipients = await notify.operators(session, per_station)
    keys = []
    for sid, amounts in sorted(per_station.items()):
        text = notify.VOIDED_OPERATOR.format(station=names[sid], n=len(amounts), points=sum(amounts),
                                             reason=void.reason)
        data = {"void_id": void.id, "station": names[sid], "entries": len(amounts), "points": sum(amounts),
                "reason": void.reason}
        for openid in recipients.get(sid, []):
            keys.append(await notify.tell(session, f"void:{void.id}:{sid}:{openid}", openid, text, "void", data))
    return [k for k in keys if k]
