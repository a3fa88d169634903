"""The window's service routes (web/api_services.py) on the real server, SQLite and PostgreSQL: stations
offering a service, the station card's services, and a talent's bookings."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot import texts as bot_texts
from scoring import services
from scoring.bookings import slot_at
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.models import Booking, Notification, ServiceItem, Staff
from tests import factories
from tests.web.conftest import Site

pytestmark = pytest.mark.usefixtures("quiet_clock")  # Wednesday 2026-11-18 10:00 local


async def seed(site: Site) -> dict[str, int]:
    async with transaction(site.bot.sessions) as s:
        a = await factories.station(s, "QZ001", name="鲤城人才之家")
        b = await factories.station(s, "QZ002", name="泉港石化人才之家", type="industry")
        c = await factories.station(s, "QZ003", name="摘牌站", status="delisted")
        b.county = "泉港区"
        s.add_all([ServiceItem(station_id=None, name="涉才政策咨询"),
                   ServiceItem(station_id=None, name="茶咖休闲交流")])
        mentor = ServiceItem(station_id=a.id, name="创业辅导", description="一对一", schedule="每周三下午",
                             bookable=True, capacity=1)
        match = ServiceItem(station_id=b.id, name="产才对接", bookable=False)
        gone = ServiceItem(station_id=c.id, name="创业辅导")
        s.add_all([mentor, match, gone])
        s.add(Staff(openid="oOp", role="operator", station_id=a.id))
        await factories.talent(s, "QZ1", openid="oT", name="李四")
        await factories.talent(s, "QZ2", openid="oU")
        await s.flush()
        return {"mentor": mentor.id, "match": match.id, "a": a.id}


async def test_stations_offering_a_service_and_the_card(site: Site) -> None:
    ids = await seed(site)
    found = await site.json("/api/v1/services?type=创业")
    assert found["total"] == 1 and [r["code"] for r in found["rows"]] == ["QZ001"]
    assert found["rows"][0]["services"] == [{"id": ids["mentor"], "name": "创业辅导", "description": "一对一",
                                             "schedule": "每周三下午", "bookable": True, "capacity": 1,
                                             "common": False}]
    everyone = await site.json("/api/v1/services?type=政策咨询")  # a common item: every active station
    assert [r["code"] for r in everyone["rows"]] == ["QZ001", "QZ002"]
    assert [r["code"] for r in (await site.json("/api/v1/services?district=泉港区"))["rows"]] == ["QZ002"]
    assert [r["code"] for r in (await site.json("/api/v1/services?station_type=industry"))["rows"]] == ["QZ002"]
    assert (await site.json("/api/v1/services?limit=1&offset=1"))["rows"][0]["code"] == "QZ002"
    assert (await site.json("/api/v1/services?color=red", 400))["error"]["code"] == "unknown_parameter"
    assert (await site.json("/api/v1/services?station_type=shop", 400))["error"]["code"] == "bad_parameter"
    async with transaction(site.bot.sessions) as s:
        await services.set_duties(s, station_id=ids["a"], text="人才服务“管家”<一站式>", scope=None, actor="t",
                                  now=utcnow())
    card = await site.json("/api/v1/stations/QZ001")
    assert [(x["name"], x["common"]) for x in card["services"]] == [
        ("涉才政策咨询", True), ("茶咖休闲交流", True), ("创业辅导", False)]
    assert card["duties"] == "人才服务“管家”<一站式>"
    # The station page lists them too (escaped), with how to book.
    async with await site.get("/stations/QZ001") as resp:
        page = await resp.text()
    assert resp.status == 200 and "服务清单" in page and "#{} 创业辅导".format(ids["mentor"]) in page
    assert "可预约，每时段 1 人" in page and "人才服务“管家”&lt;一站式&gt;" in page and "预约 QZ001 明天 10:00" in page


async def test_book_list_and_cancel(site: Site) -> None:
    ids = await seed(site)
    auth = {"Authorization": f"Bearer {await site.token_for('oT')}"}
    other = {"Authorization": f"Bearer {await site.token_for('oU')}"}

    async def post(body: Any, status: int, headers: dict[str, str] = auth) -> Any:
        async with site.http.post(site.base + "/api/v1/me/bookings", json=body, headers=headers) as resp:
            assert resp.status == status, await resp.text()
            return await resp.json()

    done = await post({"station": "QZ001", "slot_start": "2026-11-19T10:00", "service_id": ids["mentor"]}, 201)
    assert (done["station"], done["service"], done["slot_start"], done["places_left"]) == (
        "QZ001", "创业辅导", "2026-11-19T10:00:00+08:00", 0)
    async with site.bot.sessions() as s:
        alert = json.loads((await s.scalars(select(Notification.payload).where(Notification.openid == "oOp"))).one())
        booking = await s.get(Booking, done["id"])
    assert booking is not None and booking.slot_start == slot_at(date(2026, 11, 19), 10)
    assert alert["text"] == bot_texts.OP_NEW_BOOKING.format(name="李四", time="11月19日 10:00", service="创业辅导",
                                                            id=done["id"], taken=1, cap=1)
    full = {"station": "QZ001", "slot_start": "2026-11-19T02:00:00+00:00", "service_id": ids["mentor"]}
    assert (await post(full, 409, other))["error"]["code"] == "full"
    refused = [
        ({"station": "QZ001", "slot_start": "2026-11-18T09:00"}, 409, "past"),
        ({"station": "QZ001", "slot_start": "2027-02-01T10:00"}, 409, "too_far"),
        ({"station": "QZ001", "slot_start": "2026-11-19T10:30"}, 400, "bad_slot"),
        ({"station": "QZ003", "slot_start": "2026-11-19T10:00"}, 409, "delisted"),
        ({"station": "NOPE", "slot_start": "2026-11-19T10:00"}, 404, "station_not_found"),
        ({"station": "QZ002", "slot_start": "2026-11-19T10:00", "service_id": ids["match"]}, 409, "not_bookable"),
        ({"station": "QZ002", "slot_start": "2026-11-19T10:00", "service_id": ids["mentor"]}, 404,
         "service_not_found"),
        ({"station": "QZ001", "slot_start": "tomorrow"}, 400, "bad_parameter"),
        ({"station": "QZ001", "slot_start": "2026-11-19T10:00", "talent_id": 1}, 400, "unknown_parameter"),
    ]
    for body, status, code in refused:
        got = await post(body, status)
        assert got["error"]["code"] == code and got["error"]["message"], body
    mine = await site.json("/api/v1/me/bookings", headers=auth)
    assert mine["total"] == 1 and mine["rows"][0]["id"] == done["id"] and mine["rows"][0]["service"] == "创业辅导"
    assert (await site.json("/api/v1/me/bookings", headers=other))["rows"] == []
    async with site.http.delete(f"{site.base}/api/v1/me/bookings/{done['id']}", headers=other) as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "booking_not_found"
    async with site.http.delete(f"{site.base}/api/v1/me/bookings/{done['id']}", headers=auth) as resp:
        assert resp.status == 200 and (await resp.json())["cancelled"] is True
    async with site.http.delete(f"{site.base}/api/v1/me/bookings/{done['id']}", headers=auth) as resp:
        assert resp.status == 409 and (await resp.json())["error"]["code"] == "not_open"
    assert (await post(full, 201, other))["service"] == "创业辅导"  # the place is free again
    # Without a login: 401, nothing booked.
    await post({"station": "QZ001", "slot_start": "2026-11-19T11:00"}, 401, {})
    async with site.http.get(site.base + "/api/v1/me/bookings") as resp:
        assert resp.status == 401


async def test_activities_by_category(site: Site) -> None:
    from datetime import timedelta

    from scoring.clock import utcnow
    from scoring.models import Activity

    async with transaction(site.bot.sessions) as s:
        st = await factories.station(s, "QZ001")
        now = utcnow()
        for title, category in (("人工智能讲座", "lecture"), ("茶叙", "salon")):
            s.add(Activity(station_id=st.id, title=title, starts_at=now + timedelta(days=2),
                           ends_at=now + timedelta(days=2, hours=2), category=category))
    lectures = await site.json("/api/v1/activities?category=lecture")
    assert [(r["title"], r["category"]) for r in lectures["rows"]] == [("人工智能讲座", "lecture")]
    assert len((await site.json("/api/v1/activities"))["rows"]) == 2
    assert (await site.json("/api/v1/activities?category=opera", 400))["error"]["code"] == "bad_parameter"
    async with await site.get("/stations/QZ001") as resp:  # the station page names the category
        page = await resp.text()
    assert 'data-category="lecture"' in page and "人才讲堂" in page and 'data-category="salon"' in page


async def test_admin_overview_of_consultations_and_bookings(site: Site) -> None:
    import time

    from scoring import bookings, consultations
    from scoring.models import Consultation, Talent
    from web.auth import sign_session

    ids = await seed(site)
    notices = consultations.Notices(asked="{id}", answer="{id}", transferred="{id}", closed="{id}")
    asked_at = utcnow()
    async with transaction(site.bot.sessions) as s:
        talent = (await s.scalars(select(Talent).where(Talent.openid == "oT"))).one()
        for i in range(3):
            done = await consultations.ask(s, talent_id=talent.id, station_id=ids["a"] if i < 2 else None,
                                           text=f"问{i}", now=asked_at, max_open=5, notices=notices)
            assert isinstance(done, consultations.Done)
        first = (await s.scalars(select(Consultation).order_by(Consultation.id))).first()
        assert first is not None
        await consultations.answer(s, cid=first.id, actor="oOp", scope=ids["a"], text="答",
                                   now=asked_at + timedelta(minutes=30), notices=notices)
        await consultations.rate(s, talent_id=talent.id, cid=first.id, score=4, now=asked_at)
        slot = slot_at(date(2026, 11, 19), 10)
        for t in ("QZ1", "QZ2"):
            tid = (await s.scalars(select(Talent.id).where(Talent.cert_no == t))).one()
            await bookings.book(s, talent_id=tid, station_id=ids["a"], slot_start=slot, service_id=None,
                                now=asked_at, limits=bookings.Limits())
        await bookings.settle(s, slot + timedelta(hours=3))
        rows = await services.overview(s)
    assert [(r.code, r.questions, r.answered, r.median_minutes, r.ratings, r.settled, r.no_show_rate)
            for r in rows] == [("QZ001", 2, 1, 30.0, 1, 2, 1.0), ("", 1, 0, None, 0, 0, None)]
    token, _ = sign_session(site.bot.settings.scene_key, "oAdminEnv", time.time())
    async with await site.get("/admin", headers={"Authorization": f"Bearer {token}"},
                              cookies={"th_session": token}) as resp:
        page = await resp.text()
    assert resp.status == 200, page[:300]
    assert "咨询与预约" in page and "咨询 2 条，已答复 1，首次答复用时中位数 30 分钟" in page and "爽约率 100%" in page
    assert "市级咨询" in page
