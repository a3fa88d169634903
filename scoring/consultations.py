"""Consultations (咨询) with first-responder ownership (首问责任, policy measure 8).

- A talent asks a station (active, not delisted) or the city (`station_id` None). Every operator of the
  station is told with the question and its id (outbox, same transaction); a city question, or a station
  with no operator, goes to the admins.
- The first staff member to claim or answer owns it: a conditional UPDATE ... WHERE owner IS NULL, so of
  any number of concurrent claims exactly one changes the row (PostgreSQL re-checks the WHERE after the
  winner commits; SQLite serialises writers from BEGIN). `first_owner_openid` keeps who that was for good.
- Only the owner, or an admin, answers further, transfers or closes. A transfer moves `owner_openid` to an
  active operator of the same station or an admin, and is kept in the history (ConsultationEvent).
- Staff see and touch only their station's questions; admins (scope None) all of them.
- An answer goes to the talent through the outbox: a customer-service message while the talent's 48-hour
  window (from their last message about it, `talent_last_at`) is open, a template message after.
- The talent may rate the answered question once, 1-5.
- Escalation (worker cron): a question nobody claimed or answered within `hours` working hours
  (Mon-Fri WORK_START-WORK_END, Asia/Shanghai; public holidays are not known) goes to the station's staff
  again (level 1), and after twice that to the admins (level 2).
- Texts are stored as written, up to MAX_TEXT characters. A talent has at most `max_open` open questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from statistics import median
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import outbox
from scoring.admin import operators_of
from scoring.models import Consultation, ConsultationEvent, Staff, Station, Talent
from scoring.periods import TZ, to_local
from scoring.texts import admin as admin_texts
from scoring.texts import operator as operator_texts

MAX_TEXT: Final = 500
WINDOW: Final = timedelta(hours=48)
WORK_START: Final = time(9)
WORK_END: Final = time(18)



class ConsultRefusal(StrEnum):
    EMPTY = "empty"
    TOO_LONG = "too_long"
    TOO_MANY = "too_many"
    NO_STATION = "no_station"
    DELISTED = "delisted"
    NOT_FOUND = "not_found"  # unknown, or another station's (staff never learn which)
    CLOSED = "closed"
    OWNED = "owned"  # someone else owns it; `owner` says who
    BAD_TARGET = "bad_target"  # transfer to someone who is not staff of the station
    NOT_ANSWERED = "not_answered"  # rating before any answer
    RATED = "rated"  # already rated
    BAD_SCORE = "bad_score"


@dataclass(frozen=True)
class Notices:
    """The pushes' str.format templates (from the caller's texts): `asked` to staff {id} {station} {question};
    `answer` to the talent {id} {answer}; `transferred` to the new owner {id} {question}; `closed` to the
    talent {id}."""

    asked: str
    answer: str
    transferred: str
    closed: str


@dataclass(frozen=True)
class Refused:
    reason: ConsultRefusal
    owner: str | None = None  # OWNED: the owner's openid
    limit: int = 0


@dataclass(frozen=True)
class Done:
    consultation: Consultation
    told: int = 0  # messages queued
    claimed: bool = False  # this call made the actor the owner


def _scope_ok(c: Consultation, scope: int | None) -> bool:
    """Admins (scope None) see every question; an operator their station's only."""
    return scope is None or c.station_id == scope


async def admins(session: AsyncSession, admin_openids: frozenset[str]) -> list[str]:
    rows = (await session.scalars(select(Staff.openid).where(Staff.role == "admin", Staff.active))).all()
    return sorted(set(rows) | set(admin_openids))


async def staff_id(session: AsyncSession, openid: str) -> int | None:
    """The staff row id people refer to a colleague by (None: an ADMIN_OPENIDS admin with no row)."""
    return await session.scalar(select(Staff.id).where(Staff.openid == openid))


async def colleagues(session: AsyncSession, station_id: int | None) -> list[int]:
    """The staff ids a question of `station_id` may be transferred to: its active operators and the admins."""
    q = select(Staff.id).where(Staff.active)
    q = q.where((Staff.station_id == station_id) | (Staff.role == "admin")) if station_id is not None \
        else q.where(Staff.role == "admin")
    return list((await session.scalars(q.order_by(Staff.id))).all())


async def _recipients(session: AsyncSession, station_id: int | None, admin_openids: frozenset[str]) -> list[str]:
    ops = await operators_of(session, station_id) if station_id is not None else []
    return ops or await admins(session, admin_openids)


def _event(session: AsyncSession, c: Consultation, actor: str, kind: str, now: datetime, text: str = "",
           target: str | None = None) -> ConsultationEvent:
    ev = ConsultationEvent(consultation_id=c.id, at=now, actor=actor[:80], kind=kind, text=text, target=target)
    session.add(ev)
    return ev


def _text_bad(text: str) -> ConsultRefusal | None:
    if not text.strip():
        return ConsultRefusal.EMPTY
    if len(text) > MAX_TEXT:
        return ConsultRefusal.TOO_LONG
    return None


async def ask(session: AsyncSession, *, talent_id: int, station_id: int | None, text: str, now: datetime,
              max_open: int, notices: Notices, admin_openids: frozenset[str] = frozenset()) -> Done | Refused:
    bad = _text_bad(text)
    if bad is not None:
        return Refused(bad)
    station = None
    if station_id is not None:
        station = await session.get(Station, station_id)
        if station is None:
            return Refused(ConsultRefusal.NO_STATION)
        if station.status != "active":
            return Refused(ConsultRefusal.DELISTED)
    open_now = int(await session.scalar(select(func.count(Consultation.id)).where(
        Consultation.talent_id == talent_id, Consultation.status == "open")) or 0)
    if open_now >= max_open:
        return Refused(ConsultRefusal.TOO_MANY, limit=max_open)
    c = Consultation(talent_id=talent_id, station_id=station_id, question=text, status="open", created_at=now,
                     talent_last_at=now, escalation_level=0)
    session.add(c)
    await session.flush()
    _event(session, c, f"talent:{talent_id}", "asked", now, text)
    told = 0
    msg = notices.asked.format(id=c.id, station=station.name if station else admin_texts.CONSULT_CITY, question=text)
    for openid in await _recipients(session, station_id, admin_openids):
        told += await outbox.add(session, f"ask:{c.id}:{openid}", openid, {"text": msg})
    return Done(c, told)


async def follow_up(session: AsyncSession, *, talent_id: int, cid: int, text: str, now: datetime, notice: str,
                    admin_openids: frozenset[str] = frozenset()) -> Done | Refused:
    """The talent adds to their open question (`咨询 #id ...`): kept in the history, told to its owner (else
    to whoever would have been told of the question), and it reopens the 48-hour window. `notice` is a
    str.format template with {id} {text}."""
    bad = _text_bad(text)
    if bad is not None:
        return Refused(bad)
    c = await session.get(Consultation, cid, populate_existing=True)
    if c is None or c.talent_id != talent_id:
        return Refused(ConsultRefusal.NOT_FOUND)
    if c.status != "open":
        return Refused(ConsultRefusal.CLOSED)
    c.talent_last_at = now
    ev = _event(session, c, f"talent:{talent_id}", "followup", now, text)
    await session.flush()
    told = 0
    targets = [c.owner_openid] if c.owner_openid else await _recipients(session, c.station_id, admin_openids)
    for openid in targets:
        told += await outbox.add(session, f"followup:{ev.id}:{openid}", openid,
                                 {"text": notice.format(id=c.id, text=text)})
    return Done(c, told)


async def _get(session: AsyncSession, cid: int, scope: int | None) -> Consultation | Refused:
    c = await session.get(Consultation, cid, populate_existing=True)
    if c is None or not _scope_ok(c, scope):
        return Refused(ConsultRefusal.NOT_FOUND)
    if c.status != "open":
        return Refused(ConsultRefusal.CLOSED)
    return c


async def _take(session: AsyncSession, c: Consultation, actor: str, now: datetime) -> bool:
    """Make `actor` the owner if nobody is: True when this call did it."""
    result = await session.execute(update(Consultation).where(
        Consultation.id == c.id, Consultation.owner_openid.is_(None), Consultation.status == "open")
        .values(owner_openid=actor, first_owner_openid=actor, first_response_at=now)
        .execution_options(synchronize_session=False))
    won = int(getattr(result, "rowcount", 0) or 0) == 1
    await session.refresh(c)
    return won


async def _own(session: AsyncSession, c: Consultation, actor: str, scope: int | None, now: datetime
               ) -> bool | Refused:
    """Take an unowned question for `actor`; refuse when another owns it (admins may act anyway). True when
    this call made `actor` the owner."""
    claimed = c.owner_openid is None and await _take(session, c, actor, now)
    if claimed:
        _event(session, c, actor, "claimed", now)
    if c.owner_openid != actor and scope is not None:
        return Refused(ConsultRefusal.OWNED, owner=c.owner_openid)
    return claimed


async def claim(session: AsyncSession, *, cid: int, actor: str, scope: int | None, now: datetime
                ) -> Done | Refused:
    c = await _get(session, cid, scope)
    if isinstance(c, Refused):
        return c
    if c.owner_openid == actor:
        return Done(c)
    if not await _take(session, c, actor, now):
        return Refused(ConsultRefusal.OWNED, owner=c.owner_openid)
    _event(session, c, actor, "claimed", now)
    await session.flush()
    return Done(c, claimed=True)


async def answer(session: AsyncSession, *, cid: int, actor: str, scope: int | None, text: str, now: datetime,
                 notices: Notices) -> Done | Refused:
    bad = _text_bad(text)
    if bad is not None:
        return Refused(bad)
    c = await _get(session, cid, scope)
    if isinstance(c, Refused):
        return c
    claimed = await _own(session, c, actor, scope, now)
    if isinstance(claimed, Refused):
        return claimed
    ev = _event(session, c, actor, "answered", now, text)
    if c.first_answer_at is None:
        c.first_answer_at = now
    await session.flush()
    told = await _tell_talent(session, c, f"answer:{ev.id}", notices.answer.format(id=c.id, answer=text), now)
    return Done(c, told, claimed)


async def _tell_talent(session: AsyncSession, c: Consultation, key: str, text: str, now: datetime) -> int:
    talent = await session.get(Talent, c.talent_id)
    if talent is None or talent.openid is None:
        return 0
    if now - c.talent_last_at < WINDOW:
        return int(await outbox.add(session, key, talent.openid, {"text": text}, channel="custom"))
    return int(await outbox.add(session, key, talent.openid, {
        "text": text, "template": "consultation_answer", "data": {"consultation_id": c.id}}))


async def transfer(session: AsyncSession, *, cid: int, actor: str, scope: int | None, target: str, now: datetime,
                   notices: Notices) -> Done | Refused:
    """Hand the question to `target` (a staff id as digits, or an openid): an active operator of its
    station, or an admin."""
    c = await _get(session, cid, scope)
    if isinstance(c, Refused):
        return c
    t = target.strip().lstrip("#＃")
    q = select(Staff).where(Staff.active, Staff.id == int(t)) if t.isascii() and t.isdigit() and len(t) < 10 \
        else select(Staff).where(Staff.active, Staff.openid == t)
    to = await session.scalar(q)
    if to is None or not (to.role == "admin" or (c.station_id is not None and to.station_id == c.station_id)):
        return Refused(ConsultRefusal.BAD_TARGET)
    owned = await _own(session, c, actor, scope, now)
    if isinstance(owned, Refused):
        return owned
    c.owner_openid = to.openid
    _event(session, c, actor, "transferred", now, target=to.openid)
    await session.flush()
    told = int(await outbox.add(session, f"transfer:{c.id}:{to.openid}:{int(now.timestamp())}", to.openid,
                                {"text": notices.transferred.format(id=c.id, question=c.question)}))
    return Done(c, told)


async def close(session: AsyncSession, *, cid: int, actor: str, scope: int | None, now: datetime,
                notices: Notices) -> Done | Refused:
    c = await _get(session, cid, scope)
    if isinstance(c, Refused):
        return c
    owned = await _own(session, c, actor, scope, now)
    if isinstance(owned, Refused):
        return owned
    c.status, c.closed_at = "closed", now
    _event(session, c, actor, "closed", now)
    await session.flush()
    told = await _tell_talent(session, c, f"closed:{c.id}", notices.closed.format(id=c.id), now)
    return Done(c, told)


async def rate(session: AsyncSession, *, talent_id: int, cid: int, score: int, now: datetime) -> Done | Refused:
    if not 1 <= score <= 5:
        return Refused(ConsultRefusal.BAD_SCORE)
    c = await session.get(Consultation, cid, populate_existing=True)
    if c is None or c.talent_id != talent_id:
        return Refused(ConsultRefusal.NOT_FOUND)
    if c.first_answer_at is None:
        return Refused(ConsultRefusal.NOT_ANSWERED)
    if c.rating is not None:
        return Refused(ConsultRefusal.RATED)
    c.rating, c.rated_at, c.talent_last_at = score, now, now
    _event(session, c, f"talent:{talent_id}", "rated", now, str(score))
    await session.flush()
    return Done(c)


@dataclass(frozen=True)
class Open:
    id: int
    station: str  # "" for the city
    question: str
    created_at: datetime
    owner: str | None
    mine: bool


async def todo(session: AsyncSession, *, actor: str, scope: int | None, limit: int = 20) -> list[Open]:
    """The open questions a staff member should see: theirs, and the unowned ones of their station (an
    admin: the unowned city questions and every question they own). Oldest first."""
    unowned = Consultation.owner_openid.is_(None)
    where = (Consultation.owner_openid == actor) | (
        unowned & (Consultation.station_id.is_(None) if scope is None else Consultation.station_id == scope))
    rows = (await session.execute(
        select(Consultation, Station.name).outerjoin(Station, Station.id == Consultation.station_id)
        .where(Consultation.status == "open", where).order_by(Consultation.created_at, Consultation.id)
        .limit(limit))).all()
    return [Open(id=c.id, station=name or "", question=c.question, created_at=c.created_at, owner=c.owner_openid,
                 mine=c.owner_openid == actor) for c, name in rows]


async def history(session: AsyncSession, cid: int) -> list[ConsultationEvent]:
    return list((await session.scalars(select(ConsultationEvent).where(
        ConsultationEvent.consultation_id == cid).order_by(ConsultationEvent.id))).all())


# -- escalation ----------------------------------------------------------------------------------------------
def add_working_hours(start: datetime, hours: float) -> datetime:
    """`start` (naive UTC) plus `hours` of working time (Mon-Fri WORK_START-WORK_END local), as naive UTC."""
    cur = to_local(start)
    left = timedelta(hours=hours)
    while True:
        day_start = datetime.combine(cur.date(), WORK_START, tzinfo=TZ)
        day_end = datetime.combine(cur.date(), WORK_END, tzinfo=TZ)
        if cur.weekday() >= 5 or cur >= day_end:
            cur = datetime.combine(cur.date() + timedelta(days=1), WORK_START, tzinfo=TZ)
            continue
        cur = max(cur, day_start)
        if cur + left <= day_end:
            return (cur + left).astimezone(UTC).replace(tzinfo=None)
        left -= day_end - cur
        cur = day_end


@dataclass
class Escalated:
    staff: int = 0  # questions sent to the station's staff again
    admins: int = 0  # questions sent to the admins
    queued: int = 0


async def escalate(session: AsyncSession, now: datetime, *, hours: float,
                   admin_openids: frozenset[str] = frozenset(), batch: int = 500) -> Escalated:
    """Open questions nobody took: after `hours` working hours to the station's staff again, after twice that
    to the admins. Each level once (keys `escalate:{id}:{level}:{openid}`)."""
    out = Escalated()
    rows = (await session.execute(
        select(Consultation, Station.name).outerjoin(Station, Station.id == Consultation.station_id)
        .where(Consultation.status == "open", Consultation.first_response_at.is_(None),
               Consultation.escalation_level < 2, Consultation.created_at <= now - timedelta(hours=hours))
        .order_by(Consultation.id).limit(batch))).all()
    shown = f"{hours:g}"
    for c, name in rows:
        level = c.escalation_level
        if level == 0 and add_working_hours(c.created_at, hours) <= now:
            level = 1
            for openid in await _recipients(session, c.station_id, admin_openids):
                out.queued += await outbox.add(session, f"escalate:{c.id}:1:{openid}", openid, {
                    "text": operator_texts.CONSULT_ESCALATED_STAFF.format(id=c.id, hours=shown, question=c.question)})
            out.staff += 1
        if level == 1 and add_working_hours(c.created_at, 2 * hours) <= now:
            level = 2
            for openid in await admins(session, admin_openids):
                out.queued += await outbox.add(session, f"escalate:{c.id}:2:{openid}", openid, {
                    "text": admin_texts.CONSULT_ESCALATED_ADMIN.format(
                        id=c.id, hours=f"{2 * hours:g}", question=c.question,
                        station=name or admin_texts.CONSULT_CITY)})
            out.admins += 1
        if level != c.escalation_level:
            c.escalation_level = level
            _event(session, c, "system", "escalated", now, str(level))
    await session.flush()
    return out


# -- figures -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StationFigures:
    station_id: int | None
    questions: int
    answered: int
    median_minutes: float | None  # time to first answer
    p90_minutes: float | None
    escalated: int
    ratings: int
    rating_avg: float | None
    satisfied: int  # ratings >= 4 (the satisfaction rate's numerator, as for activities)


def _p90(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, -(-9 * len(s) // 10) - 1))]


async def figures(session: AsyncSession, since: datetime | None = None, until: datetime | None = None
                  ) -> list[StationFigures]:
    """Per station (None: the city): questions asked in [since, until), time to first answer, escalations,
    answer ratings."""
    q = select(Consultation.station_id, Consultation.created_at, Consultation.first_answer_at,
               Consultation.escalation_level, Consultation.rating)
    if since is not None:
        q = q.where(Consultation.created_at >= since)
    if until is not None:
        q = q.where(Consultation.created_at < until)
    by: dict[int | None, list[tuple[datetime, datetime | None, int, int | None]]] = {}
    for sid, created, answered, level, rating in (await session.execute(q)).all():
        by.setdefault(sid, []).append((created, answered, level, rating))
    out = []
    for sid in sorted(by, key=lambda k: (k is None, k or 0)):
        rows = by[sid]
        waits = [(a - c).total_seconds() / 60 for c, a, _, _ in rows if a is not None]
        rated = [r for _, _, _, r in rows if r is not None]
        out.append(StationFigures(
            station_id=sid, questions=len(rows), answered=len(waits),
            median_minutes=median(waits) if waits else None, p90_minutes=_p90(waits) if waits else None,
            escalated=sum(1 for _, _, lv, _ in rows if lv > 0), ratings=len(rated),
            rating_avg=sum(rated) / len(rated) if rated else None, satisfied=sum(1 for r in rated if r >= 4)))
    return out
