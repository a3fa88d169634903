"""The WeChat callback, top to bottom:

    verify signature -> (safe mode) decrypt -> parse (wechatpy) -> de-duplicate -> route -> reply

Rules (SPEC 5-6, issue 3):
- Signatures are compared in constant time before anything is parsed; a bad one is 403.
- Plain mode's signature does not cover the body, so a timestamp more than 300 s from now is 403, and a
  reused (timestamp, nonce) whose body differs from the first one is 403 (the same body again is a retry).
- A body over 1 MiB is 413; malformed XML, or any DOCTYPE or entity, is 400 before a parser sees it.
- With an AES key configured (safe mode) a callback without `encrypt_type=aes` is 403: its signature covers
  no body, so anyone who knows the token could speak for any openid. WECHAT_COMPATIBLE_MODE=1 (WeChat's
  compatible mode) accepts plain callbacks too. A plain body that is not UTF-8 is 400.
- De-duplication in Redis: messages by MsgId, events by FromUserName + CreateTime + Event + EventKey. A retry
  gets the first answer again (the rendered reply is cached); while the first attempt still runs, a retry
  waits for it instead of running twice.
- The answer has a budget (about 4 s, inside WeChat's 5 s) counted from the request's arrival, over
  everything after it: the Redis claim, a retry's wait for the first answer, the handler (a database lock,
  a row lock, the group commit), rendering. One timer on the request; the work itself runs on a task of its
  own that the timer never cancels. Past the budget the answer is `success` (which ends WeChat's retries)
  and the work finishes in the background; its reply, if any, is then queued in the outbox as a
  customer-service message (scoring.outbox.reply_key: one row per inbound message, so a retry, a second bot
  process or a restart cannot send it twice) and the worker delivers it, as a template notice when the
  48-hour window is closed. Retries of that message are answered `success`, never the reply again. A handler
  whose transaction never committed (the bot killed) did nothing, and nothing is sent.
- No stack trace ever reaches the caller: a crashing handler is logged with context and answered empty.
  A callback that cannot reach the database or Redis (a restart, a lost connection) within the budget is
  answered `texts.BUSY` ("try again later") and logged in one line, without a traceback (found by
  bench/soak.py: every callback during a PostgreSQL or Redis restart logged a traceback and got no answer,
  or a 500). Past the budget the answer was `success` already: the outage is logged in one line and nothing
  is queued (like a crash past the budget). A retry whose wait for the first answer loses Redis is answered
  empty (the first attempt may have recorded the fact: no "try again" there).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from typing import Any

import redis.exceptions as redis_errors
from aiohttp import web
from sqlalchemy import exc as sa_errors
from wechatpy.events import EVENT_TYPES
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import MESSAGE_TYPES, UnknownMessage
from wechatpy.replies import TextReply

from bot import texts, xmlsafe
from bot.router import Context, Incoming
from scoring import outbox
from scoring.clock import utcnow
from scoring.db import transaction

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
MAX_SKEW_S = 300
DEDUPE_TTL_S = 600
PENDING = b"\x00pending"
EMPTY = "success"
DEPS_KEY: web.AppKey[Any] = web.AppKey("deps")
REPLAYED, CLAIMED, DUPLICATE = 0, 1, 2
LATE_WRITE_PAUSES_S = (0.5, 2.0, 5.0)  # a late reply's outbox row: tries after the first, then logged as lost
PG_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03"})  # admin_shutdown, crash_shutdown, cannot_connect_now
# KEYS: nonce key, de-duplication key; ARGV: body digest, nonce TTL, PENDING, de-duplication TTL.
CLAIM_SCRIPT = """
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
end
if redis.call('set', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[4]) then return 1 end
return 2
"""
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
    """bot/xmlsafe.py (xmltodict's dict) with no DTDs at all: any DOCTYPE or entity declaration is refused."""
    if _FORBIDDEN_XML.search(body):
        raise BadRequest("DOCTYPE or entity")
    try:
        doc = xmlsafe.parse(body)  # what xmltodict.parse(body, disable_entities=True) gives, cheaper
    except Exception as err:  # expat errors, encoding errors
        raise BadRequest(f"malformed XML: {err}") from None
    xml = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(xml, dict):
        raise BadRequest("no <xml> root")
    check_shape(xml)
    return xml


# Fields WeChat sends as plain text: repeated (a list), with attributes or children (a dict) they are refused.
TEXT_FIELDS = ("ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "MsgID", "Event",
               "EventKey", "Ticket", "Encrypt", "Status", "MediaId", "PicUrl", "Format", "Recognition", "Title",
               "Description", "Url", "Label", "Latitude", "Longitude", "Precision", "Location_X", "Location_Y")
MAX_DEPTH = 8  # real callbacks nest 4 levels below <xml> at most (SendPicsInfo > PicList > item > PicMd5Sum)


def check_shape(xml: dict[str, Any]) -> None:
    """The shape the handlers may rely on (found by bench/fuzz.py): text fields are text, a scan's
    ScanCodeInfo holds text, and nothing nests deeper than MAX_DEPTH (a deep tree made repr() and the consent
    parser recurse past Python's limit)."""
    for name in TEXT_FIELDS:
        if not isinstance(xml.get(name, ""), str | None):
            raise BadRequest(f"{name} is not text")
    info = xml.get("ScanCodeInfo")
    if info is not None and not (isinstance(info, dict) and all(
            isinstance(info.get(k, ""), str | None) for k in ("ScanType", "ScanResult"))):
        raise BadRequest("ScanCodeInfo is not text")
    level: list[Any] = [xml]
    for _ in range(MAX_DEPTH):
        level = [c for node in level for c in (node.values() if isinstance(node, dict) else node)
                 if isinstance(c, dict | list)]
        if not level:
            return
    raise BadRequest("nested too deeply")


def message_of(raw: dict[str, Any]) -> Any:
    """wechatpy's `parse_message` for the dict `parse_xml` already made (the XML is parsed once, not twice):
    the same message and event classes, the same `qrscene_` and product-scan handling."""
    message = dict(raw)
    message_type = str(message["MsgType"]).lower()
    if message_type == "event" or message_type.startswith("device_"):
        event_type = str(message["Event"]).lower() if "Event" in message else None
        if event_type is None and message_type.startswith("device_"):
            event_type = message_type
        elif message_type.startswith("device_"):
            event_type = f"device_{event_type}"
        key = message.get("EventKey")
        if event_type == "subscribe" and isinstance(key, str) and key:
            if key.startswith(("scanbarcode|", "scanimage|")):
                event_type = message["Event"] = "subscribe_scan_product"
            elif key.startswith("qrscene_"):
                event_type = message["Event"] = "subscribe_scan"
                message["EventKey"] = key[len("qrscene_"):]
        return EVENT_TYPES.get(event_type, UnknownMessage)(message)
    return MESSAGE_TYPES.get(message_type, UnknownMessage)(message)


def unavailable(err: BaseException) -> bool:
    """The database or Redis cannot be reached right now (a restart, a refused or lost connection, a
    timeout): the talent is asked to try again later instead of getting no answer."""
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError | TimeoutError | redis_errors.ConnectionError | redis_errors.TimeoutError
                      | redis_errors.BusyLoadingError | sa_errors.OperationalError | sa_errors.InterfaceError
                      | sa_errors.TimeoutError):
            return True
        if isinstance(e, sa_errors.DBAPIError) and e.connection_invalidated:
            return True
        code = str(getattr(e, "sqlstate", None) or getattr(e, "pgcode", None) or "")
        if code.startswith("08") or code in PG_UNAVAILABLE:  # connection exceptions; shutting down, starting
            return True
        todo.extend(x for x in (e.__cause__, e.__context__, getattr(e, "orig", None)) if isinstance(x, BaseException))
    return False


class Outage(Exception):
    """The handler failed because the database or Redis could not be reached (`unavailable`)."""


def escape_cdata(text: str) -> str:
    """wechatpy wraps text in CDATA without escaping; a `]]>` in user text would end it early."""
    return text.replace("]]>", "]]]]><![CDATA[>")


def incoming_of(msg: Any, safe: bool) -> Incoming:
    """What routing needs. Every event is an event, whether wechatpy knows its type or not (an unknown one
    is acknowledged silently, never answered as an "unsupported message"); every follow is `subscribe`,
    with the scene of a `qrscene_` key and none for a product or barcode scan. Anything else a person sent
    (voice, image, video, location, link, file, a type WeChat adds later) is `other`."""
    kind = getattr(msg, "type", "unknown")
    raw = getattr(msg, "_data", None) or {}
    inc = Incoming(openid=msg.source, kind="other", safe=safe, received_at=utcnow(), raw=msg)
    if kind == "text":
        inc.kind, inc.text = "text", msg.content or ""
    elif kind != "event" and str(raw.get("MsgType", "")).lower() == "event":
        inc.kind, inc.event = "event", str(raw.get("Event") or "").lower()
    elif str(raw.get("MsgType", "")).lower().startswith("device_"):
        inc.kind, inc.event = "event", str(raw.get("MsgType")).lower()  # hardware devices: not ours
    elif kind == "event":
        inc.kind = "event"
        event = (getattr(msg, "event", "") or "").lower()
        if event in ("subscribe", "subscribe_scan_product"):  # a follow (from a product scan: a plain one)
            inc.event = "subscribe"
        elif event == "subscribe_scan":
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
        # A menu scan's EventKey is the menu key: the scanned text tells two scans in one second apart.
        scanned = raw.get("ScanCodeInfo")
        parts = [raw.get("FromUserName", ""), raw.get("CreateTime", ""), raw.get("Event", ""),
                 str(raw.get("EventKey") or ""),
                 str(scanned.get("ScanResult") or "") if isinstance(scanned, dict) else ""]
        return "th:dd:ev:" + hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()
    msg_id = raw.get("MsgId") or raw.get("MsgID")
    if msg_id:
        return f"th:dd:msg:{msg_id}"
    parts = [raw.get("FromUserName", ""), raw.get("CreateTime", ""), raw.get("MsgType", "")]
    return "th:dd:other:" + hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()


def _log_cache_failure(future: asyncio.Future[Any], key: str, background: set[Any]) -> None:
    background.discard(future)
    if not future.cancelled() and future.exception() is not None:
        log.error("could not cache the reply for %s: %s", key, future.exception())


class _Callback:
    """What the answer and the work of one callback share: whether the answer has gone out without the reply
    (set once, by the answer, when the budget is over)."""

    __slots__ = ("late",)

    def __init__(self) -> None:
        self.late = False


def _settle(work: asyncio.Future[Any], key: str, callback: _Callback, background: set[Any]) -> None:
    background.discard(work)
    if callback.late and not work.cancelled() and work.exception() is not None:  # nobody awaits it any more
        log.error("callback %s failed after its answer: %r", key, work.exception())


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
        deadline = asyncio.get_running_loop().time() + deps.handler_budget_s  # from arrival, over everything
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
        if not safe and deps.crypto is not None and not deps.settings.wechat_compatible_mode:
            log.info("refused callback: plain in safe mode (set WECHAT_COMPATIBLE_MODE=1 to accept both)")
            return web.Response(status=403, text="encrypted callbacks only")
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
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError:
                    raise BadRequest("not UTF-8") from None
            for required in ("ToUserName", "FromUserName", "MsgType"):
                if not isinstance(raw.get(required), str) or not raw.get(required):
                    raise BadRequest(f"missing {required}")
            try:
                msg = message_of(raw)
            except Exception:
                raise BadRequest("unparseable message") from None
        except BadRequest as err:
            log.info("refused callback: %s", err)
            return web.Response(status=400, text="bad request")

        key = dedupe_key(msg, raw)
        callback = _Callback()
        work = asyncio.ensure_future(self._work(q["timestamp"], q["nonce"], body, key, msg, safe, callback))
        deps.background.add(work)
        work.add_done_callback(lambda w: _settle(w, key, callback, deps.background))
        try:
            async with asyncio.timeout_at(deadline):  # one timer; the work is shielded from it
                status, reply_xml = await asyncio.shield(work)
        except TimeoutError:
            if not work.done():
                callback.late = True  # from here on the work sends its reply through the outbox
                log.warning("callback over budget for %s; answered %r, the reply goes through the outbox",
                            key, EMPTY)
                return web.Response(text=EMPTY)
            status, reply_xml = work.result()  # finished in the same instant: answer it as usual
        if status != 200:
            return web.Response(status=status, text=reply_xml)
        if not reply_xml:
            return web.Response(text=EMPTY)
        if safe:
            reply_xml = deps.crypto.encrypt_message(reply_xml, q["nonce"], q["timestamp"])
        return web.Response(text=reply_xml, content_type="application/xml")

    async def _work(self, timestamp: str, nonce: str, body: bytes, key: str, msg: Any, safe: bool,
                    callback: _Callback) -> tuple[int, str]:
        """Claim, then run the handler once per message (a retry gets the cached rendered reply): (HTTP
        status, rendered reply or ""). Past the budget (`callback.late`) the reply goes to the outbox."""
        try:
            claim = await self._claim(timestamp, nonce, body, key)
        except Exception as err:
            if not unavailable(err):
                raise
            # Nothing was recorded: the talent is asked to send it again once Redis is back (within the
            # budget; past it the answer was `success` already and nothing is sent).
            if callback.late:
                log.warning("could not reach Redis to de-duplicate %s: %s; past the budget, nothing sent", key,
                            type(err).__name__)
                return 200, ""
            log.warning("could not reach Redis to de-duplicate %s: %s; answered busy", key, type(err).__name__)
            return 200, TextReply(message=msg, content=texts.BUSY).render()
        if claim == REPLAYED:
            return 403, "replayed nonce"
        if claim != CLAIMED:
            return 200, await self._wait_cached(key)
        try:
            text = await self._run(msg, safe, key)
        except Outage as err:
            outage: Outage | None = err
            text = ""
        else:
            outage = None
        # No await between this test and the return below: the answer sees either this task done (and
        # answers its reply) or `late` set before the test (and the reply goes to the outbox).
        late = callback.late
        if outage is not None:
            # Within the budget the talent is asked to try again later; past it the answer was `success`
            # already and nothing is queued (the handler did not finish: there is no reply to send).
            log.warning("handler could not reach the database or Redis: %s; %s", outage,
                        "past the budget, nothing sent" if late else "answered busy")
            if not late:
                text = texts.BUSY
        reply = "" if late or not text else TextReply(message=msg, content=escape_cdata(text)).render()
        self._cache(key, reply)
        if late and text:
            await self._reply_late(msg, key, text)
        return 200, reply

    async def _claim(self, timestamp: str, nonce: str, body: bytes, key: str) -> int:
        """The replay guard and the de-duplication claim in one Redis call (CLAIM_SCRIPT): (timestamp,
        nonce) may come again only with the same body (WeChat's own retry); the first delivery of a
        message claims its de-duplication key."""
        digest = hashlib.sha256(body).hexdigest()
        return int(await self.deps.redis.eval(CLAIM_SCRIPT, 2, f"th:nonce:{timestamp}:{nonce}", key, digest,
                                              2 * MAX_SKEW_S + 60, PENDING, DEDUPE_TTL_S))

    async def _run(self, msg: Any, safe: bool, key: str) -> str:
        """The handler's reply text ("" for none); a crash is logged and answered with nothing. A handler
        that could not reach the database or Redis raises `Outage` (its caller answers busy or nothing)."""
        try:
            ctx = Context(deps=self.deps, incoming=incoming_of(msg, safe))
            return await self.deps.dispatcher.dispatch(ctx) or ""
        except Exception as err:
            if unavailable(err):
                raise Outage(f"openid={getattr(msg, 'source', '?')} type={getattr(msg, 'type', '?')} key={key}: "
                             f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}") from None
            log.exception("handler crashed: openid=%s type=%s key=%s", getattr(msg, "source", "?"),
                          getattr(msg, "type", "?"), key)
            return ""

    def _cache(self, key: str, reply: str) -> None:
        """Cache the answer for WeChat's retries without holding the answer back on Redis: a retry that comes
        before the write lands finds PENDING and waits for it (_wait_cached). A late reply caches "": its
        retries are answered `success`, the reply itself goes once, through the outbox."""
        deps = self.deps
        cached = asyncio.ensure_future(deps.redis.set(key, reply.encode() or b"", ex=DEDUPE_TTL_S))
        deps.background.add(cached)
        cached.add_done_callback(lambda f: _log_cache_failure(f, key, deps.background))

    async def _reply_late(self, msg: Any, key: str, text: str) -> None:
        """Queue the reply that missed the budget as a customer-service message (one outbox row per inbound
        message), then ask the worker to deliver it (the outbox sweeper would within seconds anyway)."""
        deps = self.deps
        openid = getattr(msg, "source", "") or ""
        for pause in (*LATE_WRITE_PAUSES_S, None):
            try:
                async with transaction(deps.sessions) as session:
                    nid = await outbox.queue(session, outbox.reply_key(key), openid, outbox.reply_payload(text),
                                             channel="custom")
                break
            except Exception:
                if pause is None:
                    log.exception("late reply for %s (openid=%s) could not be queued; it is lost", key, openid)
                    return
                log.warning("late reply for %s: queueing failed; trying again in %.1f s", key, pause,
                            exc_info=True)
                await asyncio.sleep(pause)  # a database that is busy or restarting: try again shortly
        if nid is None:
            log.info("late reply for %s was queued already (a retry or another process)", key)
            return
        log.info("late reply for %s queued as notification %s", key, nid)
        await deps.enqueue(outbox.DELIVER, nid, job_id=outbox.delivery_job_id(nid))

    async def _wait_cached(self, key: str) -> str:
        """A retry's answer: the first attempt's cached reply, waited for while it runs (the answer's own
        budget bounds the wait, and this one too, for a first attempt that never ends)."""
        deadline = time.monotonic() + self.deps.handler_budget_s
        delay = 0.01
        while True:
            try:
                value = await self.deps.redis.get(key)
            except Exception as err:
                if not unavailable(err):
                    raise
                # The first attempt may have recorded the fact: no "try again" here, only no answer yet
                # (WeChat retries; a talent who sends it again meets the first attempt's record).
                log.warning("retry of %s: Redis unavailable while waiting for the first answer (%s); answered "
                            "empty", key, type(err).__name__)
                return ""
            if value is None:
                return ""
            if value != PENDING:
                return bytes(value).decode()
            if time.monotonic() > deadline:
                return ""
            await asyncio.sleep(delay)  # polling Redis for the first attempt's answer, with a deadline
            delay = min(delay * 2, 0.2)
