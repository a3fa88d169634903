"""The mini program's JSON API (issue 11) on the bot's real server: shapes, the boards against `talenthome
board`, paging and parameters, ETags, privacy, logins (jscode2session and OAuth against the fake WeChat API),
the talent's own data, sign-ups and the personal code decoded from the image."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import struct
import zlib
from datetime import datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
import zxingcpp
from sqlalchemy import select

from scoring.clock import unix, utcnow
from scoring.models import Notification
from scoring.tokens import Scene, parse_scene
from talenthome.cli import main
from tests.web.conftest import City, Site
from web.auth import SESSION_COOKIE, sign_session

PUBLIC_ROWS = {"rank", "code", "name", "kind", "type", "district", "stars", "points", "featured"}


async def cli_board(site: Site, kind: str, period: str | None) -> list[dict[str, Any]]:
    """`talenthome board ... --json`, through the function the script calls, in this process: so it reads the
    test's pinned clock (a subprocess would read the real one, and "the current year" would differ from
    New Year 2027 on)."""
    args = ["board", kind, "--json"] + (["--period", period] if period else [])

    def call() -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(args)
        return code, out.getvalue()

    with patch.dict(os.environ, {"DATABASE_URL": site.bot.settings.database_url, "REDIS_URL": ""}):
        code, out = await asyncio.to_thread(call)  # main() runs its own event loop
    assert code == 0, out
    return list(json.loads(out))


# -- boards --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "period"), [("month", "2026-11"), ("year", "2026"), ("total", None),
                                              ("month", "2026-10")])
async def test_board_rows_are_the_cli_boards(site: Site, city: City, kind: str, period: str | None) -> None:
    """The same order, ranks and points as `talenthome board` (which sums the ledger in SQL) while the API
    reads the live boards in Redis; delisted and not-yet-eligible stations absent."""
    query = f"?period={period}&limit=100" if period else "?limit=100"
    body = await site.json(f"/api/v1/boards/{kind}{query}")
    assert body["period"] == (period or "all")
    assert datetime.fromisoformat(body["updated_at"]).utcoffset() == timedelta(hours=8)
    assert all(set(r) == PUBLIC_ROWS for r in body["rows"])
    cli = await cli_board(site, kind, period)
    assert [(r["rank"], r["code"], r["name"], r["points"]) for r in body["rows"]] == \
        [(r["rank"], r["code"], r["name"], r["points"]) for r in cli]
    codes = [r["code"] for r in body["rows"]]
    assert "S004" not in codes and "S005" not in codes  # delisted; certified this year
    assert body["total"] == len(cli)


async def test_month_board_content(site: Site, city: City) -> None:
    body = await site.json("/api/v1/boards/month")  # the current month by default (the pinned clock)
    assert body["period"] == "2026-11"
    rows = {r["code"]: r for r in body["rows"]}
    assert [r["code"] for r in body["rows"]][:3] == ["S001", "S003", "S002"]  # the tie: who reached 3 first
    assert (rows["S003"]["rank"], rows["S002"]["rank"]) == (2, 2)
    assert rows["S001"] == {"rank": 1, "code": "S001", "name": "鲤城人才之家", "kind": "home",
                            "type": "comprehensive", "district": "鲤城区", "stars": 3, "points": 5,
                            "featured": False}
    assert rows["S002"]["featured"] is True  # first in October: on November's carousel
    assert rows["S002"]["kind"] == "community" and rows["S002"]["district"] == "丰泽区"


async def test_board_filters_keep_city_ranks_and_page(site: Site, city: City) -> None:
    body = await site.json("/api/v1/boards/month?type=industry")
    assert [(r["code"], r["rank"]) for r in body["rows"]] == [("S002", 2)]
    body = await site.json("/api/v1/boards/month?district=%E4%B8%B0%E6%B3%BD%E5%8C%BA")  # 丰泽区
    assert [r["code"] for r in body["rows"]] == ["S003", "S002"]
    page = await site.json("/api/v1/boards/month?limit=2&offset=1")
    assert [r["code"] for r in page["rows"]] == ["S003", "S002"]
    assert (page["limit"], page["offset"], page["total"]) == (2, 1, 4)
    assert (await site.json("/api/v1/boards/month?offset=50"))["rows"] == []
    default = await site.json("/api/v1/boards/month")
    assert default["limit"] == 20


@pytest.mark.parametrize(("path", "code"), [
    ("/api/v1/boards/month?sort=points", "unknown_parameter"),
    ("/api/v1/boards/month?limit=101", "bad_parameter"),
    ("/api/v1/boards/month?limit=0", "bad_parameter"),
    ("/api/v1/boards/month?limit=-1", "bad_parameter"),
    ("/api/v1/boards/month?limit=%EF%BC%95", "bad_parameter"),  # a full-width digit
    ("/api/v1/boards/month?offset=x", "bad_parameter"),
    ("/api/v1/boards/month?period=2026-13", "bad_parameter"),
    ("/api/v1/boards/month?period=0000-01", "bad_parameter"),
    ("/api/v1/boards/month?period=1999-12", "bad_parameter"),
    ("/api/v1/boards/year?period=2999", "bad_parameter"),
    ("/api/v1/boards/year?period=2026-11", "bad_parameter"),
    ("/api/v1/boards/total?period=2026", "bad_parameter"),
    ("/api/v1/boards/month?type=hotel", "bad_parameter"),
    ("/api/v1/boards/month?district=" + "x" * 65, "bad_parameter"),
    ("/api/v1/boards/month?limit=5&limit=6", "bad_parameter"),
    ("/api/v1/stations?q=x", "unknown_parameter"),
    ("/api/v1/stations?kind=villa", "bad_parameter"),
    ("/api/v1/stations/S001?x=1", "unknown_parameter"),
    ("/api/v1/activities?from=2026-11-31", "bad_parameter"),
    ("/api/v1/activities?from=2026-11-20&to=2026-11-19", "bad_parameter"),
    ("/api/v1/featured?page=2", "unknown_parameter"),
])
async def test_bad_parameters_are_refused(site: Site, city: City, path: str, code: str) -> None:
    body = await site.json(path, status=400)
    assert body["error"]["code"] == code
    assert re.search(r"[\u4e00-\u9fff]", body["error"]["message"])  # Chinese, for people


async def test_unknown_routes_and_methods_are_json(site: Site, city: City) -> None:
    assert (await site.json("/api/v1/boards/week", status=404))["error"]["code"] == "not_found"
    assert (await site.json("/api/v1/nothing", status=404))["error"]["code"] == "not_found"
    async with site.http.put(site.base + "/api/v1/featured") as resp:
        assert resp.status == 405 and (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_public_reads_have_etags_and_304(site: Site, city: City) -> None:
    for path in ("/api/v1/boards/month", "/api/v1/featured", "/api/v1/stations", "/api/v1/stations/S001",
                 "/api/v1/activities"):
        async with await site.get(path) as resp:
            assert resp.status == 200
            etag = resp.headers["ETag"]
            assert resp.headers["Cache-Control"].startswith("public, max-age=")
            body = await resp.read()
        async with await site.get(path, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304 and await resp.read() == b""
            assert resp.headers["ETag"] == etag
        async with await site.get(path, headers={"If-None-Match": '"stale"'}) as resp:
            assert resp.status == 200 and await resp.read() == body


# -- featured, stations, activities ----------------------------------------------------------------------


async def test_featured(site: Site, city: City) -> None:
    body = await site.json("/api/v1/featured")
    assert body["month"] == "2026-11"
    assert [s["code"] for s in body["current"]] == ["S002"]
    assert body["current"][0]["name"] == "丰泽人才社区"
    assert body["past"] == [] and body["total"] == 0


async def test_station_directory(site: Site, city: City) -> None:
    body = await site.json("/api/v1/stations")
    assert [s["code"] for s in body["rows"]] == ["S001", "S002", "S003", "S005", "S006"]  # not the delisted
    assert body["rows"][0] == {"code": "S001", "name": "鲤城人才之家", "kind": "home", "type": "comprehensive",
                               "district": "鲤城区", "stars": 3, "address": "泉州市鲤城区中山路1号",
                               "opening_hours": "周一至周五 9:00-17:00"}
    q = "/api/v1/stations?district=%E4%B8%B0%E6%B3%BD%E5%8C%BA&kind=home"
    assert [s["code"] for s in (await site.json(q))["rows"]] == ["S003"]
    assert [s["code"] for s in (await site.json("/api/v1/stations?text=%E4%B8%B0%E6%B3%BD"))["rows"]] == \
        ["S002", "S003"]  # 丰泽 in the name
    assert [s["code"] for s in (await site.json("/api/v1/stations?text=%E4%B8%AD%E5%B1%B1%E8%B7%AF"))["rows"]] \
        == ["S001"]  # 中山路 in the address
    assert (await site.json("/api/v1/stations?text=%25"))["rows"] == []  # % is a character, not a wildcard
    assert (await site.json("/api/v1/stations?text=_"))["rows"] == []
    page = await site.json("/api/v1/stations?limit=2&offset=2")
    assert [s["code"] for s in page["rows"]] == ["S003", "S005"] and page["total"] == 5


async def test_station_card(site: Site, city: City) -> None:
    card = await site.json("/api/v1/stations/S001")
    assert card["address"] == "泉州市鲤城区中山路1号" and card["opening_hours"] == "周一至周五 9:00-17:00"
    assert card["ranks"] == {"total": {"rank": 1, "points": 6}, "year": {"rank": 1, "points": 6},
                             "month": {"rank": 1, "points": 5}}
    assert len(card["months"]) == 12
    assert card["months"][0]["month"] == "2025-12" and card["months"][-1]["month"] == "2026-11"
    assert card["months"][-1] == {"month": "2026-11", "points": 5, "rank": 1, "closed": False}
    assert card["months"][-2] == {"month": "2026-10", "points": 1, "rank": 2, "closed": True}  # the snapshot
    assert card["months"][0]["points"] == 0
    assert [a["title"] for a in card["activities"]] == ["人才沙龙"]
    a = card["activities"][0]
    assert (a["capacity"], a["taken"], a["free_seats"], a["signup_open"]) == (2, 1, 1, True)
    assert card["services"] == [] and card["featured"] is False and card["featured_months"] == []
    s2 = await site.json("/api/v1/stations/S002")
    assert s2["featured"] is True and s2["featured_months"] == ["2026-11"]
    s5 = await site.json("/api/v1/stations/S005")  # not eligible: points, no rank
    assert s5["eligible"] is False and s5["ranks"]["month"] == {"rank": None, "points": 9}
    assert (await site.json("/api/v1/stations/S004", status=404))["error"]["code"] == "station_not_found"
    assert (await site.json("/api/v1/stations/NOPE", status=404))["error"]["code"] == "station_not_found"


async def test_activities(site: Site, city: City) -> None:
    body = await site.json("/api/v1/activities")
    assert [a["title"] for a in body["rows"]] == ["人才沙龙", "读书会"]  # upcoming; not the delisted station's
    assert body["rows"][1]["free_seats"] is None and body["rows"][1]["signup_open"] is True
    assert body["rows"][0]["station"] == {"code": "S001", "name": "鲤城人才之家"}
    assert body["rows"][0]["starts_at"] == "2026-11-25T14:00:00+08:00"
    only = await site.json("/api/v1/activities?station=S002")
    assert [a["title"] for a in only["rows"]] == ["读书会"]
    november = await site.json("/api/v1/activities?from=2026-11-01&to=2026-11-30")
    assert [(a["title"], a["signup_open"]) for a in november["rows"]] == [("往期沙龙", False), ("人才沙龙", True)]
    assert november["rows"][0]["taken"] == 1  # a walk-in attendance takes a seat


async def test_no_personal_data_on_public_routes(site: Site, city: City) -> None:
    paths = ["/api/v1/boards/total", "/api/v1/boards/year", "/api/v1/boards/month", "/api/v1/featured",
             "/api/v1/stations", "/api/v1/activities?from=2026-01-01", "/api/v1/boards/month?period=2026-10"]
    paths += [f"/api/v1/stations/{code}" for code in ("S001", "S002", "S003", "S005", "S006")]
    seen = ""
    for path in paths:
        async with await site.get(path) as resp:
            assert resp.status == 200
            seen += await resp.text() + json.dumps(dict(resp.headers), ensure_ascii=False)
    leaked = [s for s in city.secrets if s in seen]
    assert leaked == []
    assert "openid" not in seen and "phone" not in seen


# -- logins ----------------------------------------------------------------------------------------------


async def test_login_with_a_mini_program_code(site: Site, city: City) -> None:
    code = site.fake.login_code("oTalentSecret01")
    async with site.http.post(site.base + "/api/v1/session", json={"code": code}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["token_type"] == "Bearer" and body["expires_at"] > unix(utcnow())
    call = site.fake.calls("jscode2session")[-1]
    assert call.query["js_code"] == code and call.query["grant_type"] == "authorization_code"
    me = await site.json("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me["talent"]["cert_no"] == "QZSECRET01"
    # The code is good once.
    async with site.http.post(site.base + "/api/v1/session", json={"code": code}) as resp:
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "bad_code"


@pytest.mark.parametrize("case", ["unknown", "scripted_40029", "empty", "not_a_string", "wechat_500",
                                  "not_json", "extra_field"])
async def test_bad_login_codes(site: Site, city: City, case: str) -> None:
    from tests.fake_wechat import Reply

    body: Any = {"code": "NOT-ISSUED"}
    expected = (401, "bad_code")
    if case == "scripted_40029":
        body = {"code": site.fake.login_code("oTalentSecret01")}
        site.fake.script("jscode2session", 40029)
    elif case == "empty":
        body = {"code": ""}
    elif case == "not_a_string":
        body = {"code": ["x"]}
    elif case == "wechat_500":
        body = {"code": site.fake.login_code("oTalentSecret01")}
        site.fake.script("jscode2session", Reply(status=500))
        expected = (503, "wechat_unavailable")
    elif case == "not_json":
        body, expected = None, (400, "bad_body")
    elif case == "extra_field":
        body, expected = {"code": "x", "openid": "oTalentSecret01"}, (400, "unknown_parameter")
    kw: dict[str, Any] = {"data": b"{nope"} if body is None else {"json": body}
    async with site.http.post(site.base + "/api/v1/session", **kw) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == expected
        assert "token" not in await resp.text()


async def test_forged_and_expired_tokens_are_refused(site: Site, city: City) -> None:
    key = site.bot.settings.scene_key
    good = await site.token_for("oTalentSecret01")
    openid, expires, mac = good.rsplit(".", 2)
    expired, _ = sign_session(key, "oTalentSecret01", unix(utcnow()) - 8 * 24 * 3600)
    other_key, _ = sign_session(b"another secret", "oTalentSecret01", unix(utcnow()))
    from scoring.tokens import talent_scene

    bad = [
        f"oTalentSecret02.{expires}.{mac}",  # another talent's openid under this signature
        f"{openid}.{int(expires) + 10**6}.{mac}",  # a longer life
        f"{openid}.{expires}.{mac[:-2]}AA",
        expired, other_key, "", "a.b", "..", f"{openid}.{expires}",
        talent_scene(key, city.talents["li"].id, unix(utcnow())),  # a personal code is no session
    ]
    for token in bad:
        body = await site.json("/api/v1/me", status=401, headers={"Authorization": f"Bearer {token}"})
        assert body["error"]["code"] == "unauthenticated", token
    # Without any token; a bearer token that is bad is not rescued by a good cookie.
    assert (await site.json("/api/v1/me", status=401))["error"]["code"] == "unauthenticated"
    site.http.cookie_jar.update_cookies({SESSION_COOKIE: good})
    await site.json("/api/v1/me")
    await site.json("/api/v1/me", status=401, headers={"Authorization": f"Bearer {expired}"})


async def test_a_stranger_is_not_bound(site: Site, city: City) -> None:
    token = await site.token_for("oStranger")
    for path in ("/api/v1/me", "/api/v1/me/signups", "/api/v1/me/code"):
        body = await site.json(path, status=403, headers={"Authorization": f"Bearer {token}"})
        assert body["error"]["code"] == "not_bound"


async def _oauth(site: Site, next_path: str, who: str = "oTalentSecret01") -> tuple[int, str, Any]:
    """/auth/wechat -> the fake's authorize page -> the callback; returns the callback's status, Location
    and the response's cookies."""
    from urllib.parse import quote, urlsplit

    site.fake.oauth_user = who
    async with await site.get("/auth/wechat?next=" + quote(next_path, safe="")) as resp:
        assert resp.status == 302
        authorize = resp.headers["Location"]
    assert authorize.startswith(site.fake.base_url + "connect/oauth2/authorize?")
    assert authorize.endswith("#wechat_redirect")
    assert "scope=snsapi_base" in authorize and "response_type=code" in authorize
    assert "redirect_uri=" + quote(site.base + "/auth/wechat/callback", safe="") in authorize
    async with site.http.get(authorize, allow_redirects=False) as resp:
        assert resp.status == 302
        callback = resp.headers["Location"]
    assert urlsplit(callback).path == "/auth/wechat/callback"
    async with site.http.get(callback, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), resp.cookies


async def test_login_through_oauth(site: Site, city: City) -> None:
    status, location, cookies = await _oauth(site, "/me?tab=lines")
    assert (status, location) == (302, "/me?tab=lines")
    morsel = cookies[SESSION_COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    me = await site.json("/api/v1/me")  # with the cookie
    assert me["talent"]["cert_no"] == "QZSECRET01"
    call = site.fake.calls("oauth_token")[-1]
    assert call.query["appid"] == site.fake.appid and call.query["grant_type"] == "authorization_code"


@pytest.mark.parametrize("target", ["//evil.example", "https://evil", "http://evil.example/me", "/\\evil.example",
                                    "/\t/evil.example", "javascript:alert(1)", "evil", ""])
async def test_oauth_never_redirects_off_site(site: Site, city: City, target: str) -> None:
    status, location, _ = await _oauth(site, target)
    assert (status, location) == (302, "/")


async def test_oauth_state_must_match_its_cookie(site: Site, city: City) -> None:
    async with await site.get("/auth/wechat?next=/me") as resp:
        authorize = resp.headers["Location"]
    site.fake.oauth_user = "oTalentSecret01"
    async with site.http.get(authorize, allow_redirects=False) as resp:
        callback = resp.headers["Location"]
    # An attacker's link: a good code, another state.
    forged = re.sub(r"state=[^&]+", "state=attacker", callback)
    async with site.http.get(forged, allow_redirects=False) as resp:
        assert resp.status == 400 and SESSION_COOKIE not in resp.cookies
    # The victim's browser without the state cookie (a login the victim never started).
    site.http.cookie_jar.clear()
    async with site.http.get(callback, allow_redirects=False) as resp:
        assert resp.status == 400 and SESSION_COOKIE not in resp.cookies
        assert "登录" in await resp.text()


async def test_oauth_with_a_bad_code(site: Site, city: City) -> None:
    site.fake.script("authorize", 40029)  # the authorize page hands back a code WeChat will not take
    status, location, cookies = await _oauth(site, "/me")
    assert status == 401 and SESSION_COOKIE not in cookies and location == ""


# -- the talent's own ------------------------------------------------------------------------------------


async def test_me_lines_explain_every_point(site: Site, city: City) -> None:
    token = await site.token_for("oTalentSecret01")
    auth = {"Authorization": f"Bearer {token}"}
    me = await site.json("/api/v1/me?limit=100", headers=auth)
    assert me["points"] == {"total": 5, "year": 5, "month": 5, "balance": 3} and me["balance"] == 3
    assert sum(x["amount"] for x in me["lines"]) == me["balance"] and me["total"] == len(me["lines"]) == 8
    rules = [x["rule"] for x in me["lines"]]
    assert set(rules) == {"R3", "G", "V"}
    gift = next(x for x in me["lines"] if x["rule"] == "G")
    assert gift["fact"]["gift"] == "人才书签" and gift["amount"] == -2 and "人才书签" in gift["text"]
    void = next(x for x in me["lines"] if x["rule"] == "V")
    assert void["reversal"] and void["reason"] == "重复打卡" and "重复打卡" in void["text"]
    attended = next(x for x in me["lines"] if x["fact"]["activity"])
    assert attended["fact"]["activity"]["title"] == "往期沙龙" and "往期沙龙" in attended["text"]
    visit = next(x for x in me["lines"] if x["rule"] == "R3" and not x["fact"]["activity"])
    assert visit["fact"]["station"] == {"code": "S001", "name": "鲤城人才之家"} and "鲤城人才之家" in visit["text"]
    assert [x["occurred_at"] for x in me["lines"]] == sorted((x["occurred_at"] for x in me["lines"]), reverse=True)
    page = await site.json("/api/v1/me?limit=2&offset=1", headers=auth)
    assert [x["id"] for x in page["lines"]] == [x["id"] for x in me["lines"][1:3]]
    # Only one's own: wang sees wang's lines.
    wang = {"Authorization": f"Bearer {await site.token_for('oTalentSecret02')}"}
    other = await site.json("/api/v1/me?limit=100", headers=wang)
    assert other["talent"]["cert_no"] == "QZSECRET02" and {x["rule"] for x in other["lines"]} == {"R3"}
    async with await site.get("/api/v1/me", headers=auth) as resp:
        assert "no-store" in resp.headers["Cache-Control"]


async def test_signup_and_cancel_through_the_api(site: Site, city: City) -> None:
    auth = {"Authorization": f"Bearer {await site.token_for('oTalentSecret01')}"}
    soon = city.activities["soon"]

    async def post(body: Any, status: int, headers: dict[str, str] = auth) -> Any:
        async with site.http.post(site.base + "/api/v1/me/signups", json=body, headers=headers) as resp:
            assert resp.status == status, await resp.text()
            return await resp.json()

    done = await post({"activity_id": soon.id}, 201)
    assert done["activity_id"] == soon.id and done["seats_left"] == 0 and done["station"] == "鲤城人才之家"
    # The operators hear of it as from the bot: the domain's outbox rows, the bot's words.
    async with site.bot.sessions() as s:
        notes = (await s.scalars(select(Notification).where(Notification.openid == "oOperator01"))).all()
    keys = sorted(n.key.split(":")[0] for n in notes if not n.key.startswith("monthclose:"))
    assert keys == ["full", "signup"]
    from bot import texts as bot_texts

    signup_text = json.loads(next(n for n in notes if n.key.startswith("signup:")).payload)["text"]
    assert signup_text == bot_texts.OP_NEW_SIGNUP.format(name="李保密", id=soon.id, title=soon.title, taken=2,
                                                         cap="/2")
    mine = await site.json("/api/v1/me/signups", headers=auth)
    assert [r["activity_id"] for r in mine["rows"]] == [soon.id] and mine["total"] == 1
    assert (await post({"activity_id": soon.id}, 409))["error"]["code"] == "already"
    assert (await post({"activity_id": city.activities["past"].id}, 409))["error"]["code"] == "closed"
    assert (await post({"activity_id": 99999}, 404))["error"]["code"] == "not_found"
    for bad in ({"activity_id": "abc"}, {"activity_id": True}, {"activity_id": 0}, {}, [1],
                {"activity_id": soon.id, "talent_id": 1}):
        assert (await post(bad, 400))["error"]["code"] in ("bad_parameter", "bad_body", "unknown_parameter")
    # A cross-site form post (text/plain) with the talent's cookie is not a sign-up.
    site.http.cookie_jar.update_cookies({SESSION_COOKIE: auth["Authorization"].removeprefix("Bearer ")})
    form = json.dumps({"activity_id": city.activities["open"].id})
    async with site.http.post(site.base + "/api/v1/me/signups", data=form,
                              headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 415 and (await resp.json())["error"]["code"] == "bad_content_type"
    site.http.cookie_jar.clear()
    # Full for another talent.
    wang = {"Authorization": f"Bearer {await site.token_for('oTalentSecret02')}"}
    assert (await post({"activity_id": soon.id}, 409, wang))["error"]["code"] == "already"  # seeded sign-up
    # Cancel, then again.
    async with site.http.delete(f"{site.base}/api/v1/me/signups/{soon.id}", headers=auth) as resp:
        assert resp.status == 200 and (await resp.json())["cancelled"] is True
    async with site.http.delete(f"{site.base}/api/v1/me/signups/{soon.id}", headers=auth) as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_signed_up"
    assert (await site.json("/api/v1/me/signups", headers=auth))["rows"] == []
    card = await site.json("/api/v1/stations/S001")
    assert card["activities"][0]["free_seats"] == 1
    # Without a login nothing changes.
    await post({"activity_id": soon.id}, 401, {})
    async with site.http.delete(f"{site.base}/api/v1/me/signups/{soon.id}") as resp:
        assert resp.status == 401


def _png_pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and the grey pixels of an 8-bit greyscale PNG written with filter 0 (web/qr.py)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", data[:10])
            assert (depth, colour) == (8, 0)
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    rows = [raw[y * (width + 1):(y + 1) * (width + 1)] for y in range(height)]
    assert all(r[0] == 0 for r in rows)
    return width, height, b"".join(r[1:] for r in rows)


def _svg_pixels(svg: str, box: int = 6) -> tuple[int, int, bytes]:
    """Render web/qr.py's SVG (a viewBox and unit squares in one path) to grey pixels."""
    n = int(re.search(r'viewBox="0 0 (\d+) \1"', svg).group(1))  # type: ignore[union-attr]
    dark = {(int(x), int(y)) for x, y in re.findall(r"M(\d+),(\d+)h1v1h-1z", svg)}
    assert dark
    pixels = bytearray()
    for y in range(n * box):
        for x in range(n * box):
            pixels.append(0 if (x // box, y // box) in dark else 255)
    return n * box, n * box, bytes(pixels)


def _decode(width: int, height: int, pixels: bytes) -> str:
    found = zxingcpp.read_barcodes(memoryview(pixels).cast("B", (height, width)))
    assert len(found) == 1
    return str(found[0].text)


@pytest.mark.parametrize("fmt", ["svg", "png"])
async def test_my_code_decodes_to_the_bots_scene(site: Site, city: City, fmt: str) -> None:
    auth = {"Authorization": f"Bearer {await site.token_for('oTalentSecret01')}"}
    async with await site.get(f"/api/v1/me/code?format={fmt}", headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("image/svg+xml" if fmt == "svg" else "image/png")
        assert "no-store" in resp.headers["Cache-Control"]
        body = await resp.read()
    scene = _decode(*(_svg_pixels(body.decode()) if fmt == "svg" else _png_pixels(body)))
    assert scene.startswith("tl:") and len(scene) <= 64
    key = site.bot.settings.scene_key
    parsed = parse_scene(key, scene, unix(utcnow()))
    assert parsed == Scene("talent", str(city.talents["li"].id), parsed.issued)  # type: ignore[union-attr]
    # The bot's 我的码 gives the same kind of scene for the same talent.
    reply = await site.bot.wx.text("oTalentSecret01", "我的码")
    bot_scene = re.search(r"tl:[0-9a-z]+\.[0-9a-z]+\.[A-Za-z0-9_-]+", reply.text).group(0)  # type: ignore[union-attr]
    assert parse_scene(key, bot_scene, unix(utcnow())) == Scene("talent", str(city.talents["li"].id),
                                                                 parse_scene(key, bot_scene, unix(utcnow())).issued)  # type: ignore[union-attr]
    # Expired after the code's lifetime, like the bot's.
    assert not isinstance(parse_scene(key, scene, unix(utcnow() + timedelta(hours=2))), Scene)


async def test_default_format_is_svg_and_unknown_format_refused(site: Site, city: City) -> None:
    auth = {"Authorization": f"Bearer {await site.token_for('oTalentSecret01')}"}
    async with await site.get("/api/v1/me/code", headers=auth) as resp:
        assert resp.headers["Content-Type"].startswith("image/svg+xml")
    body = await site.json("/api/v1/me/code?format=gif", status=400, headers=auth)
    assert body["error"]["code"] == "bad_parameter"
    assert (await site.json("/api/v1/me/code", status=401))["error"]["code"] == "unauthenticated"


async def test_the_board_follows_the_ledger_and_a_delisting(site: Site, city: City, redis: Any) -> None:
    """A new entry on the live boards and a delisting show on the next refresh; readers meanwhile get the
    board they had (never a wait, never an error)."""
    from scoring import live
    from scoring.db import transaction
    from scoring.models import Entry, Station
    from web.api import BOARDS

    first = await site.json("/api/v1/boards/month")
    assert first["rows"][0]["code"] == "S001"
    async with transaction(site.bot.sessions) as s:
        entry = Entry(key="late:1", station_id=city.stations["S006"].id, amount=10, rule="R3@1", fact_kind="visit",
                      occurred_at=utcnow())
        s.add(entry)
        await s.flush()
        bumps = await live.plan(s, [entry])
        (await s.get(Station, city.stations["S003"].id)).status = "delisted"  # type: ignore[union-attr]
    assert (await live.bump(redis, bumps)).added == 1
    cache = site.bot.app[BOARDS]
    cache.stale()
    meanwhile = await site.json("/api/v1/boards/month")  # the board it had, while the refresh runs
    assert meanwhile["rows"] == first["rows"]
    await cache.refreshed()
    now = await site.json("/api/v1/boards/month")
    assert [(r["code"], r["points"], r["rank"]) for r in now["rows"]] == \
        [("S006", 10, 1), ("S001", 5, 2), ("S002", 3, 3)]
    assert now["updated_at"] >= first["updated_at"]
    cli = await cli_board(site, "month", "2026-11")
    assert [(r["code"], r["points"], r["rank"]) for r in cli] == [("S006", 10, 1), ("S001", 5, 2), ("S002", 3, 3)]


async def test_walking_periods_keeps_a_bounded_number_of_boards(site: Site, city: City) -> None:
    from web.api import BOARDS, MAX_BOARDS

    for year in range(2022, 2027):
        for month in range(1, 13):
            await site.json(f"/api/v1/boards/month?period={year}-{month:02d}")
    assert len(site.bot.app[BOARDS]._boards) <= MAX_BOARDS
    body = await site.json("/api/v1/boards/month?period=2026-11")  # still right after evictions
    assert body["rows"][0]["code"] == "S001"


async def test_behind_an_https_proxy(sqlite_url: str, redis_url: str) -> None:
    """WEB_BASE_URL: WeChat returns to the public origin, and the cookies are Secure though the proxy speaks
    plain HTTP to us."""
    from urllib.parse import quote

    import aiohttp

    from tests.bot.conftest import start_bot

    async for bot in start_bot(sqlite_url, redis_url, web_base_url="https://talent.example",
                               wechat_oauth_base="https://open.example/"):
        base = bot.url.removesuffix("/wechat")
        async with aiohttp.ClientSession() as http, \
                http.get(base + "/auth/wechat?next=/me", allow_redirects=False) as resp:
            assert resp.status == 302
            location = resp.headers["Location"]
            assert location.startswith("https://open.example/connect/oauth2/authorize?")
            assert "redirect_uri=" + quote("https://talent.example/auth/wechat/callback", safe="") in location
            morsel = resp.cookies["th_oauth_state"]
            assert morsel["secure"] and morsel["httponly"] and morsel["path"] == "/auth/"
