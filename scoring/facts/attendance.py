"""Attendance (签到): a talent present at an activity, by scanning its code ([A1.2] "参加活动").

- **When**: from `grace` (ACTIVITY_CODE_GRACE_MINUTES, default EARLY: 30 minutes) before the activity starts
  until `grace` after it ends (scoring.tokens.activity_window), so a printed or shared code credits no one
  outside its activity's time, however old the code; the activity must be
  published and its station active; the scan goes through the same checks as a station's
  (scoring.visits.refusal). A talent who has not signed up is a walk-in, admitted while seats remain
  (scoring.visits.seats_taken); one attendance per talent and activity.
- **Points**: attending is a visit at the activity's station under R3 (scoring/facts/visit.py): the
  attendance is recorded with its visit, which earns the day's credit there unless it was given already.
  So an attendance has no entries of its own: `apply` credits its visit, `unapplied` is empty (the
  visits are swept as visits) and the bot enqueues the visit's job (`Attended.visit.job`).
- **R1**: the distinct talents with an attendance are the activity's attendees (`attendees`), which
  R1 counts against `min_attendees` (scoring/facts/activity.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.db import lock
from scoring.facts import visit
from scoring.facts.common import DEFAULT, Applied, Job, Params, Refusal, Refused
from scoring.models import Activity, Attendance, Signup, Staff, Station, Talent
from scoring.tokens import ACTIVITY_GRACE, Window, activity_window
from scoring.visits import Outcome, Reason, Rejected, Scan, Source, record_visit, refusal, seats_taken, store_rejected

KIND: Final = "attendance"
EARLY: Final = ACTIVITY_GRACE


@dataclass(frozen=True)
class Attended:
    """The talent is checked in at the activity. `visit` is the R3 outcome at the activity's station
    (Rejected(ALREADY_TODAY) when the day's credit there was already given); `first` is False when this
    talent had already checked in at this activity; `walk_in` when they had not signed up."""

    attendance: Attendance
    visit: Outcome
    activity: Activity
    first: bool = True
    walk_in: bool = False


def window(activity: Activity, at: datetime, grace: timedelta = EARLY) -> Reason | None:
    """The activity's opening hours for check-in: `grace` before the start until `grace` after the end."""
    closed = activity_window(at, activity.starts_at, activity.ends_at, grace)
    if closed is Window.NOT_STARTED:
        return Reason.ACTIVITY_NOT_STARTED
    if closed is Window.ENDED:
        return Reason.ACTIVITY_ENDED
    return None


async def record(session: AsyncSession, *, openid: str, activity_id: int | None, at: datetime,
                 code_error: Reason | None = None, grace: timedelta = EARLY) -> Attended | Rejected:
    """A talent scanned an activity's code (`ac:<id>:<token>`, verified by the caller; a failed
    verification comes as `code_error`). Records the attendance and its R3 visit, in the caller's
    transaction; refusals are stored as rejected visits like any other scan, and name the activity (its
    station, title and start) when it is known, for the reply."""
    scan = Scan(openid=openid, at=at, source=Source.ACTIVITY, code_error=code_error)
    activity = await lock(session, Activity, activity_id) if activity_id is not None and code_error is None \
        else None  # locked: the last seat goes to one walk-in
    if activity is None:
        return await store_rejected(session, scan, None, None, code_error or Reason.UNKNOWN_ACTIVITY)
    scan = replace(scan, activity_id=activity.id, station_id=activity.station_id)
    station_status = await session.scalar(select(Station.status).where(Station.id == activity.station_id)) \
        if activity.status == "published" else None
    talent_id = await session.scalar(select(Talent.id).where(Talent.openid == openid))
    staff = await session.scalar(select(Staff.id).where(
        Staff.openid == openid, Staff.station_id == activity.station_id, Staff.active.is_(True))) is not None
    reason = refusal(None, station_status, talent_id, staff, unknown=Reason.UNKNOWN_ACTIVITY,
                     window=window(activity, at, grace))
    if reason is not None:
        return await _named(session, activity, await store_rejected(
            session, scan, talent_id if reason is Reason.STAFF_OWN_STATION else None, activity.station_id, reason))
    assert talent_id is not None
    attendance = await session.scalar(select(Attendance).where(
        Attendance.activity_id == activity.id, Attendance.talent_id == talent_id))
    first = attendance is None
    signed_up = await session.scalar(select(Signup.id).where(
        Signup.activity_id == activity.id, Signup.talent_id == talent_id, Signup.cancelled_at.is_(None)))
    walk_in = signed_up is None
    if attendance is None and walk_in and activity.capacity is not None \
            and await seats_taken(session, activity.id) >= activity.capacity:
        return await _named(session, activity, await store_rejected(session, scan, talent_id, activity.station_id,
                                                                   Reason.ACTIVITY_FULL))
    outcome = await record_visit(session, replace(scan, talent_id=talent_id))
    if attendance is None:
        attendance = Attendance(activity_id=activity.id, talent_id=talent_id, visit_id=outcome.visit.id
                                if outcome.visit is not None else None, created_at=at)
        session.add(attendance)
        await session.flush()
    return Attended(attendance=attendance, visit=outcome, activity=activity, first=first, walk_in=walk_in)


async def _named(session: AsyncSession, activity: Activity, rejected: Rejected) -> Rejected:
    station = await session.scalar(select(Station.name).where(Station.id == activity.station_id))
    return replace(rejected, station_name=station or "", title=activity.title, starts_at=activity.starts_at)


def attendees(activity_id: Any) -> Any:
    """SQL: how many distinct talents attended the activity (`activity_id` is a value or a column)."""
    return select(func.count(func.distinct(Attendance.talent_id))).where(
        Attendance.activity_id == activity_id).scalar_subquery()


async def apply(session: AsyncSession, attendance_id: int, params: Params = DEFAULT, *,
                now: datetime | None = None) -> Applied | Refused:
    """Credit the attendance's visit (R3); an attendance whose visit earned no credit (the day's was
    given already) is refused as NOT_ACCEPTED."""
    visit_id = await session.scalar(select(Attendance.visit_id).where(Attendance.id == attendance_id))
    if visit_id is None:
        return Refused(Refusal.NOT_FOUND)
    return await visit.apply(session, visit_id, params, now=now)


async def unapplied(session: AsyncSession, *, cutoff: datetime, now: datetime, params: Params = DEFAULT,
                    limit: int = 5000) -> list[int]:
    """None: an attendance's points are its visit's, which the visit rule sweeps."""
    return []


def job(attendance_id: int) -> Job:
    return Job(KIND, attendance_id)
