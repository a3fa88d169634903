"""The station page's services and its booking form in a real browser (Chromium, a 375-pixel phone), on the
demo city (tests/web/live.py): the talent logs in through WeChat's OAuth, books a service slot through
POST /api/v1/me/bookings, and a refusal shows the API's message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from scoring.clock import utcnow
from scoring.models import Booking, ServiceItem, Station
from scoring.periods import local_day
from tests.web.live import Live, browser_fixture, live_fixture, phone, wait_for
from web import texts

__all__ = ["browser_fixture", "live_fixture"]


async def _bookable(live: Live) -> tuple[str, int, str]:
    async with live.sessions() as s:
        code, item_id, name = (await s.execute(select(Station.code, ServiceItem.id, ServiceItem.name).join(
            ServiceItem, ServiceItem.station_id == Station.id).where(ServiceItem.bookable, Station.status == "active")
            .order_by(Station.code).limit(1))).one()
    return code, item_id, name


async def _bookings(live: Live, openid: str) -> list[tuple[str, int | None]]:
    from scoring.models import Talent

    async with live.sessions() as s:
        rows = (await s.execute(select(Booking.status, Booking.service_id).join(Talent, Talent.id == Booking.talent_id)
                                .where(Talent.openid == openid).order_by(Booking.id))).all()
    return [(st, sid) for st, sid in rows]


def test_a_talent_books_a_service_on_the_station_page(live: Live, browser: Any) -> None:
    openid = live.built.talent[0]
    code, item_id, name = live.call(_bookable(live))
    before = live.call(_bookings(live, openid))
    ctx = phone(browser)
    page = ctx.new_page()
    page.goto(f"{live.base}/stations/{code}")  # not logged in: the list, and a login link instead of the form
    assert page.locator(f"#services li[data-service-id='{item_id}']").count() == 1
    assert page.locator("#book").count() == 0 and texts.PAGE["book_login"] in page.content()
    live.fake.oauth_user = openid
    page.goto(live.base + "/me")  # the OAuth round trip sets the session cookie
    page.goto(f"{live.base}/stations/{code}")
    assert name in page.inner_text("#book select[name=service]")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the station page with its booking form is {width} px wide on a 375 px phone"
    day = (local_day(utcnow()) + timedelta(days=2)).isoformat()
    page.fill("#book input[name=day]", day)
    page.select_option("#book select[name=hour]", "10")
    page.select_option("#book select[name=service]", str(item_id))
    page.click("#book button")
    wait_for(lambda: page.inner_text("#book .note").strip() != "", 10, "the booking's answer")
    assert page.inner_text("#book .note").startswith("预约成功"), page.inner_text("#book .note")
    after = live.call(_bookings(live, openid))
    assert after[len(before):] == [("booked", item_id)]
    # The same slot again: the API's refusal in words.
    page.click("#book button")
    wait_for(lambda: "已预约" in page.inner_text("#book .note"), 10, "the refusal")
    assert "err" in (page.get_attribute("#book .note", "class") or "")
    ctx.close()
