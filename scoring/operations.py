"""What a station's operator does: publish activities, upload publicity and media reports, see figures.

Each function records a fact in the caller's transaction and returns the new row or a typed refusal; the
caller enqueues the worker's job after commit (R1: scoring.facts.activity, R2: scoring.facts.media).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import periods
from scoring.boards import station_points, station_rank
from scoring.clock import utcnow
from scoring.facts import activity as activity_fact
from scoring.facts.common import DEFAULT, Job, Params
from scoring.models import (
    Activity,
    Attendance,
    Consultation,
    Entry,
    Flag,
    MediaReport,
    PublicityReport,
    Satisfaction,
    Signup,
    Station,
)
from scoring.rules import normalise_media_level

MAX_TITLE = 100
_SATISFIED = func.coalesce(func.sum(case((Satisfaction.score >= 4, 1), else_=0)), 0)
MAX_URL = 1000


class OpRefusal(StrEnum):
    BAD_TIME = "bad_time"
    START_IN_PAST = "start_in_past"
    END_BEFORE_START = "end_before_start"
    BAD_CAPACITY = "bad_capacity"
    BAD_TITLE = "bad_title"
    NOT_FOUND = "not_found"
    OTHER_STATION = "other_station"
    BAD_URL = "bad_url"
    BAD_LEVEL = "bad_level"
    VOIDED = "voided"
    STATION_DELISTED = "station_delisted"
    TOO_LONG = "too_long"  # longer than ACTIVITY_MAX_HOURS: an admin publishes it (its code credits all along)


def parse_local_time(text: str) -> datetime:
    """'YYYY-MM-DD HH:MM' in Asia/Shanghai -> naive UTC; ValueError otherwise."""
    return periods.to_utc_naive(datetime.strptime(text.strip(), "%Y-%m-%d %H:%M"))


def format_local(at: datetime) -> str:
    return periods.to_local(at).strftime("%Y-%m-%d %H:%M")


def parse_id(text: str) -> int | None:
    """Ids are shown and typed as `#12` or `12` (also `＃12` and full-width digits); None otherwise."""
    t = unicodedata.normalize("NFKC", text).strip().lstrip("#")
    return int(t) if t.isascii() and t.isdigit() and len(t) < 12 else None


def valid_url(url: str) -> bool:
    return url.startswith(("http://", "https://")) and 10 < len(url) <= MAX_URL and " " not in url


async def publish_activity(
    session: AsyncSession, station_id: int, *, title: str, starts_at: datetime, ends_at: datetime,
    capacity: int | None, theme: str, actor: str, now: datetime | None = None, max_hours: int | None = None,
) -> Activity | OpRefusal:
    """`max_hours`: the longest activity this publisher may publish (an operator: ACTIVITY_MAX_HOURS, as an
    activity's code credits talents throughout it); None for an admin."""
    now = now or utcnow()
    station = await session.get(Station, station_id)
    if station is None:
        return OpRefusal.NOT_FOUND
    if station.status != "active":
        return OpRefusal.STATION_DELISTED
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        return OpRefusal.BAD_TITLE
    if starts_at <= now:
        return OpRefusal.START_IN_PAST
    if ends_at <= starts_at:
        return OpRefusal.END_BEFORE_START
    if max_hours is not None and ends_at - starts_at > timedelta(hours=max_hours):
        return OpRefusal.TOO_LONG
    if capacity is not None and capacity < 0:
        return OpRefusal.BAD_CAPACITY
    activity = Activity(station_id=station_id, title=title, theme=theme.strip()[:2000], starts_at=starts_at,
                        ends_at=ends_at, capacity=capacity or None, published_at=now, published_by=actor)
    session.add(activity)
    await session.flush()
    return activity


@dataclass(frozen=True)
class Published:
    """A published activity, and whether it was published early enough for R1: at least `lead_hours`
    (the `activity_lead_hours` setting) before it starts. Too late is still published, but it will not earn
    the R1 activity points, and the operator is told at once."""

    activity: Activity
    meets_lead: bool
    lead_hours: int

    @property
    def job(self) -> Job:
        """The worker's R1 decision at the activity's end."""
        return activity_fact.job(self.activity.id, ends_at=self.activity.ends_at)


async def publish(
    session: AsyncSession, station_id: int, *, title: str, starts_at: datetime, ends_at: datetime,
    capacity: int | None, theme: str, actor: str, lead_hours: int, now: datetime | None = None,
    max_hours: int | None = None,
) -> Published | OpRefusal:
    """The operator's `发布活动`: publish_activity, and R1's lead condition judged at once."""
    made = await publish_activity(session, station_id, title=title, starts_at=starts_at, ends_at=ends_at,
                                  capacity=capacity, theme=theme, actor=actor, now=now, max_hours=max_hours)
    if isinstance(made, OpRefusal):
        return made
    return Published(made, activity_fact.meets_lead(made.published_at, made.starts_at, lead_hours), lead_hours)


async def own_activity(session: AsyncSession, station_id: int, activity_id: int) -> Activity | OpRefusal:
    activity = await session.get(Activity, activity_id)
    if activity is None:
        return OpRefusal.NOT_FOUND
    if activity.station_id != station_id:
        return OpRefusal.OTHER_STATION
    if activity.status != "published":
        return OpRefusal.VOIDED
    return activity


async def add_publicity(
    session: AsyncSession, station_id: int, activity_id: int, url: str, *, actor: str
) -> PublicityReport | OpRefusal:
    activity = await own_activity(session, station_id, activity_id)
    if isinstance(activity, OpRefusal):
        return activity
    if not valid_url(url):
        return OpRefusal.BAD_URL
    report = PublicityReport(activity_id=activity.id, url=url, uploaded_by=actor)
    session.add(report)
    await session.flush()
    return report


async def add_media(
    session: AsyncSession, station_id: int, activity_id: int, *, level: str, outlet: str, url: str, actor: str
) -> MediaReport | OpRefusal:
    activity = await own_activity(session, station_id, activity_id)
    if isinstance(activity, OpRefusal):
        return activity
    normalised = normalise_media_level(level)
    if normalised is None:
        return OpRefusal.BAD_LEVEL
    if not valid_url(url):
        return OpRefusal.BAD_URL
    report = MediaReport(activity_id=activity.id, level=normalised, outlet=outlet.strip()[:200], url=url,
                         uploaded_by=actor)
    session.add(report)
    await session.flush()
    return report


@dataclass(frozen=True)
class ActivitySummary:
    id: int
    title: str
    starts_at: datetime
    ends_at: datetime
    capacity: int | None
    signups: int
    attendees: int
    replies: int
    satisfied: int
    points: int
    r1_missing: tuple[str, ...]
    scored: bool  # R1 paid (and not voided)

    @property
    def satisfaction_rate(self) -> float | None:
        return self.satisfied / self.replies if self.replies else None


async def summarise_activity(
    session: AsyncSession, activity: Activity, *, now: datetime, params: Params = DEFAULT
) -> ActivitySummary:
    signups = await session.scalar(select(func.count(Signup.id)).where(
        Signup.activity_id == activity.id, Signup.cancelled_at.is_(None)))
    attendees = await session.scalar(select(func.count(Attendance.id)).where(Attendance.activity_id == activity.id))
    replies, satisfied = (await session.execute(select(
        func.count(Satisfaction.id), _SATISFIED)
        .where(Satisfaction.activity_id == activity.id))).one()
    points = await session.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).where(
        Entry.fact_kind.in_(("activity", "media")), Entry.fact_id == activity.id, Entry.station_id.is_not(None)))
    conditions = await activity_fact.conditions(session, activity, params, now=now)
    return ActivitySummary(
        id=activity.id, title=activity.title, starts_at=activity.starts_at, ends_at=activity.ends_at,
        capacity=activity.capacity, signups=int(signups or 0), attendees=int(attendees or 0),
        replies=int(replies or 0), satisfied=int(satisfied or 0), points=int(points or 0),
        r1_missing=tuple(name for name, ok in conditions.items() if not ok),
        scored=await activity_fact.paid(session, activity.id) > 0)


async def station_activities(
    session: AsyncSession, station_id: int, *, now: datetime | None = None, limit: int = 10,
    params: Params = DEFAULT,
) -> list[ActivitySummary]:
    now = now or utcnow()
    rows = (await session.scalars(select(Activity).where(Activity.station_id == station_id)
                                  .order_by(Activity.starts_at.desc()).limit(limit))).all()
    return [await summarise_activity(session, a, now=now, params=params) for a in rows]


async def satisfaction_rate(session: AsyncSession, station_id: int) -> tuple[int, int]:
    """(replies >= 4, replies) over all the station's activities and its rated consultations (咨询, whose
    answer a talent may rate 1-5 like an activity)."""
    replies, satisfied = (await session.execute(select(
        func.count(Satisfaction.id), _SATISFIED)
        .join(Activity, Activity.id == Satisfaction.activity_id).where(Activity.station_id == station_id))).one()
    rated, pleased = (await session.execute(select(
        func.count(Consultation.id), func.coalesce(func.sum(case((Consultation.rating >= 4, 1), else_=0)), 0))
        .where(Consultation.station_id == station_id, Consultation.rating.is_not(None)))).one()
    return int(satisfied or 0) + int(pleased or 0), int(replies or 0) + int(rated or 0)


async def open_flags(session: AsyncSession, station_id: int) -> int:
    return int(await session.scalar(select(func.count(Flag.id)).where(
        Flag.station_id == station_id, Flag.status == "open")) or 0)


async def has_plan(session: AsyncSession, station_id: int, month: str) -> bool:
    """SPEC 3: the plan for month M is the station's activities in M published before day 1 of M."""
    start, end = periods.Period("month", month).bounds()
    found = await session.scalar(select(Activity.id).where(
        Activity.station_id == station_id, Activity.status == "published", Activity.starts_at >= start,
        Activity.starts_at < end, Activity.published_at < start).limit(1))
    return found is not None


def next_month_of(now: datetime) -> str:
    return periods.next_month(periods.month_key(now))


@dataclass(frozen=True)
class StationFigures:
    """What an operator sees of their station (`本站`): points and ranks of the current month, year and all
    time (rank None: not ranked), satisfaction, open flags, and whether next month's plan is published."""

    station: Station
    points: dict[str, int]
    ranks: dict[str, int | None]
    satisfied: int
    replies: int
    open_flags: int
    next_month: str
    has_plan: bool


async def station_figures(session: AsyncSession, station_id: int, *, now: datetime) -> StationFigures | OpRefusal:
    station = await session.get(Station, station_id)
    if station is None:
        return OpRefusal.NOT_FOUND
    ranks: dict[str, int | None] = {}
    for kind in ("month", "year", "total"):
        line = await station_rank(session, station_id, periods.Period.parse(kind, now=now), now=now)
        ranks[kind] = line.rank if line is not None else None
    satisfied, replies = await satisfaction_rate(session, station_id)
    nxt = next_month_of(now)
    return StationFigures(station=station, points=await station_points(session, station_id, now), ranks=ranks,
                          satisfied=satisfied, replies=replies, open_flags=await open_flags(session, station_id),
                          next_month=nxt, has_plan=await has_plan(session, station_id, nxt))
