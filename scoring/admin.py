"""What an admin does, as domain calls shared by the bot's admin words and `talenthome admin`.

Each function works in the caller's transaction and returns the row it made or a typed refusal. Points are
never set directly: a void, a survey result or a release is a fact the worker applies to the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import outbox, periods
from scoring.clock import utcnow
from scoring.db import lock
from scoring.facts import survey as survey_fact
from scoring.facts import visit as visit_fact
from scoring.facts.common import Job
from scoring.models import (
    Activity,
    AuditLog,
    DeadLetter,
    Delisting,
    Entry,
    Extension,
    Flag,
    MediaReport,
    Staff,
    Station,
    SurveyResult,
    Visit,
    Void,
    Warning,
)

KINDS = ("home", "community")
TYPES = ("comprehensive", "industry", "professional", "service")
VOID_TARGETS = {"entry": Entry, "visit": Visit, "activity": Activity, "media": MediaReport}
MAX_EXTENSION_DAYS = 366


class AdminRefusal(StrEnum):
    BAD_ARGS = "bad_args"
    EXISTS = "exists"
    NO_STATION = "no_station"
    NO_TARGET = "no_target"
    ALREADY = "already"
    OUT_OF_RANGE = "out_of_range"
    SURVEY_CAP = "survey_cap"
    NO_FLAG = "no_flag"
    NO_DEAD = "no_dead"


async def station_by_code(session: AsyncSession, code: str) -> Station | None:
    return await session.scalar(select(Station).where(Station.code == code))


async def add_station(
    session: AsyncSession, *, code: str, name: str, kind: str, type: str, county: str, certified_on: date
) -> Station | AdminRefusal:
    if kind not in KINDS or type not in TYPES or not code or len(code) > 32 or not name:
        return AdminRefusal.BAD_ARGS
    if await station_by_code(session, code) is not None:
        return AdminRefusal.EXISTS
    station = Station(code=code, name=name, kind=kind, type=type, county=county, certified_on=certified_on,
                      eligible_from=periods.eligible_from(certified_on), stars=3, status="active")
    session.add(station)
    await session.flush()
    return station


async def delist_station(session: AsyncSession, code: str, reason: str, *, now: datetime | None = None
                         ) -> Station | AdminRefusal:
    station = await station_by_code(session, code)
    if station is None:
        return AdminRefusal.NO_STATION
    if station.status == "delisted":
        return AdminRefusal.ALREADY
    station.status, station.delisted_at = "delisted", now or utcnow()
    station.delisted_code, station.delisted_params = Delisting.ADMIN, {"text": reason}
    return station


async def reinstate_station(session: AsyncSession, code: str) -> Station | AdminRefusal:
    station = await station_by_code(session, code)
    if station is None:
        return AdminRefusal.NO_STATION
    if station.status == "active":
        return AdminRefusal.ALREADY
    station.status, station.delisted_at, station.delisted_code, station.delisted_params = "active", None, None, None
    station.demotion_streak = 0
    return station


async def add_staff(session: AsyncSession, openid: str, role: str, station_code: str | None
                    ) -> Staff | AdminRefusal:
    """Adds or updates one staff member (one role per openid)."""
    if role not in ("operator", "admin") or not openid or len(openid) > 64:
        return AdminRefusal.BAD_ARGS
    station_id = None
    if role == "operator":
        if not station_code:
            return AdminRefusal.BAD_ARGS
        station = await station_by_code(session, station_code)
        if station is None:
            return AdminRefusal.NO_STATION
        station_id = station.id
    staff = await session.scalar(select(Staff).where(Staff.openid == openid))
    if staff is None:
        staff = Staff(openid=openid, role=role, station_id=station_id, active=True)
        session.add(staff)
    else:
        staff.role, staff.station_id, staff.active = role, station_id, True
    await session.flush()
    return staff


async def remove_staff(session: AsyncSession, openid: str) -> Staff | AdminRefusal:
    staff = await session.scalar(select(Staff).where(Staff.openid == openid))
    if staff is None:
        return AdminRefusal.NO_TARGET
    if not staff.active:
        return AdminRefusal.ALREADY
    staff.active = False
    return staff


async def request_void(session: AsyncSession, target_kind: str, target_id: int, *, actor: str, reason: str
                       ) -> Void | AdminRefusal:
    """Record a void; the worker writes the reversal entries (scoring/facts/void.py). The same target twice: ALREADY."""
    model = VOID_TARGETS.get(target_kind)
    if model is None or not reason.strip():
        return AdminRefusal.BAD_ARGS
    if await session.get(model, target_id) is None:
        return AdminRefusal.NO_TARGET
    if await session.scalar(select(Void.id).where(Void.target_kind == target_kind, Void.target_id == target_id)):
        return AdminRefusal.ALREADY
    void = Void(target_kind=target_kind, target_id=target_id, actor=actor, reason=reason.strip())
    session.add(void)
    await session.flush()
    return void


@dataclass(frozen=True)
class SurveyCapped:
    """A survey result refused because the year's R4 total would leave [-50, +50]: the total so far."""

    committed: int  # applied and pending
    reason: AdminRefusal = AdminRefusal.SURVEY_CAP


async def record_survey(session: AsyncSession, code: str, year: int, amount: int, *, actor: str, reason: str
                        ) -> SurveyResult | SurveyCapped | AdminRefusal:
    """R4: refused at once when the year's total (applied and pending) would leave [-50, +50] (SurveyCapped
    says the total so far); the worker checks again in the transaction that writes the entry."""
    station = await station_by_code(session, code)
    if station is None:
        return AdminRefusal.NO_STATION
    if amount == 0 or not 2000 <= year <= 2100 or not reason.strip():
        return AdminRefusal.BAD_ARGS
    committed = await survey_committed(session, station.id, year)
    if not survey_fact.within_cap(committed, amount):
        return SurveyCapped(committed)
    survey = SurveyResult(station_id=station.id, year=year, amount=amount, reason=reason.strip(),
                          entered_by=actor, status="pending")
    session.add(survey)
    await session.flush()
    return survey


async def survey_committed(session: AsyncSession, station_id: int, year: int) -> int:
    """A station's R4 total for a year: applied entries plus results still pending in the queue."""
    pending = await session.scalar(select(func.coalesce(func.sum(SurveyResult.amount), 0)).where(
        SurveyResult.station_id == station_id, SurveyResult.year == year, SurveyResult.status == "pending"))
    return await survey_fact.total(session, station_id, year) + int(pending or 0)


async def grant_extension(session: AsyncSession, code: str, year: int, days: int, *, actor: str, reason: str
                          ) -> Extension | AdminRefusal:
    station = await station_by_code(session, code)
    if station is None:
        return AdminRefusal.NO_STATION
    if not 2000 <= year <= 2100 or not reason.strip():
        return AdminRefusal.BAD_ARGS
    if not 1 <= days <= MAX_EXTENSION_DAYS:
        return AdminRefusal.OUT_OF_RANGE
    ext = Extension(station_id=station.id, year=year, days=days, reason=reason.strip(), granted_by=actor)
    session.add(ext)
    await session.flush()
    return ext


async def operators_of(session: AsyncSession, station_id: int) -> list[str]:
    return list((await session.scalars(select(Staff.openid).where(
        Staff.station_id == station_id, Staff.role == "operator", Staff.active))).all())


async def warn_station(session: AsyncSession, code: str, note: str, *, actor: str, message: str
                       ) -> Warning | AdminRefusal:
    """Record a warning talk (提醒谈话) and tell the station's operators (`message` is their text)."""
    station = await station_by_code(session, code)
    if station is None:
        return AdminRefusal.NO_STATION
    if not note.strip():
        return AdminRefusal.BAD_ARGS
    warning = Warning(station_id=station.id, note=note.strip(), actor=actor)
    session.add(warning)
    await session.flush()
    for openid in await operators_of(session, station.id):
        await outbox.add(session, f"warn:{warning.id}:{openid}", openid, {"text": message})
    return warning


@dataclass(frozen=True)
class FlagView:
    id: int
    rule: str
    hold: bool
    station: str | None
    talent_id: int | None
    visit_id: int | None
    params: Mapping[str, Any]  # the rule's numbers: scoring/texts/admin.py `flag_detail` says them
    created_at: datetime


async def list_flags(session: AsyncSession, limit: int = 20) -> list[FlagView]:
    rows = (await session.execute(
        select(Flag, Station.code).outerjoin(Station, Station.id == Flag.station_id)
        .where(Flag.status == "open").order_by(Flag.id).limit(limit))).all()
    return [FlagView(f.id, f.rule, f.hold, code, f.talent_id, f.visit_id, dict(f.params or {}), f.created_at)
            for f, code in rows]


@dataclass(frozen=True)
class Released:
    """A released flag; `job` credits the visit a hold kept out (None for a flag that held nothing)."""

    flag: Flag
    job: Job | None


async def release_flag(session: AsyncSession, flag_id: int, actor: str, *, now: datetime | None = None
                       ) -> Released | AdminRefusal:
    """An admin releases an open flag (`释放`), in the caller's transaction: the release is recorded with the
    flag (status released, by whom, when), so the held visit is pending again and the worker credits it
    unscreened (scoring/facts/visit.py); the caller enqueues `job`, and the sweeper would find it anyway."""
    flag = await lock(session, Flag, flag_id)
    if flag is None:
        return AdminRefusal.NO_FLAG
    if flag.status != "open":
        return AdminRefusal.ALREADY
    flag.status, flag.resolved_at, flag.resolved_by = "released", now or utcnow(), actor
    return Released(flag, visit_fact.job(flag.visit_id, release=flag.id)
                    if flag.hold and flag.visit_id is not None else None)


async def dead_letters(session: AsyncSession, limit: int = 20) -> list[DeadLetter]:
    return list((await session.scalars(select(DeadLetter).where(DeadLetter.resolved_at.is_(None))
                                       .order_by(DeadLetter.id).limit(limit))).all())


async def take_dead_letter(session: AsyncSession, dead_id: int) -> DeadLetter | AdminRefusal:
    """Mark one dead letter resolved so it can be retried (the caller enqueues its task again)."""
    dead = await session.get(DeadLetter, dead_id)
    if dead is None:
        return AdminRefusal.NO_DEAD
    if dead.resolved_at is not None:
        return AdminRefusal.ALREADY
    dead.resolved_at = utcnow()
    return dead


def retry_job(dead: DeadLetter) -> Job:
    """An admin's retry of a dead letter: the worker's apply of its fact (`task` holds the fact's kind;
    a dead letter from before issue 10 names the task, `apply_{kind}`) under a new job id,
    `{kind}:{fact}:retry{dead letter}`."""
    return Job(dead.task.removeprefix("apply_"), dead.fact_id, f"retry{dead.id}")


async def audit_tail(session: AsyncSession, n: int = 10) -> list[AuditLog]:
    rows = (await session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(n))).all()
    return list(reversed(rows))
