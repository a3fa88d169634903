"""The one client for WeChat's server API (SPEC 4 "Outgoing WeChat calls"): access token, template
messages, customer-service messages, temporary QR codes.

aiohttp, not wechatpy's client (blocking, and it keeps the token per process). The base URL is
configuration (`WECHAT_API_BASE`); every request has explicit connect and total timeouts.

Expected failures are typed outcomes, never exceptions:

- `Sent(data)`: WeChat accepted the call (errcode 0); `data` is its JSON answer.
- `Retry(after, reason)`: worth trying again later, `after` seconds from now. Rate limits (45009, 45011),
  "system busy" (-1), HTTP errors, timeouts and dropped connections are first retried inside the call with
  exponential backoff (capped, jittered) a bounded number of times; only then is `Retry` returned. An API
  that cannot be reached at all (connection refused, DNS) or refuses the credentials returns `Retry` at
  once: it will not heal within the call, and the caller (the outbox, the QR cron) retries later.
- `GiveUp(reason, errcode)`: WeChat refused for good: 43004 the user unfollowed, 45015 outside the
  customer-service window, 45047 customer-service quota used up, and any other errcode not listed as
  transient (invalid openid, invalid template id, ...). Not to be retried.

The access token (`stable_token`) is shared by every process through Redis under `th:wechat:token:{appid}`,
with a TTL a bit shorter than `expires_in`. Only one process refreshes it: the refresher holds
`th:wechat:token:{appid}:lock` (SET NX PX, released only by its owner); the others poll Redis briefly for
the new token. 40001/40014/42001 (invalid or expired token) refresh the token once and resend once; the
refresh compares the token the call used with the one in Redis first, so a token that many calls see
rejected at the same moment is refreshed only once (the first caller forces a new one, the rest find it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from redis.asyncio import Redis

from scoring.settings import Settings

log = logging.getLogger(__name__)

SHOW_QR_URL: Final = "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket="

TOKEN_ERRORS: Final = frozenset({40001, 40014, 42001})
TRANSIENT_ERRORS: Final = frozenset({-1, 45009, 45011})
PERMANENT_ERRORS: Final = {
    43004: "the user does not follow the account (43004)",
    45015: "outside the customer-service window (45015)",
    45047: "customer-service message quota used up (45047)",
}

_RELEASE_LOCK: Final = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Sent:
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Retry:
    after: float  # seconds
    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str
    errcode: int | None = None


Outcome = Sent | Retry | GiveUp


class _Transient(Exception):
    """A failure worth retrying (network, timeout, HTTP error, token not available yet)."""

    def __init__(self, reason: str, *, retry_in_call: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.retry_in_call = retry_in_call


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class WeChatClient:
    """Async WeChat API client; one per process (composition root), closed with `close()`."""

    def __init__(
        self,
        redis: Redis,
        *,
        appid: str,
        secret: str,
        base_url: str = "https://api.weixin.qq.com/",
        timeout: float = 5.0,
        connect_timeout: float = 3.0,
        retries: int = 3,
        backoff: float = 0.5,
        backoff_cap: float = 30.0,
        token_poll: float = 0.025,
    ) -> None:
        self._redis = redis
        self.appid = appid
        self._secret = secret
        self.base_url = base_url.rstrip("/") + "/"
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout, sock_connect=connect_timeout)
        self.retries = retries
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self._token_poll = token_poll
        self.token_key = f"th:wechat:token:{appid}"
        self.lock_key = f"{self.token_key}:lock"
        # The lock outlives one token request (its total timeout) with room to spare; a dead holder's lock
        # expires by itself, and waiters give up a little after that.
        self._lock_ms = int(timeout * 1000) + 2000
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis, **kwargs: Any) -> WeChatClient:
        return cls(redis, appid=settings.wechat_appid, secret=settings.wechat_secret.get_secret_value(),
                   base_url=settings.wechat_api_base, **kwargs)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the API -------------------------------------------------------------------------------------

    async def send_template(self, openid: str, template_id: str, data: dict[str, Any], *, url: str | None = None,
                            retries: int | None = None) -> Outcome:
        """Template message (reaches a follower at any time). `data` values may be plain text or
        {"value": ...}."""
        body: dict[str, Any] = {
            "touser": openid, "template_id": template_id,
            "data": {k: v if isinstance(v, dict) else {"value": str(v)} for k, v in data.items()},
        }
        if url:
            body["url"] = url
        return await self._call("cgi-bin/message/template/send", body, retries=retries)

    async def send_subscribe(self, openid: str, template_id: str, data: dict[str, Any], *, page: str | None = None,
                             retries: int | None = None) -> Outcome:
        """Subscription notification (订阅通知, message/subscribe/bizsend): reaches a follower who accepted
        the template, at any time. `data` values may be plain text or {"value": ...}."""
        body: dict[str, Any] = {
            "touser": openid, "template_id": template_id,
            "data": {k: v if isinstance(v, dict) else {"value": str(v)} for k, v in data.items()},
        }
        if page:
            body["page"] = page
        return await self._call("cgi-bin/message/subscribe/bizsend", body, retries=retries)

    async def send_text(self, openid: str, text: str, *, retries: int | None = None) -> Outcome:
        """Customer-service text message (only inside the user's 48-hour window)."""
        body = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        return await self._call("cgi-bin/message/custom/send", body, retries=retries)

    async def create_qr(self, scene: str, expire_seconds: int, *, retries: int | None = None) -> Outcome:
        """Temporary QR code with a string scene. `Sent.data`: ticket, expire_seconds, url (the image at
        mp.weixin.qq.com/cgi-bin/showqrcode), content (what the QR image encodes)."""
        body = {"expire_seconds": expire_seconds, "action_name": "QR_STR_SCENE",
                "action_info": {"scene": {"scene_str": scene}}}
        outcome = await self._call("cgi-bin/qrcode/create", body, retries=retries)
        if isinstance(outcome, Sent):
            ticket = outcome.data.get("ticket")
            if not isinstance(ticket, str) or not ticket:
                return Retry(self._delay(1), "qrcode/create answered without a ticket")
            return Sent({"ticket": ticket, "expire_seconds": int(outcome.data.get("expire_seconds") or expire_seconds),
                         "url": SHOW_QR_URL + quote(ticket, safe=""), "content": outcome.data.get("url", "")})
        return outcome

    async def access_token(self, *, stale: str | None = None) -> str:
        """The shared access token. `stale`: a token WeChat just rejected; a different one is returned,
        refreshed (force_refresh) by exactly one process when Redis still holds the rejected one.
        Raises `_Transient` when no token can be had now."""
        token = _text(await self._redis.get(self.token_key))
        if token and token != stale:
            return token
        owner = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_ms / 1000 + 1.0
        while True:
            if await self._redis.set(self.lock_key, owner, nx=True, px=self._lock_ms):
                try:
                    token = _text(await self._redis.get(self.token_key))
                    if token and token != stale:
                        return token  # refreshed by someone else between our read and the lock
                    token, expires_in = await self._fetch_token(force=stale is not None)
                    ttl = expires_in - 300 if expires_in > 600 else max(1, expires_in // 2)
                    await self._redis.set(self.token_key, token, ex=ttl)
                    return token
                finally:
                    await self._redis.eval(_RELEASE_LOCK, 1, self.lock_key, owner)  # type: ignore[misc]
            await asyncio.sleep(self._token_poll)
            token = _text(await self._redis.get(self.token_key))
            if token and token != stale:
                return token
            if loop.time() > deadline:
                raise _Transient("timed out waiting for another process to refresh the access token")

    async def prepare(self) -> bool:
        """Make the access token ready (one Redis read when it is): True when it is. A failure is not
        raised: the call that needs the token tries again and reports it as its outcome. The outbox calls
        this before it claims a row, so a worker that dies while the token is fetched leaves the row pending."""
        try:
            await self.access_token()
        except _Transient as err:
            log.debug("wechat: no access token yet (%s)", err.reason)
            return False
        return True

    # -- internals -----------------------------------------------------------------------------------

    async def _fetch_token(self, *, force: bool) -> tuple[str, int]:
        body = {"grant_type": "client_credential", "appid": self.appid, "secret": self._secret,
                "force_refresh": force}
        data = await self._post("cgi-bin/stable_token", None, body)
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if not isinstance(token, str) or not token:
            code = data.get("errcode")
            # Bad credentials or an IP not on the allow-list will not heal within this call.
            raise _Transient(f"stable_token errcode {code}: {data.get('errmsg', '')}",
                             retry_in_call=code in TRANSIENT_ERRORS)
        log.info("wechat: new access token (force_refresh=%s)", force)
        return token, int(expires_in or 7200)

    async def _post(self, path: str, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        # Raw UTF-8: WeChat shows \\uXXXX escapes literally in messages.
        raw = json.dumps(body, ensure_ascii=False).encode()
        params = {"access_token": token} if token is not None else None
        try:
            async with self._session.post(self.base_url + path, params=params, data=raw,
                                          headers={"Content-Type": "application/json; charset=utf-8"}) as resp:
                if resp.status != 200:
                    raise _Transient(f"HTTP {resp.status} from {path}")
                data = await resp.json(content_type=None)
        except TimeoutError:
            raise _Transient(f"timeout on {path}") from None
        except aiohttp.ClientConnectorError as err:
            # Nothing listens (or no route, no DNS): not back within this call; the caller retries later.
            raise _Transient(f"cannot connect for {path}: {err}", retry_in_call=False) from None
        except (aiohttp.ClientError, ValueError) as err:
            raise _Transient(f"{type(err).__name__} on {path}: {err}") from None
        if not isinstance(data, dict):
            raise _Transient(f"unexpected answer from {path}")
        return data

    def _delay(self, failures: int) -> float:
        """Exponential backoff with a cap and jitter (50-100% of the step)."""
        step = min(self.backoff_cap, self.backoff * 2.0 ** max(0, failures - 1))
        return step * (0.5 + random.random() / 2)

    async def _call(self, path: str, body: dict[str, Any], *, retries: int | None) -> Outcome:
        budget = self.retries if retries is None else retries
        failures = 0
        stale: str | None = None
        while True:
            try:
                token = await self.access_token(stale=stale)
                data = await self._post(path, token, body)
            except _Transient as err:
                reason, again = err.reason, err.retry_in_call
            else:
                code = int(data.get("errcode") or 0)
                if code == 0:
                    return Sent(data)
                reason, again = f"errcode {code}: {data.get('errmsg', '')}", True
                if code in TOKEN_ERRORS:
                    if stale is None:
                        stale = token  # refresh once (shared, see access_token) and resend once
                        continue
                    again = False
                elif code in PERMANENT_ERRORS:
                    return GiveUp(PERMANENT_ERRORS[code], code)
                elif code not in TRANSIENT_ERRORS:
                    return GiveUp(reason, code)
            failures += 1
            delay = self._delay(failures)
            if not again or failures > budget:
                log.debug("wechat %s: retry in %.1fs (%s)", path, delay, reason)
                return Retry(delay, reason)
            await asyncio.sleep(delay)
