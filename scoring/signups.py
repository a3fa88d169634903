"""Activities a talent can see and sign up for (SPEC 3, "Open enrolment").

- The list shows upcoming published activities of every station, soonest first; nothing filters by the
  talent's district.
- Capacity (optional per activity) is the only limit: a seat is an active sign-up or a walk-in
  attendance (scoring.visits.seats_taken). The check and the write happen in one transaction that holds
  the activity: its row is locked (scoring.db.lock) on PostgreSQL; on SQLite every transaction takes
  the write lock at BEGIN (scoring.db), so concurrent sign-ups for the last seat are serialised and only
  one wins.
- Sign-up closes when the activity starts; so does cancelling.
- A cancelled sign-up keeps its row (`cancelled_at`); signing up again re-activates it.
- Who hears of it is decided here: with `alerts`, every active operator of the activity's station gets a
  message for each new sign-up and, once, one when the activity becomes full (outbox rows in the same
  transaction, keys `signup:{activity}:{talent}:{unix time}:{openid}` and `full:{activity}:{openid}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import outbox
from scoring.admin import operators_of
from scoring.db import lock
from scoring.models import Activity, Signup, Station, Talent
from scoring.visits import seats_taken

PAGE_SIZE: Final = 5


@dataclass(frozen=True)
class Listed:
    id: int
    title: str
    station: str
    starts_at: datetime
    ends_at: datetime
    capacity: int | None
    taken: int

    @property
    def seats_left(self) -> int | None:
        return None if self.capacity is None else max(0, self.capacity - self.taken)


@dataclass(frozen=True)
class Page:
    items: list[Listed]
    page: int
    pages: int
    total: int


async def upcoming(session: AsyncSession, now: datetime, page: int = 1, per_page: int = PAGE_SIZE,
                   category: str | None = None) -> Page:
    """Page `page` (from 1) of upcoming published activities of all stations, soonest first; only those of
    `category` (scoring.services.CATEGORIES) when given."""
    where: tuple[ColumnElement[bool], ...] = (Activity.status == "published", Activity.starts_at > now)
    if category is not None:
        where += (Activity.category == category,)
    total = int(await session.scalar(select(func.count(Activity.id)).where(*where)) or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = (await session.execute(
        select(Activity.id, Activity.title, Station.name, Activity.starts_at, Activity.ends_at, Activity.capacity)
        .join(Station, Station.id == Activity.station_id).where(*where)
        .order_by(Activity.starts_at, Activity.id).offset((page - 1) * per_page).limit(per_page))).all()
    ids = [r[0] for r in rows]
    taken: dict[int, int] = {}
    if ids:
        taken = {aid: int(n) for aid, n in (await session.execute(
            select(Signup.activity_id, func.count(Signup.id)).where(
                Signup.activity_id.in_(ids), Signup.cancelled_at.is_(None)).group_by(Signup.activity_id))).all()}
    items = [Listed(id=aid, title=title, station=station, starts_at=s, ends_at=e, capacity=cap,
                    taken=taken.get(aid, 0)) for aid, title, station, s, e, cap in rows]
    return Page(items=items, page=page, pages=pages, total=total)


class SignupRefusal(StrEnum):
    NOT_FOUND = "not_found"
    CLOSED = "closed"  # the activity has started (or ended)
    FULL = "full"
    ALREADY = "already"  # already signed up
    NOT_SIGNED_UP = "not_signed_up"  # cancel without a sign-up


@dataclass(frozen=True)
class SignedUp:
    signup: Signup
    activity: Activity
    seats_left: int | None
    station: str = ""  # the station's name
    alerted: int = 0  # operator messages queued


@dataclass(frozen=True)
class OperatorAlerts:
    """The operators' messages (str.format templates, from the caller's texts): `signup` with {name} {id}
    {title} {taken} {cap} (cap: "/30" or ""), `full` with {id} {title} {cap}."""

    signup: str
    full: str


@dataclass(frozen=True)
class Cancelled:
    activity: Activity


@dataclass(frozen=True)
class SignupRefused:
    reason: SignupRefusal
    activity: Activity | None = None


async def signup(session: AsyncSession, *, talent_id: int, activity_id: int, now: datetime,
                 alerts: OperatorAlerts | None = None) -> SignedUp | SignupRefused:
    """Sign the talent up, in the caller's transaction (which holds the activity until it commits); with
    `alerts`, tell the station's operators in the same transaction."""
    activity = await lock(session, Activity, activity_id)
    if activity is None or activity.status != "published":
        return SignupRefused(SignupRefusal.NOT_FOUND)
    if now >= activity.starts_at:
        return SignupRefused(SignupRefusal.CLOSED, activity)
    row = await session.scalar(select(Signup).where(
        Signup.activity_id == activity_id, Signup.talent_id == talent_id))
    if row is not None and row.cancelled_at is None:
        return SignupRefused(SignupRefusal.ALREADY, activity)
    taken = await seats_taken(session, activity_id)
    if activity.capacity is not None and taken >= activity.capacity:
        return SignupRefused(SignupRefusal.FULL, activity)
    if row is None:
        row = Signup(activity_id=activity_id, talent_id=talent_id, created_at=now)
        session.add(row)
    else:
        row.cancelled_at, row.created_at = None, now
    await session.flush()
    left = None if activity.capacity is None else activity.capacity - taken - 1
    station = await session.get(Station, activity.station_id)
    alerted = await _tell_operators(session, activity, row, taken + 1, left, alerts) if alerts else 0
    return SignedUp(signup=row, activity=activity, seats_left=left, station=station.name if station else "",
                    alerted=alerted)


async def _tell_operators(session: AsyncSession, activity: Activity, row: Signup, taken: int, left: int | None,
                          alerts: OperatorAlerts) -> int:
    """Each operator of the station hears of the new sign-up (`taken` seats now) and, once, of a full
    activity."""
    talent = await session.get(Talent, row.talent_id)
    cap = f"/{activity.capacity}" if activity.capacity else ""
    text = alerts.signup.format(name=talent.name if talent else "", id=activity.id, title=activity.title,
                                taken=taken, cap=cap)
    stamp = int(row.created_at.timestamp())
    queued = 0
    for openid in await operators_of(session, activity.station_id):
        queued += await outbox.add(session, f"signup:{activity.id}:{row.talent_id}:{stamp}:{openid}", openid,
                                   {"text": text})
        if left == 0:
            queued += await outbox.add(session, f"full:{activity.id}:{openid}", openid, {
                "text": alerts.full.format(id=activity.id, title=activity.title, cap=activity.capacity)})
    return queued


async def cancel(session: AsyncSession, *, talent_id: int, activity_id: int, now: datetime
                 ) -> Cancelled | SignupRefused:
    activity = await lock(session, Activity, activity_id)
    if activity is None or activity.status != "published":
        return SignupRefused(SignupRefusal.NOT_FOUND)
    row = await session.scalar(select(Signup).where(
        Signup.activity_id == activity_id, Signup.talent_id == talent_id, Signup.cancelled_at.is_(None)))
    if row is None:
        return SignupRefused(SignupRefusal.NOT_SIGNED_UP, activity)
    if now >= activity.starts_at:
        return SignupRefused(SignupRefusal.CLOSED, activity)
    row.cancelled_at = now
    await session.flush()
    return Cancelled(activity)


async def my_signups(session: AsyncSession, talent_id: int, now: datetime) -> list[Listed]:
    """The talent's active sign-ups for activities that have not ended, soonest first."""
    rows = (await session.execute(
        select(Activity.id, Activity.title, Station.name, Activity.starts_at, Activity.ends_at, Activity.capacity)
        .join(Station, Station.id == Activity.station_id).join(Signup, Signup.activity_id == Activity.id)
        .where(Signup.talent_id == talent_id, Signup.cancelled_at.is_(None), Activity.ends_at > now,
               Activity.status == "published").order_by(Activity.starts_at, Activity.id))).all()
    return [Listed(id=aid, title=t, station=st, starts_at=s, ends_at=e, capacity=c, taken=0)
            for aid, t, st, s, e, c in rows]
