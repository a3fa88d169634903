"""The WeChat callback, top to bottom:

    verify signature -> (safe mode) decrypt -> parse (wechatpy) -> de-duplicate -> route -> reply

Rules (SPEC 5-6, issue 3):
- Signatures are compared in constant time before anything is parsed; a bad one is 403.
- Plain mode's signature does not cover the body, so a timestamp more than 300 s from now is 403, and a
  reused (timestamp, nonce) whose body differs from the first one is 403 (the same body again is a retry).
- A body over 1 MiB is 413; malformed XML, or any DOCTYPE or entity, is 400 before a parser sees it.
- De-duplication in Redis: messages by MsgId, events by FromUserName + CreateTime + Event + EventKey. A retry
  gets the first answer again (the rendered reply is cached); while the first attempt still runs, a retry
  waits for it instead of running twice.
- The handler has a budget (about 4 s, inside WeChat's 5 s); past it the answer is empty and the handler
  finishes in the background, its reply cached for WeChat's retry.
- No stack trace ever reaches the caller: a crashing handler is logged with context and answered empty.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from typing import Any

import xmltodict
from aiohttp import web
from wechatpy import parse_message
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply

from bot.router import Context, Incoming
from scoring.clock import utcnow

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_SKEW_S = 300
DEDUPE_TTL_S = 600
PENDING = b"\x00pending"
EMPTY = "success"
DEPS_KEY: web.AppKey[Any] = web.AppKey("deps")
_FORBIDDEN_XML = re.compile(rb"<!DOCTYPE|<!ENTITY|<!\[INCLUDE|<!\[IGNORE", re.I)


class BadRequest(Exception):
    pass


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signature_ok(token: str, query: Any, *extra: str, field: str = "signature") -> bool:
    given = query.get(field, "")
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    if not (given and timestamp and nonce) or len(given) != 40:
        return False
    return hmac.compare_digest(given.encode(), sha1_signature(token, timestamp, nonce, *extra).encode())


def parse_xml(body: bytes) -> dict[str, Any]:
    """xmltodict with no DTDs at all: any DOCTYPE or entity declaration is refused before parsing."""
    if _FORBIDDEN_XML.search(body):
        raise BadRequest("DOCTYPE or entity")
    try:
        doc = xmltodict.parse(body, disable_entities=True)
    except Exception as err:  # expat errors, encoding errors
        raise BadRequest(f"malformed XML: {err}") from None
    xml = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(xml, dict):
        raise BadRequest("no <xml> root")
    return xml


def escape_cdata(text: str) -> str:
    """wechatpy wraps text in CDATA without escaping; a `]]>` in user text would end it early."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def incoming_of(msg: Any, safe: bool) -> Incoming:
    kind = getattr(msg, "type", "unknown")
    inc = Incoming(openid=msg.source, kind="other", safe=safe, received_at=utcnow(), raw=msg)
    if kind == "text":
        inc.kind, inc.text = "text", msg.content or ""
    elif kind == "event":
        inc.kind = "event"
        event = (getattr(msg, "event", "") or "").lower()
        if event == "subscribe_scan":
            inc.event, inc.scene = "subscribe", msg.scene_id or ""
        elif event == "scan":
            inc.event, inc.scene = "scan", msg.scene_id or ""
        elif event in ("scancode_waitmsg", "scancode_push"):
            inc.event = event
            info = getattr(msg, "scan_code_info", None) or {}
            inc.scene = (info.get("ScanResult") if isinstance(info, dict) else "") or ""
        else:
            inc.event, inc.scene = event, getattr(msg, "key", "") or ""
    return inc


def dedupe_key(msg: Any, raw: dict[str, Any]) -> str:
    if getattr(msg, "type", "") == "event" or raw.get("MsgType") == "event":
        parts = [raw.get("FromUserName", ""), raw.get("CreateTime", ""), raw.get("Event", ""),
                 str(raw.get("EventKey") or "")]
        return "th:dd:ev:" + hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()
    msg_id = raw.get("MsgId") or raw.get("MsgID")
    if msg_id:
        return f"th:dd:msg:{msg_id}"
    parts = [raw.get("FromUserName", ""), raw.get("CreateTime", ""), raw.get("MsgType", "")]
    return "th:dd:other:" + hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()


class WebhookView:
    def __init__(self, app: web.Application):
        self.app = app

    @property
    def deps(self) -> Any:
        return self.app[DEPS_KEY]

    async def get(self, request: web.Request) -> web.StreamResponse:
        """URL verification: echo `echostr` when the signature is right (in safe mode too)."""
        if not signature_ok(self.deps.token, request.query):
            return web.Response(status=403, text="forbidden")
        return web.Response(text=request.query.get("echostr", ""))

    async def post(self, request: web.Request) -> web.StreamResponse:
        deps = self.deps
        q = request.query
        if not signature_ok(deps.token, q):
            return web.Response(status=403, text="forbidden")
        try:
            ts = int(q.get("timestamp", ""))
        except ValueError:
            return web.Response(status=403, text="forbidden")
        if abs(time.time() - ts) > MAX_SKEW_S:
            return web.Response(status=403, text="stale timestamp")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413, text="too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="too large")
        if len(body) > MAX_BODY:
            return web.Response(status=413, text="too large")

        safe = q.get("encrypt_type") == "aes"
        try:
            outer = parse_xml(body)
            if safe:
                if deps.crypto is None:
                    return web.Response(status=400, text="safe mode not configured")
                encrypted = outer.get("Encrypt")
                if not isinstance(encrypted, str) or not signature_ok(
                        deps.token, q, encrypted, field="msg_signature"):
                    return web.Response(status=403, text="forbidden")
                try:
                    plain = deps.crypto.decrypt_message(outer, q["msg_signature"], q["timestamp"], q["nonce"])
                except (InvalidSignatureException, InvalidAppIdException):
                    return web.Response(status=403, text="forbidden")
                except Exception:
                    raise BadRequest("undecryptable") from None
                raw = parse_xml(plain.encode() if isinstance(plain, str) else plain)
            else:
                raw = outer
                plain = body.decode("utf-8")
            if not await self._first_use_of_nonce(q["timestamp"], q["nonce"], body):
                return web.Response(status=403, text="replayed nonce")
            for required in ("ToUserName", "FromUserName", "MsgType"):
                if not isinstance(raw.get(required), str) or not raw.get(required):
                    raise BadRequest(f"missing {required}")
            try:
                msg = parse_message(plain)
            except Exception:
                raise BadRequest("unparseable message") from None
        except BadRequest as err:
            log.info("refused callback: %s", err)
            return web.Response(status=400, text="bad request")

        reply_xml = await self._answer(msg, raw, safe)
        if not reply_xml:
            return web.Response(text=EMPTY)
        if safe:
            reply_xml = deps.crypto.encrypt_message(reply_xml, q["nonce"], q["timestamp"])
        return web.Response(text=reply_xml, content_type="application/xml")

    async def _first_use_of_nonce(self, timestamp: str, nonce: str, body: bytes) -> bool:
        """(timestamp, nonce) may come again only with the same body: WeChat's own retry."""
        key = f"th:nonce:{timestamp}:{nonce}"
        digest = hashlib.sha256(body).hexdigest()
        redis = self.deps.redis
        if await redis.set(key, digest, nx=True, ex=2 * MAX_SKEW_S + 60):
            return True
        seen = await redis.get(key)
        return seen is not None and seen.decode() == digest

    async def _answer(self, msg: Any, raw: dict[str, Any], safe: bool) -> str:
        """Run the handler once per message; retries get the cached rendered reply."""
        deps = self.deps
        key = dedupe_key(msg, raw)
        if not await deps.redis.set(key, PENDING, nx=True, ex=DEDUPE_TTL_S):
            return await self._wait_cached(key)
        task = asyncio.ensure_future(self._run(msg, safe, key))
        deps.background.add(task)
        task.add_done_callback(deps.background.discard)
        try:
            return await asyncio.wait_for(asyncio.shield(task), deps.handler_budget_s)
        except TimeoutError:
            log.warning("handler over budget for %s; answering empty, finishing in background", key)
            return ""

    async def _run(self, msg: Any, safe: bool, key: str) -> str:
        deps = self.deps
        reply = ""
        try:
            ctx = Context(deps=deps, incoming=incoming_of(msg, safe))
            text = await deps.dispatcher.dispatch(ctx)
            if text:
                reply = TextReply(message=msg, content=escape_cdata(text)).render()
        except Exception:
            log.exception("handler crashed: openid=%s type=%s key=%s", getattr(msg, "source", "?"),
                          getattr(msg, "type", "?"), key)
            reply = ""
        try:
            await deps.redis.set(key, reply.encode() or b"", ex=DEDUPE_TTL_S)
        except Exception:
            log.exception("could not cache the reply for %s", key)
        return reply

    async def _wait_cached(self, key: str) -> str:
        deadline = time.monotonic() + self.deps.handler_budget_s
        delay = 0.01
        while True:
            value = await self.deps.redis.get(key)
            if value is None:
                return ""
            if value != PENDING:
                return bytes(value).decode()
            if time.monotonic() > deadline:
                return ""
            await asyncio.sleep(delay)  # polling Redis for the first attempt's answer, with a deadline
            delay = min(delay * 2, 0.2)
