"""The mobile pages (issue 11), server-rendered with Jinja2 (aiohttp-jinja2), for a 375-pixel-wide phone in
WeChat's browser; every script, style and chart is served from here (web/static/, inline SVG), no CDN.

- `/`: the three boards as tabs, the featured carousel, filters by district and type; web/static/site.js
  keeps the open tab live by polling `/api/v1/boards/{kind}` with its ETag every second.
- `/stations/{code}`: the card, its last 12 months as an SVG chart, activities with a sign-up button.
- `/me`: after WeChat login, the talent's balance, every ledger line in words, sign-ups and the personal QR.
- `/kiosk/{code}?key=...`: the station's rotating check-in QR on a tablet; `state` (JSON) and `qr.svg` feed
  it. A wrong key (or unknown or delisted station) gets 404 with an empty body: nothing to learn from it.
  Each poll marks the kiosk open (scoring.kiosk), so the worker issues the station's WeChat QR tickets.
- `/admin`: the city at a glance (scoring.cityview) and the Excel exports, for admins only.

Views are thin: read the request, one or two `scoring/` calls, a template. No SQL here. Public pages show
stations only, never a talent; `/me` shows the logged-in talent their own data and nothing else.
"""

from __future__ import annotations

import io
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from scoring import accounts, cityview, directory, exports, kiosk, periods, services, signups, staff, statement
from scoring.clock import utcnow
from scoring.periods import Period
from scoring.tokens import TALENT_CODE_TTL_S
from web import qr, texts
from web.api import line_text
from web.auth import current_openid
from web.deps import DepsOf, WebDeps, deps

HERE: Final = Path(__file__).parent
TEMPLATES: Final = HERE / "templates"
STATIC: Final = HERE / "static"
BOARD_LIMIT: Final = 50
FEATURED_PAST: Final = 5
LEDGER_LIMIT: Final = 100
ADMIN_ROLES: Final = frozenset({staff.Role.ADMIN})


def _asset_version() -> str:
    """Changes when a static file changes, so WeChat's browser never keeps a stale script."""
    return str(max(int(p.stat().st_mtime) for p in STATIC.iterdir()))


def local(at: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return periods.to_local(at).strftime(fmt) if at is not None else ""


def _login(next_path: str) -> web.HTTPFound:
    return web.HTTPFound("/auth/wechat?next=" + quote(next_path, safe="/"))


def _render(name: str, request: web.Request, context: dict[str, Any], status: int = 200) -> web.Response:
    response = aiohttp_jinja2.render_template(name, request, context, status=status)
    response.headers.setdefault("Cache-Control", "no-cache")
    return response


def _labels() -> dict[str, Any]:
    """The words site.js puts on rows it draws itself."""
    p = texts.PAGE
    return {"types": texts.TYPE_NAMES, "featured": p["featured_badge"], "stars": p["stars"],
            "empty": p["board_empty"], "updated": p["updated"], "signed_up": p["signed_up"],
            "signed_up_button": p["signed_up_button"], "failed": p["signup_failed"]}


# -- public pages ------------------------------------------------------------------------------------


async def home(request: web.Request) -> web.Response:
    d = deps(request)
    q = request.query
    tab = q.get("tab") if q.get("tab") in directory.BOARD_KINDS else "month"
    station_type = q.get("type") if q.get("type") in directory.TYPES else None
    now = utcnow()
    async with d.sessions() as s:
        districts = await directory.districts(s)
        district = q.get("district") if q.get("district") in districts else None
        boards = {}
        for kind in directory.BOARD_KINDS:
            period = Period.parse(kind, now=now)
            rows = directory.filter_rows(await directory.board(s, d.redis, period, now=now),
                                         station_type=station_type, district=district)
            boards[kind] = {"period": period.key, "rows": rows[:BOARD_LIMIT]}
        featured = await directory.featured(s, now, limit=FEATURED_PAST)
    slides = len(featured.current) + sum(1 for p in featured.past if p.station is not None)
    return _render("home.html", request, {
        "tab": tab, "kinds": directory.BOARD_KINDS, "boards": boards, "featured": featured, "slides": slides,
        "districts": districts, "district": district, "station_type": station_type, "limit": BOARD_LIMIT,
        "labels": _labels()})


async def station_page(request: web.Request) -> web.Response:
    d = deps(request)
    code = request.match_info["code"]
    now = utcnow()
    openid = current_openid(request)
    async with d.sessions() as s:
        card = await directory.station_card(s, d.redis, code, now=now)
        talent = await accounts.talent_by_openid(s, openid) if openid and card is not None else None
        mine = await signups.my_signups(s, talent.id, now) if talent is not None else []
    if card is None:
        return _render("not_found.html", request, {"message": texts.PAGE["not_found"]}, status=404)
    return _render("station.html", request, {"card": card, "talent": talent is not None,
                                             "signed_up": {a.id for a in mine}, "labels": _labels()})


async def me_page(request: web.Request) -> web.Response:
    d = deps(request)
    openid = current_openid(request)
    if openid is None:
        raise _login("/me")
    now = utcnow()
    me: dict[str, Any] | None = None
    async with d.sessions() as s:
        talent = await accounts.talent_by_openid(s, openid)
        if talent is not None:
            st = await statement.statement(s, talent.id, now=now, limit=LEDGER_LIMIT)
            mine = await signups.my_signups(s, talent.id, now)
            me = {**st.points, "lines": [{"rule": x.rule, "amount": x.amount, "occurred_at": x.occurred_at,
                                          "words": line_text(x)} for x in st.lines],
                  "signups": mine}
    response = _render("me.html", request, {"me": me, "ledger_limit": LEDGER_LIMIT,
                                            "code_refresh_s": TALENT_CODE_TTL_S // 2})
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- the kiosk ---------------------------------------------------------------------------------------


def _nothing() -> web.Response:
    return web.Response(status=404, body=b"", headers={"Cache-Control": "no-store"})


async def _kiosk_station(request: web.Request) -> tuple[WebDeps, kiosk.KioskStation] | None:
    d = deps(request)
    key = request.query.get("key", "")
    if not key or len(key) > 64:
        return None
    async with d.sessions() as s:
        st = await kiosk.open_station(s, d.settings.scene_key, request.match_info["code"], key)
    return (d, st) if st is not None else None


async def _kiosk_state(d: WebDeps, st: kiosk.KioskStation, key: str) -> dict[str, Any]:
    """Mark the kiosk open, read its current QR (asking the worker for one when it is missing or only the
    previous window's grace is left) and today's count."""
    now = time.time()
    await kiosk.ask(d.redis, st.code, now)
    rec = await kiosk.current_qr(d.redis, st.code, now=now)
    window = int(now) // d.settings.station_code_rotation_s
    if await kiosk.claim_issue(d.redis, st.code, window, 2 * d.settings.station_code_rotation_s):
        await d.enqueue("issue_station_qr", st.code, job_id=f"qr:{st.code}:{window}")
    async with d.sessions() as s:
        today = await kiosk.today_count(s, st.id)
    shown = rec.get("window") if rec is not None else None
    image = (f"/kiosk/{quote(st.code, safe='')}/qr.svg?key={quote(key, safe='')}&window={shown}"
             if shown is not None else None)
    return {"code": st.code, "name": st.name, "today": today, "window": shown, "image": image,
            "valid_until": rec.get("valid_until") if rec is not None else None}


async def kiosk_page(request: web.Request) -> web.Response:
    found = await _kiosk_station(request)
    if found is None:
        return _nothing()
    d, st = found
    key = request.query["key"]
    state = await _kiosk_state(d, st, key)
    response = _render("kiosk.html", request, {
        "name": st.name, "today": state["today"], "window": state["window"], "image_url": state["image"],
        "state_url": f"/kiosk/{quote(st.code, safe='')}/state?key={quote(key, safe='')}"})
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the key is in the URL
    return response


async def kiosk_state(request: web.Request) -> web.Response:
    found = await _kiosk_station(request)
    if found is None:
        return _nothing()
    d, st = found
    return web.json_response(await _kiosk_state(d, st, request.query["key"]),
                             headers={"Cache-Control": "no-store"})


async def kiosk_qr(request: web.Request) -> web.Response:
    """The QR image of a rotation window's WeChat ticket (what WeChat's own image would encode)."""
    found = await _kiosk_station(request)
    if found is None:
        return _nothing()
    d, st = found
    raw = request.query.get("window", "")
    rec = (kiosk.load_qr(await d.redis.get(kiosk.qr_key(st.code, int(raw)))) if raw.isdigit() and len(raw) < 12
           else await kiosk.current_qr(d.redis, st.code))
    content = rec.get("content") if rec is not None else None
    if not content:
        return _nothing()
    return web.Response(text=qr.svg(str(content), title=st.name), content_type="image/svg+xml",
                        headers={"Cache-Control": f"private, max-age={d.settings.station_code_rotation_s}"})


# -- admin -------------------------------------------------------------------------------------------


async def _admin(request: web.Request, next_path: str) -> WebDeps | web.Response:
    d = deps(request)
    openid = current_openid(request)
    if openid is None:
        raise _login(next_path)
    async with d.sessions() as s:
        access = await staff.access_of(s, openid, d.settings.admin_openid_set)
    if staff.Role.ADMIN not in access.roles:
        return _render("forbidden.html", request, {}, status=403)
    return d


async def admin_page(request: web.Request) -> web.Response:
    d = await _admin(request, "/admin")
    if isinstance(d, web.Response):
        return d
    now = utcnow()
    async with d.sessions() as s:
        view = await cityview.city_view(s, now)
        service_rows = await services.overview(s)
    response = _render("admin.html", request, {"view": view, "kinds": exports.KINDS, "services": service_rows,
                                               "colors": ["#b3261e", "#e0603c", "#d4a017", "#1a7f37", "#0b62c4",
                                                          "#6f42c1", "#8a9bb0", "#57606a"]})
    response.headers["Cache-Control"] = "private, no-store"
    return response


async def admin_export(request: web.Request) -> web.Response:
    d = await _admin(request, "/admin")
    if isinstance(d, web.Response):
        return d
    kind = request.match_info["kind"]
    if kind not in exports.KINDS:
        return _render("not_found.html", request, {"message": texts.PAGE["not_found"]}, status=404)
    async with d.sessions() as s:
        book, period = await exports.build(s, kind)
    out = io.BytesIO()
    book.save(out)
    name = f"talenthome-{kind}-{period}.xlsx"
    return web.Response(body=out.getvalue(), headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "private, no-store"})


def setup(app: web.Application, deps_of: DepsOf) -> None:
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                               autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.globals.update(t=texts, local=local, asset_version=_asset_version())
    r = app.router
    r.add_get("/", home)
    r.add_get("/stations/{code}", station_page)
    r.add_get("/me", me_page)
    r.add_get("/kiosk/{code}", kiosk_page)
    r.add_get("/kiosk/{code}/state", kiosk_state)
    r.add_get("/kiosk/{code}/qr.svg", kiosk_qr)
    r.add_get("/admin", admin_page)
    r.add_get("/admin/export/{kind}", admin_export)
    r.add_static("/static", str(STATIC), append_version=False)
