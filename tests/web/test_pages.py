"""The pages in Debian's Chromium (tests/web/live.py): what a phone in WeChat's browser shows, against a small
`talenthome demo` city, the bot, the worker and the fake WeChat API. No sleeps: every wait polls for what it
waits for, with a deadline."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from scoring import boards, directory, kiosk, signups, statement
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.models import Entry, Signup, Station, Talent
from scoring.tokens import TALENT_CODE_TTL_S, parse_scene, station_scene
from tests.web.live import ROTATION_S, Live, browser_fixture, live_fixture, phone, screenshot, wait_for

__all__ = ["browser_fixture", "live_fixture"]  # the module's fixtures (tests/web/live.py)
from web import texts

LIVE_DEADLINE_S = 2.0  # a new visit moves the month board within 2 s (issue 11)


def month_rows(page: Any, limit: int = 10) -> list[tuple[int, str, int]]:
    return [tuple(r) for r in page.eval_on_selector_all(
        'table[data-board="month"] tr[data-code]',
        f"rows => rows.slice(0, {limit}).map(r => [Number(r.dataset.rank), r.dataset.code, Number(r.dataset.points)])")]


def decode(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"{page.url}: the page is {width} px wide on a 375 px screen"


async def _personal(live: Live) -> list[str]:
    async with live.sessions() as s:
        rows = (await s.execute(select(Talent.name, Talent.openid, Talent.phone, Talent.cert_no)
                                .where(Talent.openid.is_not(None)))).all()
    return [v for row in rows for v in row if v]


async def _new_talent(live: Live, openid: str) -> int:
    async with transaction(live.sessions) as s:
        t = Talent(cert_no=f"QZWEB{openid[-4:]}", name="网页测试", openid=openid, bound_at=utcnow())
        s.add(t)
        await s.flush()
        return t.id


async def _station_entries(live: Live, code: str, talent_id: int) -> int:
    async with live.sessions() as s:
        return int(await s.scalar(select(func.count(Entry.id)).join(Station, Station.id == Entry.station_id).where(
            Station.code == code, Entry.key.like(f"visit:{talent_id}:%"))) or 0)


# -- / ---------------------------------------------------------------------------------------------


def test_home_shows_the_boards_the_carousel_and_no_personal_data(live: Live, browser: Any) -> None:
    ctx = phone(browser)
    page = ctx.new_page()
    page.goto(live.base + "/", wait_until="load")
    sizes = page.evaluate("""() => [performance.getEntriesByType('navigation')[0],
        ...performance.getEntriesByType('resource')].reduce((n, e) => n + (e.transferSize || 0), 0)""")
    assert 0 < sizes < 150 * 1024, f"the home page transfers {sizes} bytes"
    # The same top 10 as `talenthome board month --json`.
    page.click('[data-tab="month"]')
    cli = json.loads(live.cli("board", "month", "--json").stdout)
    assert len(cli) >= 10
    assert month_rows(page) == [(r["rank"], r["code"], r["points"]) for r in cli[:10]]
    # The other tabs: the same as the CLI's boards too, one table shown at a time.
    for kind in ("total", "year"):
        page.click(f'[data-tab="{kind}"]')
        assert page.is_visible(f'table[data-board="{kind}"]') and not page.is_visible('table[data-board="month"]')
        shown = page.eval_on_selector_all(f'table[data-board="{kind}"] tr[data-code]',
                                          "rows => rows.slice(0, 5).map(r => r.dataset.code)")
        assert shown == [r["code"] for r in json.loads(live.cli("board", kind, "--json").stdout)[:5]]
    # Stars are shown, and the featured carousel has this month's and recent months' stations.
    assert page.locator('table[data-board="total"] .stars').first.inner_text().strip().startswith("★")
    featured = live.call(_featured(live))
    slides = page.eval_on_selector_all("#featured .slide[data-code]", "s => s.map(x => x.dataset.code)")
    assert slides and slides == featured
    # Filters: a district's rows only, keeping their city ranks.
    district = page.eval_on_selector_all("select[name=district] option", "o => o.map(x => x.value)")[1]
    page.select_option("select[name=district]", district)
    page.wait_for_url(lambda url: "district=" in url)
    codes = page.eval_on_selector_all('table[data-board="total"] tr[data-code]', "r => r.map(x => x.dataset.code)")
    by_district = live.call(_codes_in(live, district))
    assert codes and set(codes) <= by_district
    page.select_option("select[name=type]", "service")
    page.wait_for_url(lambda url: "type=service" in url)
    # No talent's name, openid, phone or certificate number anywhere on the public page.
    html = page.content()
    leaked = [v for v in live.call(_personal(live)) if v in html]
    assert not leaked, leaked
    ctx.close()


async def _featured(live: Live) -> list[str]:
    async with live.sessions() as s:
        f = await directory.featured(s, utcnow(), limit=5)
    return [st.code for st in f.current] + [p.station.code for p in f.past if p.station is not None]


async def _codes_in(live: Live, district: str) -> set[str]:
    async with live.sessions() as s:
        return set((await s.scalars(select(Station.code).where(Station.county == district))).all())


def test_a_scan_through_the_bot_moves_the_month_board_live(live: Live, browser: Any) -> None:
    ctx = phone(browser)
    page = ctx.new_page()
    page.goto(live.base + "/?tab=month")
    rows = month_rows(page)
    _, code, points = rows[3]
    openid = "oWebLive0001"
    talent_id = live.call(_new_talent(live, openid))
    scene = station_scene(live.settings.scene_key, code, time.time(), ROTATION_S)
    reply = live.call(live.sim.scan(openid, scene))
    assert reply.status == 200 and reply.text, reply.body
    # The worker applies the visit (R3: station +1) ...
    wait_for(lambda: live.call(_station_entries(live, code, talent_id)) >= 1, 15, "the worker to apply the visit")
    applied = time.monotonic()
    # ... and the open page shows it within 2 s, without a reload.
    row = f'table[data-board="month"] tr[data-code="{code}"]'
    wait_for(lambda: page.get_attribute(row, "data-points") == str(points + 1), LIVE_DEADLINE_S,
             f"{code}'s month points to become {points + 1} on the page")
    assert time.monotonic() - applied <= LIVE_DEADLINE_S
    cli = json.loads(live.cli("board", "month", "--json").stdout)
    assert month_rows(page) == [(r["rank"], r["code"], r["points"]) for r in cli[:10]]
    ctx.close()


# -- /stations/{code}, /me -------------------------------------------------------------------------


async def _talent(live: Live, openid: str) -> tuple[int, dict[str, int], int, list[int]]:
    async with live.sessions() as s:
        talent = (await s.scalars(select(Talent).where(Talent.openid == openid))).one()
        points = await boards.talent_points(s, talent.id, utcnow())
        st = await statement.statement(s, talent.id, now=utcnow(), limit=1)
        mine = await signups.my_signups(s, talent.id, utcnow())
    return talent.id, points, st.total_lines, [a.id for a in mine]


async def _open_activity(live: Live, exclude: list[int]) -> directory.ActivityView:
    async with live.sessions() as s:
        items = (await directory.activities(s, now=utcnow(), limit=100)).items
    return next(a for a in items if a.signup_open and a.id not in exclude)


async def _signed_up(live: Live, talent_id: int, activity_id: int) -> bool:
    async with live.sessions() as s:
        return (await s.scalar(select(Signup.id).where(Signup.talent_id == talent_id, Signup.activity_id == activity_id,
                                                       Signup.cancelled_at.is_(None)))) is not None


async def _card_points(live: Live, code: str) -> list[int]:
    async with live.sessions() as s:
        card = await directory.station_card(s, live.redis, code, now=utcnow())
    assert card is not None
    return [m.points for m in card.months]


def test_me_after_wechat_login_and_a_sign_up_on_a_station_page(live: Live, browser: Any) -> None:
    openid = live.built.talent[0]
    talent_id, points, total_lines, mine = live.call(_talent(live, openid))
    # The bot's 积分 and 我的码 link to /me.
    for word in ("积分", "我的码"):
        assert live.settings.page_url("/me") in live.call(live.sim.text(openid, word)).text
    ctx = phone(browser)
    page = ctx.new_page()
    # Not logged in: /me sends the phone through WeChat's OAuth (the fake's authorize page) and back.
    live.fake.oauth_user = openid
    page.goto(live.base + "/me")
    assert page.url.split("#")[0] == live.base + "/me"
    assert page.inner_text("#balance") == str(points["balance"])
    rules = page.eval_on_selector_all("#ledger li[data-rule]", "li => li.map(x => x.dataset.rule)")
    assert len(rules) == min(total_lines, 100) and set(rules) <= {"R3", "G", "V"} and "R3" in rules
    assert "打卡" in page.inner_text("#ledger li[data-rule='R3']")
    assert page.locator("#signups li[data-activity-id]").count() == len(mine)
    # The personal QR reads as this talent's own code.
    page.wait_for_function("document.querySelector('#my-code').naturalWidth > 0")
    assert 0 < int(page.get_attribute("#my-code", "data-refresh") or 0) < TALENT_CODE_TTL_S  # renewed in time
    scenes = decode(page.locator("#my-code").screenshot())
    assert len(scenes) == 1, f"the personal QR did not read: {scenes}"
    parsed = parse_scene(live.settings.scene_key, scenes[0], time.time())
    assert getattr(parsed, "kind", None) == "talent" and parsed.ref == str(talent_id), scenes
    # A station page: the card, its 12 months, and a sign-up through the API.
    activity = live.call(_open_activity(live, mine))
    page.goto(f"{live.base}/stations/{activity.station_code}")
    months = page.eval_on_selector_all("svg#history-chart g[data-month]", "g => g.map(x => Number(x.dataset.points))")
    assert months == live.call(_card_points(live, activity.station_code)) and len(months) == 12
    button = page.locator(f'li[data-activity-id="{activity.id}"] button[data-signup]')
    button.click()
    note = page.locator(f'li[data-activity-id="{activity.id}"] .note')
    wait_for(lambda: note.inner_text() == texts.PAGE["signed_up"], 5, "the sign-up to be confirmed")
    assert live.call(_signed_up(live, talent_id, activity.id))
    ctx.close()
    # Logged out, the station page offers a login instead of the button.
    anon = phone(browser)
    p2 = anon.new_page()
    p2.goto(f"{live.base}/stations/{activity.station_code}")
    assert p2.locator("button[data-signup]").count() == 0
    assert p2.locator("a[href^='/auth/wechat?next=']").count() >= 1
    html = p2.content()
    assert not [v for v in live.call(_personal(live)) if v in html]
    anon.close()


async def _bound(live: Live) -> int:
    async with live.sessions() as s:
        return int(await s.scalar(select(func.count(Talent.id)).where(Talent.openid.is_not(None))) or 0)


def test_admin_page_is_for_admins(live: Live, browser: Any) -> None:
    ctx = phone(browser)
    page = ctx.new_page()
    live.fake.oauth_user = live.built.talent[0]
    response = page.goto(live.base + "/admin")
    assert response is not None and response.status == 403
    assert texts.PAGE["admin_forbidden"] in page.content()
    assert ctx.request.get(live.base + "/admin/export/month-board").status == 403
    ctx.close()
    ctx = phone(browser)
    page = ctx.new_page()
    live.fake.oauth_user = live.built.admin
    page.goto(live.base + "/admin")
    assert page.url.split("#")[0] == live.base + "/admin"
    bound = sum(int(x) for x in page.eval_on_selector_all("#coverage tr[data-bound]",
                                                          "r => r.map(x => x.dataset.bound)"))
    assert bound == live.call(_bound(live)) >= live.built.bound
    assert page.locator("#checkins-chart g[data-district]").count() == live.built.counties
    export = ctx.request.get(live.base + "/admin/export/month-board")
    assert export.status == 200 and export.body()[:2] == b"PK"
    assert "spreadsheetml" in export.headers["content-type"]
    ctx.close()


# -- /kiosk/{code} ---------------------------------------------------------------------------------


async def _qr_content(live: Live, code: str, window: int) -> str:
    raw = await live.redis.get(kiosk.qr_key(code, window))
    rec = kiosk.load_qr(raw)
    assert rec is not None, f"no QR record for {code} window {window}"
    return str(rec["content"])


def test_kiosk_shows_the_rotating_wechat_code(live: Live, browser: Any) -> None:
    operator, code, name = live.built.operator
    key = kiosk.key_for(live.settings.scene_key, code, 1)
    # The operator gets the link from the bot.
    reply = live.call(live.sim.text(operator, "站点码")).text
    assert f"/kiosk/{code}?key={key}" in reply, reply
    ctx = phone(browser)
    page = ctx.new_page()
    # A wrong key, or a key of another station, shows nothing at all.
    for url in (f"/kiosk/{code}?key=wrong", f"/kiosk/{code}", f"/kiosk/NOPE?key={key}",
                f"/kiosk/{code}/state?key={key[:-1]}x"):
        r = ctx.request.get(live.base + url)
        assert r.status == 404 and r.body() == b"", url
    assert live.call(kiosk.open_codes(live.redis)) == set()
    page.goto(f"{live.base}/kiosk/{code}?key={key}")
    assert page.inner_text("#kiosk-name") == name
    assert page.inner_text("#kiosk-today").isdigit()
    # The worker issues this station's tickets (only this one's: its kiosk is the one open).
    page.wait_for_selector("#kiosk-qr[data-window]", timeout=15_000)
    first = int(page.get_attribute("#kiosk-qr", "data-window") or 0)
    page.wait_for_function("document.querySelector('#kiosk-qr').naturalWidth > 0")
    assert decode(page.locator("#kiosk-qr").screenshot()) == [live.call(_qr_content(live, code, first))]
    assert live.call(kiosk.open_codes(live.redis)) == {code}
    assert {r.json["action_info"]["scene"]["scene_str"].split(":")[1] for r in live.fake.calls("qr")} == {code}
    # At the next rotation the image switches by itself, to the next window's ticket.
    page.wait_for_function(f"document.querySelector('#kiosk-qr').dataset.window !== '{first}'",
                           timeout=(ROTATION_S + 4) * 1000)
    second = int(page.get_attribute("#kiosk-qr", "data-window") or 0)
    assert second > first
    page.wait_for_function("document.querySelector('#kiosk-qr').complete")
    after = decode(page.locator("#kiosk-qr").screenshot())
    assert after == [live.call(_qr_content(live, code, second))] and after[0] != live.call(
        _qr_content(live, code, first))
    # An admin resets the link: the old one shows nothing from then on; the operator gets the new one.
    assert "已重置" in live.call(live.sim.text(live.built.admin, f"站点码 重置 {code}")).text
    assert ctx.request.get(f"{live.base}/kiosk/{code}?key={key}").status == 404
    new_key = kiosk.key_for(live.settings.scene_key, code, 2)
    assert f"key={new_key}" in live.call(live.sim.text(operator, "站点码")).text
    ctx.close()


# -- every page on a 375-pixel-wide phone ----------------------------------------------------------


def test_every_page_fits_a_375_pixel_phone(live: Live, browser: Any) -> None:
    """No horizontal scroll on any page; with TALENTHOME_SCREENSHOTS=1 the README's screenshots are taken."""
    _, code, _ = live.built.operator

    async def current_key() -> str:
        async with live.sessions() as s:
            st = await kiosk.station(s, code)
        assert st is not None
        return kiosk.key_for(live.settings.scene_key, code, st.key_version)

    key = live.call(current_key())
    ctx = phone(browser)
    page = ctx.new_page()
    page.goto(live.base + "/")
    no_horizontal_scroll(page)
    screenshot(page, "home")
    page.goto(f"{live.base}/stations/{code}")
    no_horizontal_scroll(page)
    screenshot(page, "station")
    page.goto(f"{live.base}/kiosk/{code}?key={key}")
    page.wait_for_selector("#kiosk-qr[data-window]", timeout=15_000)
    page.wait_for_function("document.querySelector('#kiosk-qr').naturalWidth > 0")
    no_horizontal_scroll(page)
    screenshot(page, "kiosk")
    live.fake.oauth_user = live.built.talent[0]
    page.goto(live.base + "/me")
    page.wait_for_function("document.querySelector('#my-code').naturalWidth > 0")
    no_horizontal_scroll(page)
    screenshot(page, "me")
    ctx.close()
    ctx = phone(browser)
    page = ctx.new_page()
    live.fake.oauth_user = live.built.admin
    page.goto(live.base + "/admin")
    no_horizontal_scroll(page)
    screenshot(page, "admin")
    ctx.close()
