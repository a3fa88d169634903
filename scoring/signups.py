"""Activities a talent can see and sign up for (SPEC 3, "Open enrolment").

- The list shows upcoming published activities of every station, soonest first; nothing filters by the
  talent's district.
- Capacity (optional per activity) is the only limit: a seat is an active sign-up or a walk-in
  attendance (scoring.visits.seats_taken). The check and the write happen in one transaction that holds
  the activity: its row is locked (`SELECT .. FOR UPDATE`) on PostgreSQL; on SQLite every transaction takes
  the write lock at BEGIN (scoring.db), so concurrent sign-ups for the last seat are serialised and only
  one wins.
- Sign-up closes when the activity starts; so does cancelling.
- A cancelled sign-up keeps its row (`cancelled_at`); signing up again re-activates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.models import Activity, Signup, Station
from scoring.visits import lock_activity, seats_taken

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


async def upcoming(session: AsyncSession, now: datetime, page: int = 1, per_page: int = PAGE_SIZE) -> Page:
    """Page `page` (from 1) of upcoming published activities of all stations, soonest first."""
    where = (Activity.status == "published", Activity.starts_at > now)
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


@dataclass(frozen=True)
class Cancelled:
    activity: Activity


@dataclass(frozen=True)
class SignupRefused:
    reason: SignupRefusal
    activity: Activity | None = None


async def signup(session: AsyncSession, *, talent_id: int, activity_id: int, now: datetime
                 ) -> SignedUp | SignupRefused:
    """Sign the talent up, in the caller's transaction (which holds the activity until it commits)."""
    activity = await lock_activity(session, activity_id)
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
    return SignedUp(signup=row, activity=activity, seats_left=left)


async def cancel(session: AsyncSession, *, talent_id: int, activity_id: int, now: datetime
                 ) -> Cancelled | SignupRefused:
    activity = await lock_activity(session, activity_id)
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
