"""WeChat login for the window, two ways, one session:

- Mini program: `POST /api/v1/session {"code"}` (from `wx.login`) -> `sns/jscode2session` -> openid -> a
  bearer token `{"token", "expires_at"}`.
- H5 pages in WeChat's browser: `GET /auth/wechat?next=/me` -> WeChat's authorize page (`snsapi_base`) ->
  `/auth/wechat/callback?code=&state=` -> `sns/oauth2/access_token` -> openid -> a signed HttpOnly,
  SameSite=Lax session cookie -> redirect to `next`.

A session token is `<openid>.<expiry, unix s>.<HMAC-SHA256>` keyed by a key derived from the scene secret (a
different purpose string, so a scene token can never pass as a session). `next` is followed only when it is
a same-origin path (`/x`, never `//host` or a scheme); `state` must equal the one set in a short-lived cookie
when the login started (CSRF). `current_openid(request)` reads the cookie or `Authorization: Bearer`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import web

from scoring.settings import Settings
from web import texts
from web.deps import DepsOf, deps

log = logging.getLogger(__name__)

SESSION_COOKIE = "th_session"
STATE_COOKIE = "th_oauth_state"
SESSION_TTL_S = 7 * 24 * 3600
STATE_TTL_S = 600
WECHAT_TIMEOUT_S: Final = 5.0
# WeChat's answers to a bad, used or expired code (jscode2session / oauth2 access_token).
BAD_CODE_ERRCODES: Final = frozenset({40029, 40163, 40226, 41008})


def _key(request_or_key: web.Request | bytes) -> bytes:
    base = request_or_key if isinstance(request_or_key, bytes) else deps(request_or_key).settings.scene_key
    return hmac.new(base, b"web-session-v1", hashlib.sha256).digest()


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_session(scene_key: bytes, openid: str, now: float, ttl_s: int = SESSION_TTL_S) -> tuple[str, int]:
    """A session token for `openid`, valid `ttl_s` seconds from `now`; returns (token, expires_at)."""
    expires = int(now) + ttl_s
    body = f"{openid}.{expires}"
    return f"{body}.{_mac(_key(scene_key), body)}", expires


def verify_session(scene_key: bytes, token: str, now: float) -> str | None:
    """The openid a token was signed for, or None when it is malformed, forged or expired."""
    if not token or len(token) > 512:
        return None
    parts = token.rsplit(".", 2)
    if len(parts) != 3:
        return None
    openid, expires, mac = parts
    if not openid or not expires.isdigit():
        return None
    if not hmac.compare_digest(mac, _mac(_key(scene_key), f"{openid}.{expires}")):
        return None
    if int(expires) <= now:
        return None
    return openid


def current_openid(request: web.Request) -> str | None:
    """The logged-in openid: the `Authorization: Bearer` token, else the session cookie; None if neither is
    valid. For the pages and the API alike."""
    key = deps(request).settings.scene_key
    header = request.headers.get("Authorization", "")
    now = time.time()
    if header.startswith("Bearer "):
        return verify_session(key, header[7:].strip(), now)
    cookie = request.cookies.get(SESSION_COOKIE)
    return verify_session(key, cookie, now) if cookie else None




# -- `next`, where a login returns to ------------------------------------------------------------------


def safe_next(raw: str | None) -> str:
    """`raw` when it is a path on this site (`/me?x=1`), else "/": never `//host`, `/\\host`, a scheme,
    control characters or whitespace (browsers drop tabs and newlines, turning `/<tab>/evil` into `//evil`)."""
    if not raw or len(raw) > 512 or not raw.startswith("/") or raw.startswith(("//", "/\\")):
        return "/"
    if any(c <= " " or c == "\\" or c == "\x7f" for c in raw):
        return "/"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return "/"
    return raw


# -- WeChat's sns endpoints ------------------------------------------------------------------------------


class LoginFailed(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


async def _sns(settings: Settings, path: str, query: dict[str, str]) -> dict[str, Any]:
    """GET an `sns/...` endpoint of WECHAT_API_BASE; an errcode for a bad code is `bad_code`, anything else
    wrong (network, HTTP error, garbage) `wechat_unavailable`."""
    url = settings.wechat_api_base.rstrip("/") + "/" + path
    try:
        async with asyncio.timeout(WECHAT_TIMEOUT_S), aiohttp.ClientSession() as http, \
                http.get(url, params=query) as resp:
            if resp.status != 200:
                raise LoginFailed("wechat_unavailable", f"HTTP {resp.status}")
            body = json.loads(await resp.read())
    except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError) as err:  # deep JSON: RecursionError
        raise LoginFailed("wechat_unavailable", type(err).__name__) from None
    if not isinstance(body, dict):
        raise LoginFailed("wechat_unavailable", "not an object")
    errcode = body.get("errcode") or 0
    if errcode:
        log.info("wechat %s refused the code: %s %s", path, errcode, body.get("errmsg"))
        raise LoginFailed("bad_code" if errcode in BAD_CODE_ERRCODES else "wechat_unavailable", str(errcode))
    openid = body.get("openid")
    if not isinstance(openid, str) or not openid or len(openid) > 64 or "." in openid:
        raise LoginFailed("wechat_unavailable", "no openid")
    return body


def _code(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 128:
        raise LoginFailed("bad_code", "malformed")
    return raw.strip()


async def openid_from_jscode(settings: Settings, code: object) -> str:
    """The mini program's `wx.login` code -> openid (`sns/jscode2session`)."""
    secret = settings.miniprogram_secret.get_secret_value() if settings.miniprogram_secret else ""
    body = await _sns(settings, "sns/jscode2session", {
        "appid": settings.miniprogram_appid or settings.wechat_appid,
        "secret": secret or settings.wechat_secret.get_secret_value(),
        "js_code": _code(code), "grant_type": "authorization_code"})
    return str(body["openid"])


async def openid_from_oauth(settings: Settings, code: object) -> str:
    """The official account's OAuth code -> openid (`sns/oauth2/access_token`, snsapi_base)."""
    body = await _sns(settings, "sns/oauth2/access_token", {
        "appid": settings.wechat_appid, "secret": settings.wechat_secret.get_secret_value(),
        "code": _code(code), "grant_type": "authorization_code"})
    return str(body["openid"])


# -- the state cookie of an OAuth round trip -------------------------------------------------------------


@dataclass(frozen=True)
class State:
    state: str
    next: str


def sign_state(scene_key: bytes, state: str, next_path: str, now: float) -> str:
    nxt = base64.urlsafe_b64encode(next_path.encode()).decode().rstrip("=")
    body = f"{state}.{nxt}.{int(now) + STATE_TTL_S}"
    return f"{body}.{_mac(_key(scene_key), 'state:' + body)}"


def verify_state(scene_key: bytes, cookie: str | None, now: float) -> State | None:
    if not cookie or len(cookie) > 1024:
        return None
    parts = cookie.split(".")
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    state, nxt, expires, mac = parts
    if not hmac.compare_digest(mac, _mac(_key(scene_key), f"state:{state}.{nxt}.{expires}")) or int(expires) <= now:
        return None
    try:
        next_path = base64.urlsafe_b64decode(nxt + "=" * (-len(nxt) % 4)).decode()
    except ValueError:
        return None
    return State(state, safe_next(next_path))


# -- views ---------------------------------------------------------------------------------------------


def _error(status: int, code: str) -> web.Response:
    body = {"error": {"code": code, "message": texts.error_message(code)}}
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _page(status: int, code: str) -> web.Response:
    """A short Chinese page for the browser when an H5 login fails."""
    message = html.escape(texts.error_message(code))
    body = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{texts.LOGIN_FAILED_TITLE}</title></head><body><h1>{texts.LOGIN_FAILED_TITLE}</h1>"
            f'<p>{message}</p><p><a href="/">{texts.LOGIN_AGAIN}</a></p></body></html>')
    return web.Response(status=status, text=body, content_type="text/html", headers={"Cache-Control": "no-store"})


async def create_session(request: web.Request) -> web.Response:
    """POST /api/v1/session {"code"}: a mini program's `wx.login` code for a bearer token."""
    if request.query:
        name = next(iter(request.query))
        return web.json_response({"error": {"code": "unknown_parameter",
                                            "message": texts.error_message("unknown_parameter", name=name[:40])}},
                                 status=400, dumps=lambda o: json.dumps(o, ensure_ascii=False))
    raw = await request.content.read(4097)
    try:
        body = json.loads(raw) if len(raw) <= 4096 else None
    except (ValueError, RecursionError):  # `[[[[...` 4 KiB deep is a RecursionError, not a ValueError
        body = None
    if not isinstance(body, dict):
        return _error(400, "bad_body")
    if set(body) - {"code"}:
        name = sorted(set(body) - {"code"})[0]
        return web.json_response({"error": {"code": "unknown_parameter",
                                            "message": texts.error_message("unknown_parameter", name=name[:40])}},
                                 status=400, dumps=lambda o: json.dumps(o, ensure_ascii=False))
    settings = deps(request).settings
    try:
        openid = await openid_from_jscode(settings, body.get("code"))
    except LoginFailed as err:
        return _error(401 if err.code == "bad_code" else 503, err.code)
    token, expires = sign_session(settings.scene_key, openid, time.time())
    return web.json_response({"token": token, "token_type": "Bearer", "expires_at": expires,
                              "expires_in": expires - int(time.time())},
                             headers={"Cache-Control": "no-store"})


def _base_url(request: web.Request, settings: Settings) -> str:
    return (settings.web_base_url or f"{request.scheme}://{request.host}").rstrip("/")


def _secure(request: web.Request, settings: Settings) -> bool:
    """Cookies are Secure over HTTPS, including behind a proxy that ends TLS (WEB_BASE_URL https://...)."""
    return request.secure or settings.web_base_url.startswith("https://")


async def start_oauth(request: web.Request) -> web.Response:
    """GET /auth/wechat?next=/me: to WeChat's authorize page, with a state bound to a cookie."""
    settings = deps(request).settings
    next_path = safe_next(request.query.get("next"))
    state = secrets.token_urlsafe(16)
    redirect_uri = _base_url(request, settings) + "/auth/wechat/callback"
    url = (settings.wechat_oauth_base.rstrip("/") + "/connect/oauth2/authorize"
           f"?appid={quote(settings.wechat_appid, safe='')}&redirect_uri={quote(redirect_uri, safe='')}"
           f"&response_type=code&scope=snsapi_base&state={state}#wechat_redirect")
    resp = web.Response(status=302, headers={"Location": url})
    resp.set_cookie(STATE_COOKIE, sign_state(settings.scene_key, state, next_path, time.time()),
                    max_age=STATE_TTL_S, path="/auth/", httponly=True, samesite="Lax",
                    secure=_secure(request, settings))
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def oauth_callback(request: web.Request) -> web.Response:
    """GET /auth/wechat/callback?code=&state=: the state must match the cookie's; then the session cookie."""
    settings = deps(request).settings
    now = time.time()
    started = verify_state(settings.scene_key, request.cookies.get(STATE_COOKIE), now)
    state = request.query.get("state", "")
    if started is None or not hmac.compare_digest(state.encode(), started.state.encode()):
        return _page(400, "bad_state")
    try:
        openid = await openid_from_oauth(settings, request.query.get("code"))
    except LoginFailed as err:
        return _page(401 if err.code == "bad_code" else 503, err.code)
    token, _ = sign_session(settings.scene_key, openid, now)
    resp = web.Response(status=302, headers={"Location": started.next})
    resp.set_cookie(SESSION_COOKIE, token, max_age=SESSION_TTL_S, path="/", httponly=True, samesite="Lax",
                    secure=_secure(request, settings))
    resp.del_cookie(STATE_COOKIE, path="/auth/")
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def logout(request: web.Request) -> web.Response:
    """POST /auth/logout: forget the session cookie."""
    resp = web.Response(status=302, headers={"Location": "/"})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


def setup(app: web.Application, deps_of: DepsOf) -> None:
    app.router.add_post("/api/v1/session", create_session)
    app.router.add_get("/auth/wechat", start_oauth)
    app.router.add_get("/auth/wechat/callback", oauth_callback)
    app.router.add_post("/auth/logout", logout)
