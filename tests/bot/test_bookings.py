"""Bookings (预约) through the real webhook, and the worker's reminders and kept/no-show settling."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from bot import texts
from scoring import bookings
from scoring.bookings import slot_at
from scoring.db import transaction
from scoring.models import Booking, Entry, Notification, ServiceItem
from tests import factories as f
from tests.bot import flows
from tests.bot.conftest import Bot
from worker.calendar import services_tick

pytestmark = pytest.mark.usefixtures("quiet_clock")  # Wednesday 2026-11-18 10:00 local

TOMORROW_10 = slot_at(date(2026, 11, 19), 10)


async def service(bot: Bot, station_id: int, capacity: int, name: str = "创业辅导") -> ServiceItem:
    async with transaction(bot.sessions) as s:
        it = ServiceItem(station_id=station_id, name=name, bookable=True, capacity=capacity)
        s.add(it)
        await s.flush()
        return it


async def all_bookings(bot: Bot) -> list[Booking]:
    async with bot.sessions() as s:
        return list((await s.scalars(select(Booking).order_by(Booking.id))).all())


async def notes(bot: Bot, openid: str) -> list[str]:
    async with bot.sessions() as s:
        return list((await s.scalars(select(Notification.payload).where(Notification.openid == openid)
                                     .order_by(Notification.id))).all())


async def test_book_a_visit_and_a_service_then_cancel(bot: Bot) -> None:
    st = await flows.station(bot, "QZ001", name="鲤城人才之家")
    await flows.operator(bot, "oOp", st.id)
    it = await service(bot, st.id, capacity=1)
    await flows.talent(bot, "QZ1", openid="oA", name="李四")
    await flows.talent(bot, "QZ2", openid="oB")
    wx = bot.wx
    usage = texts.BOOK_USAGE.format(first=bookings.FIRST_HOUR, last=bookings.LAST_HOUR)
    assert (await wx.text("oA", "预约")).text == usage
    ok = (await wx.text("oA", "预约 QZ001 明天 10:00")).text
    first = (await all_bookings(bot))[0]
    assert ok == texts.BOOK_OK.format(id=first.id, when="11月19日 10:00", station="鲤城人才之家", service="")
    assert (first.slot_start, first.slot_end, first.service_id) == (TOMORROW_10, TOMORROW_10 + timedelta(hours=1),
                                                                    None)
    assert "李四" in (await notes(bot, "oOp"))[0] and f"#{first.id}" in (await notes(bot, "oOp"))[0]
    assert (await wx.text("oA", "预约 QZ001 明天 10点")).text == texts.BOOK_REFUSED["already"]
    # A service by its number, its name; one place per slot.
    assert "预约成功" in (await wx.text("oA", f"book qz001 11-19 14:00 #{it.id}")).text
    assert (await wx.text("oB", "预约 鲤城人才之家 11月19日 14 创业辅导")).text == texts.BOOK_REFUSED["full"]
    assert "预约成功" in (await wx.text("oB", "预约 QZ001 11-19 15:00 创业辅导")).text
    # Bad slots change nothing.
    refused = [
        ("预约 QZ001 今天 09:00", texts.BOOK_REFUSED["past"]),
        ("预约 QZ001 2027-03-01 10:00", texts.BOOK_REFUSED["too_far"].format(limit=30)),
        ("预约 QZ001 明天 22:00", texts.BOOK_REFUSED["bad_slot"].format(first=8, last=20)),
        ("预约 QZ001 明天 10:30", texts.BOOK_BAD_DATE + "\n" + usage),
        ("预约 QZ001 13-45 10:00", texts.BOOK_BAD_DATE + "\n" + usage),
        ("预约 NOPE 明天 10:00", texts.BOOK_REFUSED["no_station"]),
        ("预约 QZ001 明天 11:00 #999", texts.BOOK_REFUSED["no_service"]),
    ]
    for words, reply in refused:
        assert (await wx.text("oB", words)).text == reply, words
    assert len(await all_bookings(bot)) == 3
    # The bare word lists one's bookings; cancel until the slot starts; someone else's is not found.
    mine = (await wx.text("oA", "预约")).text
    assert f"#{first.id} 11月19日 10:00 鲤城人才之家" in mine and "（创业辅导）" in mine
    assert (await wx.text("oB", f"取消预约 {first.id}")).text == texts.UNBOOK_REFUSED["not_found"].format(id=first.id)
    assert (await wx.text("oA", f"取消预约 #{first.id}")).text == texts.UNBOOK_OK.format(
        id=first.id, when="11月19日 10:00", station="鲤城人才之家")
    assert (await wx.text("oA", f"unbook {first.id}")).text == texts.UNBOOK_REFUSED["not_open"].format(id=first.id)
    assert (await wx.text("oA", "取消预约")).text == texts.UNBOOK_USAGE
    assert (await wx.text("oZ", "预约 QZ001 明天 10:00")).text == texts.NEED_BIND


async def test_open_bookings_are_limited_and_delisted_stations_refused(bot: Bot) -> None:
    st = await flows.station(bot, "QZ001")
    await flows.station(bot, "QZ002", status="delisted")
    await flows.talent(bot, "QZ1", openid="oA")
    for hour in (9, 10, 11):
        assert "预约成功" in (await bot.wx.text("oA", f"预约 QZ001 明天 {hour}:00")).text
    assert (await bot.wx.text("oA", "预约 QZ001 明天 12:00")).text == texts.BOOK_REFUSED["too_many"].format(limit=3)
    assert (await bot.wx.text("oA", "预约 QZ002 明天 12:00")).text == texts.BOOK_REFUSED["delisted"]
    assert st.id and len(await all_bookings(bot)) == 3


async def test_forty_concurrent_bookings_for_two_places(bot: Bot) -> None:
    st = await flows.station(bot, "QZ001")
    it = await service(bot, st.id, capacity=2)
    async with transaction(bot.sessions) as s:
        for i in range(40):
            await f.talent(s, f"QZ{i:03d}", openid=f"o{i}")
    replies = await asyncio.gather(*[bot.wx.text(f"o{i}", f"预约 QZ001 明天 10:00 #{it.id}") for i in range(40)])
    assert sum("预约成功" in r.text for r in replies) == 2
    assert sum(r.text == texts.BOOK_REFUSED["full"] for r in replies) == 38
    assert len(await all_bookings(bot)) == 2


async def test_worker_reminds_then_settles_kept_and_no_show(bot: Bot) -> None:
    st = await flows.station(bot, "QZ001", name="鲤城人才之家")
    came = await flows.talent(bot, "QZ1", openid="oCame")
    await flows.talent(bot, "QZ2", openid="oMissed")
    for openid in ("oCame", "oMissed"):
        assert "预约成功" in (await bot.wx.text(openid, "预约 QZ001 明天 10:00")).text
    # 08:30 the next day: within the reminder's two hours; each talent is reminded once.
    now = TOMORROW_10 - timedelta(minutes=90)
    reminded, settled, _ = await services_tick(bot.sessions, bot.settings, now)
    again, _, _ = await services_tick(bot.sessions, bot.settings, now)
    assert (reminded, again, settled.kept + settled.no_show) == (2, 0, 0)
    assert "预约提醒" in (await notes(bot, "oCame"))[0] and "鲤城人才之家" in (await notes(bot, "oCame"))[0]
    # One of them checks in at 10:05; an hour after the slot's end both are settled.
    async with transaction(bot.sessions) as s:
        await f.visit(s, came, st, TOMORROW_10 + timedelta(minutes=5))
    _, settled, _ = await services_tick(bot.sessions, bot.settings, TOMORROW_10 + timedelta(hours=2))
    assert (settled.kept, settled.no_show) == (1, 1)
    by_talent = {b.talent_id: b.status for b in await all_bookings(bot)}
    assert by_talent == {came.id: "kept", came.id + 1: "no_show"}
    async with bot.sessions() as s:
        rates = await bookings.no_show_rates(s, "station")
        per_talent = await bookings.no_show_rates(s, "talent")
        assert await s.scalar(select(func.count(Entry.id))) == 0  # a booking never earns points
    assert [(r.id, r.settled, r.no_shows, r.rate) for r in rates] == [(st.id, 2, 1, 0.5)]
    assert [(r.id, r.rate) for r in per_talent] == [(came.id, 0.0), (came.id + 1, 1.0)]


async def test_services_cron_is_scheduled_and_runs(bot: Bot) -> None:
    from worker.calendar import cron_services
    from worker.settings import WorkerSettings

    assert "calendar:services" in {c.name for c in WorkerSettings.cron_jobs}
    await cron_services({"sessions": bot.sessions, "settings": bot.settings})  # nothing due: no error


async def test_check_in_through_the_webhook_and_the_worker_keeps_the_booking(bot: Bot) -> None:
    """The usual check-in (station code) is recorded by the bot; the worker applying it marks that day's
    booking at that station kept (worker/tasks.py -> bookings.keep_for_visits), before the slot even starts."""
    from tests.worker.test_tasks import run_burst

    await flows.station(bot, "QZ001")
    await flows.station(bot, "QZ002")
    await flows.talent(bot, "QZ1", openid="oA")
    assert "预约成功" in (await bot.wx.text("oA", "预约 QZ001 今天 15:00")).text
    assert "预约成功" in (await bot.wx.text("oA", "预约 QZ002 今天 16:00")).text
    await bot.wx.scan("oA", flows.scene(bot, "QZ001"))
    assert await flows.jobs(bot)
    await run_burst(bot.settings.redis_url or "", bot.settings)
    statuses = [b.status for b in await all_bookings(bot)]
    assert statuses == ["kept", "booked"]
    async with bot.sessions() as s:
        kept = (await s.scalars(select(Booking).where(Booking.status == "kept"))).one()
    assert kept.visit_id == (await flows.visits(bot))[0].id
