"""Bookings (预约, policy measure 8): a talent books a slot at a station, for a bookable service or a plain
visit.

- A slot is one hour starting on the hour, local time (Asia/Shanghai), first FIRST_HOUR, last LAST_HOUR.
  It may not be in the past, nor further ahead than the horizon (BOOKING_HORIZON_DAYS).
- Capacity per slot: the service's `capacity`, or `visit_capacity` for a plain visit. The check and the
  write happen in one transaction that first locks the talent's row, then the service's row (or, for a
  plain visit, the station's): scoring.db.lock, a row lock on PostgreSQL, SQLite's write lock from BEGIN.
  So concurrent bookings of the last place are serialised and exactly one wins, and a talent's own
  concurrent bookings cannot pass the open-bookings limit. The lock order (talent, then place) is fixed.
- A talent has at most `max_open` bookings not yet settled, and one per station and slot.
- Cancelling is allowed until the slot starts. A cancelled booking keeps its row.
- The station's operators are told of a new booking (outbox, in the same transaction).
- Settling: a check-in (accepted visit) by the talent at that station on the slot's local day marks the
  booking `kept` (`mark_kept`, called on the visit path; `settle` checks the visits again, so it holds even
  when that call was missed); a booking whose slot ended more than SETTLE_GRACE ago without one becomes
  `no_show`. A booking never earns points by itself: the visit does, as before.
- Reminders: each booked talent is told once, `before` the slot starts (worker cron).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import ColumnElement, and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import outbox, texts
from scoring.admin import operators_of
from scoring.db import lock
from scoring.models import Booking, ServiceItem, Station, Talent, Visit
from scoring.periods import TZ, local_day, to_local
from scoring.texts import talent as talent_texts

SLOT: Final = timedelta(hours=1)
FIRST_HOUR: Final = 8
LAST_HOUR: Final = 20
SETTLE_GRACE: Final = timedelta(hours=1)



class BookingRefusal(StrEnum):
    NO_STATION = "no_station"
    DELISTED = "delisted"
    NO_SERVICE = "no_service"  # unknown, withdrawn, or another station's item
    NOT_BOOKABLE = "not_bookable"
    BAD_SLOT = "bad_slot"  # not on the hour, or outside FIRST_HOUR..LAST_HOUR
    PAST = "past"
    TOO_FAR = "too_far"
    FULL = "full"
    ALREADY = "already"  # this talent already holds this station's slot
    TOO_MANY = "too_many"  # open-bookings limit
    NOT_FOUND = "not_found"  # cancel: no such booking of this talent
    STARTED = "started"  # cancel: the slot has started
    NOT_OPEN = "not_open"  # cancel: already cancelled or settled


@dataclass(frozen=True)
class Limits:
    horizon_days: int = 30
    visit_capacity: int = 10
    max_open: int = 3


@dataclass(frozen=True)
class Booked:
    booking: Booking
    station: Station
    service: ServiceItem | None
    places_left: int
    alerted: int = 0


@dataclass(frozen=True)
class BookingRefused:
    reason: BookingRefusal
    limit: int = 0


@dataclass(frozen=True)
class Listed:
    id: int
    station: str
    station_code: str
    service: str  # "" for a plain visit
    slot_start: datetime
    slot_end: datetime
    status: str


def slot_at(day: date, hour: int) -> datetime:
    """The slot starting at `hour`:00 local on `day`, as naive UTC."""
    return datetime.combine(day, time(hour), tzinfo=TZ).astimezone(UTC).replace(tzinfo=None)


def _slot_ok(slot_start: datetime) -> bool:
    loc = to_local(slot_start)
    return loc.minute == 0 and loc.second == 0 and FIRST_HOUR <= loc.hour <= LAST_HOUR


async def _taken(session: AsyncSession, station_id: int, service_id: int | None, slot_start: datetime) -> int:
    return int(await session.scalar(select(func.count(Booking.id)).where(
        Booking.station_id == station_id, Booking.slot_start == slot_start,
        Booking.service_id.is_(None) if service_id is None else Booking.service_id == service_id,
        Booking.status.in_(("booked", "kept")))) or 0)


async def open_count(session: AsyncSession, talent_id: int) -> int:
    return int(await session.scalar(select(func.count(Booking.id)).where(
        Booking.talent_id == talent_id, Booking.status == "booked")) or 0)


async def book(session: AsyncSession, *, talent_id: int, station_id: int, slot_start: datetime,
               service_id: int | None, now: datetime, limits: Limits, alert: str | None = None
               ) -> Booked | BookingRefused:
    """Book, in the caller's transaction (which holds the talent and the place until it commits). With
    `alert` (a str.format template: {name} {station} {service} {time} {id} {taken} {cap}), each operator
    of the station is told."""
    await lock(session, Talent, talent_id)
    station = await session.get(Station, station_id)
    if station is None:
        return BookingRefused(BookingRefusal.NO_STATION)
    if station.status != "active":
        return BookingRefused(BookingRefusal.DELISTED)
    service: ServiceItem | None = None
    if service_id is not None:
        service = await lock(session, ServiceItem, service_id)
        if service is None or not service.active or service.station_id not in (None, station_id):
            return BookingRefused(BookingRefusal.NO_SERVICE)
        if not service.bookable or service.capacity is None:
            return BookingRefused(BookingRefusal.NOT_BOOKABLE)
        capacity = service.capacity
    else:
        await lock(session, Station, station_id)
        capacity = limits.visit_capacity
    if not _slot_ok(slot_start):
        return BookingRefused(BookingRefusal.BAD_SLOT)
    if slot_start <= now:
        return BookingRefused(BookingRefusal.PAST)
    if slot_start > now + timedelta(days=limits.horizon_days):
        return BookingRefused(BookingRefusal.TOO_FAR, limits.horizon_days)
    same = await session.scalar(select(func.count(Booking.id)).where(
        Booking.talent_id == talent_id, Booking.station_id == station_id, Booking.slot_start == slot_start,
        Booking.status == "booked"))
    if same:
        return BookingRefused(BookingRefusal.ALREADY)
    if await open_count(session, talent_id) >= limits.max_open:
        return BookingRefused(BookingRefusal.TOO_MANY, limits.max_open)
    taken = await _taken(session, station_id, service_id, slot_start)
    if taken >= capacity:
        return BookingRefused(BookingRefusal.FULL)
    row = Booking(talent_id=talent_id, station_id=station_id, service_id=service_id, slot_start=slot_start,
                  slot_end=slot_start + SLOT, status="booked", created_at=now)
    session.add(row)
    await session.flush()
    alerted = 0
    if alert is not None:
        talent = await session.get(Talent, talent_id)
        text = alert.format(name=talent.name if talent else "", station=station.name,
                            service=service.name if service else "", time=label(slot_start), id=row.id,
                            taken=taken + 1, cap=capacity)
        for openid in await operators_of(session, station_id):
            alerted += await outbox.add(session, f"booking:{row.id}:{openid}", openid, {"text": text})
    return Booked(booking=row, station=station, service=service, places_left=capacity - taken - 1,
                  alerted=alerted)


async def cancel(session: AsyncSession, *, talent_id: int, booking_id: int, now: datetime
                 ) -> Booking | BookingRefused:
    await lock(session, Talent, talent_id)
    row = await lock(session, Booking, booking_id)
    if row is None or row.talent_id != talent_id:
        return BookingRefused(BookingRefusal.NOT_FOUND)
    if row.status != "booked":
        return BookingRefused(BookingRefusal.NOT_OPEN)
    if now >= row.slot_start:
        return BookingRefused(BookingRefusal.STARTED)
    row.status, row.cancelled_at = "cancelled", now
    await session.flush()
    return row


async def my_bookings(session: AsyncSession, talent_id: int, now: datetime) -> list[Listed]:
    """The talent's open bookings whose slot has not ended, soonest first."""
    rows = (await session.execute(
        select(Booking.id, Station.name, Station.code, ServiceItem.name, Booking.slot_start, Booking.slot_end,
               Booking.status)
        .join(Station, Station.id == Booking.station_id)
        .outerjoin(ServiceItem, ServiceItem.id == Booking.service_id)
        .where(Booking.talent_id == talent_id, Booking.status == "booked", Booking.slot_end > now)
        .order_by(Booking.slot_start, Booking.id))).all()
    return [Listed(id=i, station=st, station_code=code, service=sv or "", slot_start=s, slot_end=e, status=stt)
            for i, st, code, sv, s, e, stt in rows]


def label(at: datetime) -> str:
    """12月5日 14:00 (local)."""
    return texts.local_label(at)


# -- settling ----------------------------------------------------------------------------------------------
async def mark_kept(session: AsyncSession, *, talent_id: int, station_id: int, day: date, visit_id: int | None,
                    now: datetime) -> int:
    """A check-in at the station on `day` (local) keeps the talent's open bookings there that day.
    Idempotent; returns how many were marked."""
    start = slot_at(day, 0)
    result = await session.execute(update(Booking).where(
        Booking.talent_id == talent_id, Booking.station_id == station_id, Booking.status == "booked",
        Booking.slot_start >= start, Booking.slot_start < start + timedelta(days=1))
        .values(status="kept", settled_at=now, visit_id=visit_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def keep_for_visits(session: AsyncSession, visit_ids: Sequence[int], now: datetime) -> int:
    """The visit path's call (the worker applying a batch of visits): each accepted visit keeps its talent's
    open bookings at that station that day. Two small queries when nobody in the batch booked."""
    if not visit_ids:
        return 0
    rows = (await session.execute(select(Visit.id, Visit.talent_id, Visit.station_id, Visit.local_day).where(
        Visit.id.in_(list(visit_ids)), Visit.status == "accepted", Visit.talent_id.is_not(None),
        Visit.station_id.is_not(None)))).all()
    talents = {r.talent_id for r in rows}
    booked = set((await session.scalars(select(Booking.talent_id).where(
        Booking.status == "booked", Booking.talent_id.in_(talents)).distinct())).all()) if talents else set()
    kept = 0
    for vid, talent_id, station_id, day in rows:
        if talent_id in booked and station_id is not None:
            kept += await mark_kept(session, talent_id=talent_id, station_id=station_id, day=day, visit_id=vid,
                                    now=now)
    return kept


@dataclass
class Settled:
    kept: int = 0
    no_show: int = 0


async def settle(session: AsyncSession, now: datetime, batch: int = 500) -> Settled:
    """Open bookings whose slot ended SETTLE_GRACE ago: kept if the talent checked in there that day (a
    missed `mark_kept`), else a no-show."""
    out = Settled()
    rows = (await session.scalars(select(Booking).where(
        Booking.status == "booked", Booking.slot_end <= now - SETTLE_GRACE)
        .order_by(Booking.slot_start, Booking.id).limit(batch))).all()
    for b in rows:
        visit = await session.scalar(select(Visit.id).where(
            Visit.talent_id == b.talent_id, Visit.station_id == b.station_id, Visit.status == "accepted",
            Visit.local_day == local_day(b.slot_start)).order_by(Visit.id).limit(1))
        if visit is not None:
            b.status, b.visit_id, b.settled_at = "kept", visit, now
            out.kept += 1
        else:
            b.status, b.settled_at = "no_show", now
            out.no_show += 1
    await session.flush()
    return out


async def remind(session: AsyncSession, now: datetime, before: timedelta) -> int:
    """Queue one reminder per open booking starting within `before` (key `booking-remind:{id}`)."""
    rows = (await session.execute(
        select(Booking, Talent.openid, Station.name, ServiceItem.name)
        .join(Talent, Talent.id == Booking.talent_id).join(Station, Station.id == Booking.station_id)
        .outerjoin(ServiceItem, ServiceItem.id == Booking.service_id)
        .where(Booking.status == "booked", Booking.reminded_at.is_(None), Booking.slot_start > now,
               Booking.slot_start <= now + before).order_by(Booking.id))).all()
    queued = 0
    for b, openid, station, service in rows:
        b.reminded_at = now
        if openid is None:
            continue
        text = talent_texts.BOOKING_REMINDER.format(
            station=station, service=talent_texts.BOOKING_SERVICE.format(service=service) if service
            else talent_texts.BOOKING_VISIT_WORD, time=label(b.slot_start), id=b.id)
        queued += await outbox.add(session, f"booking-remind:{b.id}", openid, {
            "text": text, "template": "booking_reminder",
            "data": {"booking_id": b.id, "station": station, "slot_start": b.slot_start.isoformat()}})
    await session.flush()
    return queued


# -- figures -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoShowRate:
    id: int  # a station's or a talent's id
    settled: int  # kept + no_show
    no_shows: int

    @property
    def rate(self) -> float | None:
        return None if self.settled == 0 else self.no_shows / self.settled


async def no_show_rates(session: AsyncSession, by: str = "station", since: datetime | None = None,
                        until: datetime | None = None) -> list[NoShowRate]:
    """Per station (`by="station"`) or per talent (`by="talent"`): settled bookings and no-shows, slots
    in [since, until); ordered by id."""
    key = Booking.station_id if by == "station" else Booking.talent_id
    cond: list[ColumnElement[bool]] = [Booking.status.in_(("kept", "no_show"))]
    if since is not None:
        cond.append(Booking.slot_start >= since)
    if until is not None:
        cond.append(Booking.slot_start < until)
    rows = (await session.execute(select(key, func.count(Booking.id),
                                         func.sum(case((Booking.status == "no_show", 1), else_=0)))
                                  .where(and_(*cond)).group_by(key).order_by(key))).all()
    return [NoShowRate(id=int(k), settled=int(n), no_shows=int(m or 0)) for k, n, m in rows]


# -- input -------------------------------------------------------------------------------------------------
_RELATIVE: Final = {"今天": 0, "today": 0, "明天": 1, "tomorrow": 1, "后天": 2}
_DATE_RE: Final = re.compile(r"^(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})日?$")
_TIME_RE: Final = re.compile(r"^(\d{1,2})(?:[:：]00|点|时|点整)?$")


def parse_slot(day_text: str, time_text: str, now: datetime) -> datetime | None:
    """A slot as people type it: a day (今天/明天/后天, 12-05, 12月5日, 2026-12-05; a month-day already passed
    this year means next year's) and an hour (10:00, 10点, 10), local; naive UTC, or None when unreadable.
    Whether the slot may be booked is book()'s to say."""
    d = unicodedata.normalize("NFKC", day_text).strip().lower()
    t = unicodedata.normalize("NFKC", time_text).strip()
    today = local_day(now)
    if d in _RELATIVE:
        day = today + timedelta(days=_RELATIVE[d])
    else:
        m = _DATE_RE.match(d)
        if m is None:
            return None
        try:
            day = date(int(m[1]) if m[1] else today.year, int(m[2]), int(m[3]))
            if not m[1] and day < today:
                day = date(today.year + 1, day.month, day.day)
        except ValueError:
            return None
    h = _TIME_RE.match(t)
    if h is None or int(h[1]) > 23:
        return None
    return slot_at(day, int(h[1]))
