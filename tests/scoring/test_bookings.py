"""Bookings in the domain: capacity under concurrency on SQLite and PostgreSQL, slots as typed, settling."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import bookings
from scoring.bookings import Booked, BookingRefusal, Limits, parse_slot, slot_at
from scoring.db import transaction
from scoring.models import Booking, Notification, ServiceItem, Staff
from tests import factories as f

NOW = datetime(2026, 11, 18, 2, 0)  # 10:00 local, a Wednesday
SLOT = slot_at(date(2026, 11, 19), 10)


async def test_many_concurrent_bookings_never_pass_capacity(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as s:
        st = await f.station(s, "QZ001")
        s.add(Staff(openid="oOp", role="operator", station_id=st.id))
        it = ServiceItem(station_id=st.id, name="创业辅导", bookable=True, capacity=3)
        s.add(it)
        talents = [await f.talent(s, f"QZ{i:03d}", openid=f"o{i}") for i in range(60)]
    limits = Limits(visit_capacity=5)

    async def one(talent_id: int, service_id: int | None) -> Booked | bookings.BookingRefused:
        async with transaction(sessions) as s:
            return await bookings.book(s, talent_id=talent_id, station_id=st.id, slot_start=SLOT,
                                       service_id=service_id, now=NOW, limits=limits, alert="{id}")

    results = await asyncio.gather(*[one(t.id, it.id) for t in talents[:30]], *[one(t.id, None) for t in talents[30:]])
    service_won = [r for r in results[:30] if isinstance(r, Booked)]
    visit_won = [r for r in results[30:] if isinstance(r, Booked)]
    assert len(service_won) == 3 and len(visit_won) == 5
    assert all(r.reason == BookingRefusal.FULL for r in results if not isinstance(r, Booked))
    async with sessions() as s:
        assert await s.scalar(select(func.count(Booking.id)).where(Booking.service_id == it.id)) == 3
        assert await s.scalar(select(func.count(Booking.id)).where(Booking.service_id.is_(None))) == 5
        assert await s.scalar(select(func.count(Notification.id))) == 8  # the operator hears of each


async def test_one_talent_racing_for_many_slots_keeps_the_limit(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as s:
        st = await f.station(s, "QZ001")
        talent = await f.talent(s, "QZ1", openid="oA")

    async def one(hour: int) -> object:
        async with transaction(sessions) as s:
            return await bookings.book(s, talent_id=talent.id, station_id=st.id,
                                       slot_start=slot_at(date(2026, 11, 19), hour), service_id=None, now=NOW,
                                       limits=Limits(max_open=3))

    results = await asyncio.gather(*[one(h) for h in range(8, 20)])
    assert sum(isinstance(r, Booked) for r in results) == 3


def test_parse_slot() -> None:
    assert parse_slot("明天", "10:00", NOW) == SLOT
    assert parse_slot("11-19", "10点", NOW) == SLOT == parse_slot("2026-11-19", "１０", NOW)
    assert parse_slot("11月19日", "10", NOW) == SLOT
    assert parse_slot("01-05", "9:00", NOW) == slot_at(date(2027, 1, 5), 9)  # a passed month-day: next year
    assert parse_slot("02-30", "10", NOW) is None and parse_slot("明天", "10:30", NOW) is None
    assert parse_slot("昨天", "10", NOW) is None and parse_slot("明天", "25", NOW) is None
    assert slot_at(date(2026, 11, 19), 10) == datetime(2026, 11, 19, 2, 0)


async def test_mark_kept_is_the_visit_paths_call(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as s:
        st = await f.station(s, "QZ001")
        other = await f.station(s, "QZ002")
        talent = await f.talent(s, "QZ1", openid="oA")
        for station in (st, other):
            assert isinstance(await bookings.book(s, talent_id=talent.id, station_id=station.id, slot_start=SLOT,
                                                  service_id=None, now=NOW, limits=Limits()), Booked)
    async with transaction(sessions) as s:
        assert await bookings.mark_kept(s, talent_id=talent.id, station_id=st.id, day=date(2026, 11, 19),
                                        visit_id=None, now=SLOT) == 1
        assert await bookings.mark_kept(s, talent_id=talent.id, station_id=st.id, day=date(2026, 11, 19),
                                        visit_id=None, now=SLOT) == 0
        assert await bookings.mark_kept(s, talent_id=talent.id, station_id=other.id, day=date(2026, 11, 20),
                                        visit_id=None, now=SLOT) == 0
    async with sessions() as s:
        statuses = (await s.scalars(select(Booking.status).order_by(Booking.id))).all()
    assert statuses == ["kept", "booked"]
    async with transaction(sessions) as s:
        done = await bookings.settle(s, SLOT + timedelta(hours=2))
    assert (done.kept, done.no_show) == (0, 1)


async def test_keep_for_visits(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as s:
        st = await f.station(s, "QZ001")
        booked = await f.talent(s, "QZ1", openid="oA")
        walk_in = await f.talent(s, "QZ2", openid="oB")
        assert isinstance(await bookings.book(s, talent_id=booked.id, station_id=st.id, slot_start=SLOT,
                                              service_id=None, now=NOW, limits=Limits()), Booked)
        visits = [await f.visit(s, t, st, SLOT + timedelta(minutes=3)) for t in (booked, walk_in)]
    async with transaction(sessions) as s:
        assert await bookings.keep_for_visits(s, [v.id for v in visits], SLOT) == 1
        assert await bookings.keep_for_visits(s, [v.id for v in visits], SLOT) == 0
        assert await bookings.keep_for_visits(s, [], SLOT) == 0
    async with sessions() as s:
        row = (await s.scalars(select(Booking))).one()
    assert (row.status, row.visit_id) == ("kept", visits[0].id)
