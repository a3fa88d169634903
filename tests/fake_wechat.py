"""A fake of WeChat's server API on loopback, for the outgoing client (SPEC 4).

It plays `cgi-bin/stable_token`, `message/template/send`, `message/custom/send`, `qrcode/create` and
`message/subscribe/bizsend` (subscription notifications; 43101 for an openid in `refused_subscribe`) the way
the platform documents them, and the logins of the window (web/auth.py): `sns/jscode2session` (a mini
program's `wx.login` code), `sns/oauth2/access_token` and the OAuth authorize page
`connect/oauth2/authorize`, which redirects straight back with a code for `oauth_user` (as a phone whose
WeChat user is `oauth_user` would). Codes come from `login_code(openid)`; each is good once, five minutes
(40029 invalid code otherwise, 40163 code been used). It checks the access token like WeChat does (a revoked
or unknown token gets 40001), records every request, and answers from a per-endpoint queue of scripted responses first:

    fake.script("message/custom/send", 45009, Reply(status=500), Reply(delay=1.0), 40001)

An int is an errcode, `Reply(status=...)` an HTTP error, `Reply(delay=...)` an answer that comes late (a
client timeout when longer than its timeout), `Reply(body={...})` any JSON. A late answer whose client has
hung up is not delivered: WeChat is modelled as committing a message when it answers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40014: "invalid access_token",
    42001: "access_token expired",
    43004: "require subscribe",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    43101: "user refuse to accept the msg",
    40029: "invalid code",
    40163: "code been used",
    40125: "invalid appsecret",
}

ENDPOINTS = {
    "token": "/cgi-bin/stable_token",
    "template": "/cgi-bin/message/template/send",
    "custom": "/cgi-bin/message/custom/send",
    "subscribe": "/cgi-bin/message/subscribe/bizsend",
    "qr": "/cgi-bin/qrcode/create",
    "jscode2session": "/sns/jscode2session",
    "oauth_token": "/sns/oauth2/access_token",
    "authorize": "/connect/oauth2/authorize",
}


@dataclass
class Reply:
    body: dict[str, Any] | None = None  # None: the endpoint's normal answer (after the delay)
    status: int = 200
    delay: float = 0.0


@dataclass
class Request:
    path: str
    query: dict[str, str]
    json: dict[str, Any]
    raw: bytes
    at: float
    reply: dict[str, Any] | None = None  # the JSON answered (None: HTTP error or no answer)
    delivered: bool = False  # a message or QR code WeChat accepted


@dataclass
class FakeWeChat:
    appid: str = "wx0000000000demo01"
    secret: str = "talenthome-demo-secret"
    expires_in: int = 7200
    unfollowed: set[str] = field(default_factory=set)  # openids answered 43004
    silent: set[str] = field(default_factory=set)  # openids outside the customer-service window (45015)
    refused_subscribe: set[str] = field(default_factory=set)  # openids that no longer accept (43101)
    requests: list[Request] = field(default_factory=list)
    tokens_issued: int = 0
    base_url: str = ""
    _scripts: dict[str, deque[int | Reply]] = field(default_factory=lambda: defaultdict(deque))
    _token: str | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _inflight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    max_inflight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _runner: web.AppRunner | None = None
    # Logins: the openid behind each issued code, codes already used, and who is "on the phone" for OAuth.
    oauth_user: str | None = None
    _codes: dict[str, tuple[str, float]] = field(default_factory=dict)
    _used: set[str] = field(default_factory=set)

    # -- control -------------------------------------------------------------------------------------

    async def start(self) -> FakeWeChat:
        app = web.Application()
        app.router.add_post(ENDPOINTS["token"], self._stable_token)
        app.router.add_post(ENDPOINTS["template"], self._template)
        app.router.add_post(ENDPOINTS["custom"], self._custom)
        app.router.add_post(ENDPOINTS["subscribe"], self._subscribe)
        app.router.add_post(ENDPOINTS["qr"], self._qrcode)
        app.router.add_get(ENDPOINTS["jscode2session"], self._jscode2session)
        app.router.add_get(ENDPOINTS["oauth_token"], self._oauth_token)
        app.router.add_get(ENDPOINTS["authorize"], self._authorize)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def script(self, path: str, *responses: int | Reply) -> None:
        """Queue responses for an endpoint (a key of ENDPOINTS, or its path, with or without cgi-bin/)."""
        self._scripts[self._path(path)].extend(responses)

    def login_code(self, openid: str) -> str:
        """A one-time login code for `openid` (what `wx.login` or the authorize page would hand out)."""
        code = f"CODE{next(self._ids)}x{openid[-6:]}"
        self._codes[code] = (openid, time.monotonic())
        return code

    def revoke_token(self) -> None:
        """Invalidate the current token server-side (as when another party forced a refresh)."""
        self._token = None

    @property
    def token(self) -> str | None:
        return self._token

    # -- queries -------------------------------------------------------------------------------------

    def calls(self, path: str) -> list[Request]:
        p = self._path(path)
        return [r for r in self.requests if r.path == p]

    def delivered(self, path: str | None = None) -> list[Request]:
        """Messages (and QR codes) WeChat accepted, in order."""
        return [r for r in (self.calls(path) if path else self.requests) if r.delivered]

    def delivered_to(self, openid: str) -> list[Request]:
        return [r for r in self.delivered() if r.json.get("touser") == openid]

    # -- handlers ------------------------------------------------------------------------------------

    @staticmethod
    def _path(path: str) -> str:
        if path in ENDPOINTS:
            return ENDPOINTS[path]
        path = "/" + path.lstrip("/")
        return path if path.startswith(("/cgi-bin/", "/sns/", "/connect/")) else "/cgi-bin" + path

    async def _handle(self, request: web.Request, normal: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        rec = Request(request.path, dict(request.query), body, raw, time.monotonic())
        self.requests.append(rec)
        self._inflight[rec.path] += 1
        self.max_inflight[rec.path] = max(self.max_inflight[rec.path], self._inflight[rec.path])
        try:
            queue = self._scripts[rec.path]
            step = queue.popleft() if queue else Reply()
            if isinstance(step, int):
                step = Reply(body={"errcode": step, "errmsg": ERRMSG.get(step, "scripted error")})
            if step.delay:
                await asyncio.sleep(step.delay)
                if request.transport is None or request.transport.is_closing():
                    return web.Response(status=499)  # the client hung up: nothing is committed
            if step.status != 200:
                return web.Response(status=step.status, text="scripted HTTP error")
            answer = step.body if step.body is not None else normal(rec)
            rec.reply = answer
            rec.delivered = rec.path.startswith("/cgi-bin/") and rec.path != ENDPOINTS["token"] \
                and answer.get("errcode", 0) == 0
            return web.Response(text=json.dumps(answer, ensure_ascii=False), content_type="text/plain")
        finally:
            self._inflight[rec.path] -= 1

    def _check_token(self, rec: Request) -> dict[str, Any] | None:
        token = rec.query.get("access_token")
        if not token:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        if token != self._token:
            return {"errcode": 40001, "errmsg": ERRMSG[40001]}
        return None

    async def _stable_token(self, request: web.Request) -> web.StreamResponse:
        def normal(rec: Request) -> dict[str, Any]:
            b = rec.json
            if b.get("grant_type") != "client_credential" or b.get("appid") != self.appid:
                return {"errcode": 40013, "errmsg": "invalid appid"}
            if b.get("secret") != self.secret:
                return {"errcode": 40125, "errmsg": ERRMSG[40125]}
            if self._token is None or b.get("force_refresh"):
                self.tokens_issued += 1
                self._token = f"TOKEN-{self.tokens_issued}"
            return {"access_token": self._token, "expires_in": self.expires_in}

        return await self._handle(request, normal)

    async def _template(self, request: web.Request) -> web.StreamResponse:
        def normal(rec: Request) -> dict[str, Any]:
            if err := self._check_token(rec):
                return err
            if not rec.json.get("touser") or not rec.json.get("template_id"):
                return {"errcode": 47001, "errmsg": "data format error"}
            if rec.json["touser"] in self.unfollowed:
                return {"errcode": 43004, "errmsg": ERRMSG[43004]}
            return {"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)}

        return await self._handle(request, normal)

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        def normal(rec: Request) -> dict[str, Any]:
            if err := self._check_token(rec):
                return err
            b = rec.json
            data = b.get("data")
            if not b.get("touser") or not b.get("template_id") or not isinstance(data, dict) or not data or \
                    not all(isinstance(v, dict) and "value" in v for v in data.values()):
                return {"errcode": 47003, "errmsg": "argument invalid! data.thing1.value invalid"}
            if b["touser"] in self.unfollowed:
                return {"errcode": 43004, "errmsg": ERRMSG[43004]}
            if b["touser"] in self.refused_subscribe:
                return {"errcode": 43101, "errmsg": ERRMSG[43101]}
            return {"errcode": 0, "errmsg": "ok"}

        return await self._handle(request, normal)

    async def _custom(self, request: web.Request) -> web.StreamResponse:
        def normal(rec: Request) -> dict[str, Any]:
            if err := self._check_token(rec):
                return err
            b = rec.json
            if not b.get("touser") or b.get("msgtype") != "text" or not b.get("text", {}).get("content"):
                return {"errcode": 47001, "errmsg": "data format error"}
            if b["touser"] in self.unfollowed:
                return {"errcode": 43004, "errmsg": ERRMSG[43004]}
            if b["touser"] in self.silent:
                return {"errcode": 45015, "errmsg": ERRMSG[45015]}
            return {"errcode": 0, "errmsg": "ok"}

        return await self._handle(request, normal)

    async def _qrcode(self, request: web.Request) -> web.StreamResponse:
        def normal(rec: Request) -> dict[str, Any]:
            if err := self._check_token(rec):
                return err
            b = rec.json
            scene = b.get("action_info", {}).get("scene", {}).get("scene_str")
            if b.get("action_name") != "QR_STR_SCENE" or not scene or len(scene) > 64:
                return {"errcode": 40097, "errmsg": "invalid args"}
            n = next(self._ids)
            return {"ticket": f"gQH47joAAAAAAAAAASxodHRw+{n}/==", "expire_seconds": int(b.get("expire_seconds", 60)),
                    "url": f"http://weixin.qq.com/q/fake{n}"}

        return await self._handle(request, normal)

    # -- logins ----------------------------------------------------------------------------------------

    def _redeem(self, code: str | None) -> dict[str, Any] | str:
        """The openid of a good code (used up now), or WeChat's error for it."""
        issued = self._codes.get(code or "")
        if code in self._used:
            return {"errcode": 40163, "errmsg": ERRMSG[40163]}
        if issued is None or time.monotonic() - issued[1] > 300:
            return {"errcode": 40029, "errmsg": ERRMSG[40029]}
        self._used.add(code or "")
        return issued[0]

    async def _jscode2session(self, request: web.Request) -> web.StreamResponse:
        def normal(rec: Request) -> dict[str, Any]:
            q = rec.query
            if q.get("appid") != self.appid or q.get("secret") != self.secret:
                return {"errcode": 40125, "errmsg": ERRMSG[40125]}
            if q.get("grant_type") != "authorization_code":
                return {"errcode": 40002, "errmsg": "invalid grant_type"}
            who = self._redeem(q.get("js_code"))
            if isinstance(who, dict):
                return who
            return {"openid": who, "session_key": "c2Vzc2lvbmtleQ==", "unionid": None}

        return await self._handle(request, normal)

    async def _oauth_token(self, request: web.Request) -> web.StreamResponse:
        def normal(rec: Request) -> dict[str, Any]:
            q = rec.query
            if q.get("appid") != self.appid or q.get("secret") != self.secret:
                return {"errcode": 40125, "errmsg": ERRMSG[40125]}
            if q.get("grant_type") != "authorization_code":
                return {"errcode": 40002, "errmsg": "invalid grant_type"}
            who = self._redeem(q.get("code"))
            if isinstance(who, dict):
                return who
            return {"access_token": f"OAUTH-{next(self._ids)}", "expires_in": 7200,
                    "refresh_token": "REFRESH", "openid": who, "scope": "snsapi_base"}

        return await self._handle(request, normal)

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        """WeChat's authorize page for snsapi_base: no prompt, straight back to redirect_uri with a code for
        `oauth_user` and the state. A bad appid or scope is answered in plain text, as WeChat's page does."""
        from urllib.parse import urlencode

        q = dict(request.query)
        self.requests.append(Request(request.path, q, {}, b"", time.monotonic()))
        if q.get("appid") != self.appid or q.get("scope") != "snsapi_base" or q.get("response_type") != "code" \
                or not q.get("redirect_uri", "").startswith(("http://", "https://")):
            return web.Response(status=400, text="参数错误")
        queue = self._scripts[ENDPOINTS["authorize"]]
        step = queue.popleft() if queue else None
        code = "BADCODE" if step is not None else self.login_code(self.oauth_user or "oNobody")
        sep = "&" if "?" in q["redirect_uri"] else "?"
        target = q["redirect_uri"] + sep + urlencode({"code": code, "state": q.get("state", "")})
        return web.Response(status=302, headers={"Location": target})
