"""Pushes (issue 4): delivering the outbox, and keeping each active station's QR code issued.

Outbox delivery
---------------
The domain adds rows with `scoring.outbox.add` (idempotent on a deterministic key); the task that added
them calls `kick(ctx, ids)` after its transaction commits (the bot enqueues its late replies alike);
`sweep_outbox` (cron, every 10 s) enqueues every pending row that is due, so a lost job or a lost Redis
delays a message and never loses it.

`deliver(...)` first makes the access token ready (a Redis read when it is; before the claim, so a worker
killed while fetching it leaves the row pending for the next one), then three steps, each its own short
transaction around the one HTTP call:

1. claim: `UPDATE notifications SET attempts = attempts + 1, next_attempt_at = now + LEASE,
   last_error = 'in flight ...' WHERE id = ? AND status = 'pending' AND next_attempt_at <= now AND it is not
   in flight`. Exactly one worker wins; a concurrent or duplicate job sees no row and does nothing.
2. send through the WeChat client (its own bounded retries with backoff; token refresh).
3. mark, fenced on the claimed `attempts`: sent (sent_at), retry (next_attempt_at = now + backoff,
   last_error = the reason), or given_up (last_error = the reason).

Semantics chosen: **at most once**. A row is never sent by two workers, never again after it was marked
sent, and never again after an attempt whose outcome is unknown: when a worker dies between claim and mark
(SIGKILL, arq's job timeout, a database that went away), the lease expires with the row still "in flight",
and the next delivery marks it given_up ("outcome unknown ... not resent") instead of sending a possible
duplicate. The price: a message whose worker died in that window (milliseconds around one HTTP call) is
given up with that reason, visible to admins, instead of being sent twice. Failures that WeChat reports
(errcodes, HTTP 5xx) or that leave no doubt are retried; a client-side timeout is retried too, as WeChat
commits a message when it answers (the one residual duplicate risk: an answer lost on the way back).

Retries: the client retries transient failures a few times within a call; after that the row is
rescheduled with exponential backoff (15 s doubling, at most 1 h) and given up after MAX_ATTEMPTS.
43004 (unfollowed), 45015/45047 (outside the customer-service window, quota) and other permanent errcodes
are given up at once with their reason.

Channels: `template` rows are sent as template messages, which reach a follower at any time. The template
id comes from settings: `wechat_templates[payload["template"]]`, else `wechat_template_notice` (the
payload's data plus the text as `content`). With no template id configured at all, the text goes as a
customer-service message, which WeChat only delivers inside the user's 48-hour window; outside it the
row is given up with the reason "no template configured; ... outside the customer-service window".
`custom` rows are customer-service text messages (the satisfaction invitation, replies to talents). A
`custom` row whose payload names a `fallback` kind (a reply that missed the callback's time budget,
scoring.outbox.reply_payload: kind `reply`) falls back, in the same attempt, to that kind's template or the
general notice when WeChat answers 45015/45047 (the 48-hour window is closed, or its quota used up).

Subscription notifications (订阅通知) come first for `template` rows: when WECHAT_SUBSCRIBE_TEMPLATES names
a subscription template for the payload's kind (or a general `notice` one, the text in `thing1`) and the
recipient accepted that template (scoring.consents, from WeChat's subscribe_msg_* events), the row goes by
`message/subscribe/bizsend`. A refusal (43101: the follower no longer accepts) is recorded as a reject and
the row falls back, in the same attempt, to the template message or customer-service text above; a
transient failure is retried as any other.

Station QR codes
----------------
`issue_station_qrs` (cron, every minute) makes sure every active station whose kiosk is open (its page
polled in the last ten minutes) or that was asked for (`talenthome qr station`; both in the sorted set
`scoring.kiosk.OPEN_KEY`) has its scene (SPEC 5, `scoring.tokens.station_scene`) for the current and the
next rotation window issued as a temporary QR code (`qrcode/create`, expiring after two windows, so a code
issued any time in the window before still covers its own window to the end); a kiosk that opens enqueues
`issue_station_qr(code)` so it need not wait for the minute. Records `{code, scene, ticket, url, content,
window, valid_from, valid_until, expires_at}` live in Redis under `th:qr:{code}:{window}` and, for the
current window, `th:qr:{code}`; `current_qr(redis, code)` reads them. Stations whose windows are issued
already are skipped (one MGET per thousand stations); the rest are issued with a concurrency cap and a time
budget, current windows first. After a run of consecutive transient failures (WeChat unreachable, rate
limited) the run stops; failures are retried the next minute and summarised in one log line per run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from arq import cron
from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import consents, kiosk, outbox
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.kiosk import current_qr as current_qr  # re-exported: the QR records' reader lives in scoring
from scoring.kiosk import load_qr as _load
from scoring.kiosk import qr_key
from scoring.models import Notification, Station
from scoring.settings import Settings
from scoring.tokens import station_scene
from worker.wechat_api import GiveUp, Outcome, Retry, Sent, WeChatClient

log = logging.getLogger(__name__)

LEASE: Final = timedelta(seconds=120)  # > the client's worst case for one call (timeouts x retries)
MAX_ATTEMPTS: Final = 10
RETRY_BASE_S: Final = 15.0
RETRY_CAP_S: Final = 3600.0
SWEEP_BATCH: Final = 1000
IN_FLIGHT: Final = "in flight"
WINDOW_CLOSED: Final = frozenset({45015, 45047})  # outside the 48-hour window; its message quota used up

QR_CONCURRENCY: Final = 8
QR_BUDGET_S: Final = 45.0  # a run stops starting new codes after this; the next minute continues
QR_BREAKER: Final = 16  # consecutive transient failures that end a run
_CHUNK: Final = 1000


class _Throttled:
    """Log a warning at most once per `every` seconds per key (an unreachable API must not flood logs)."""

    def __init__(self, every: float = 60.0):
        self.every = every
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        n = self._suppressed.pop(key, 0)
        log.warning(msg + (f" (+{n} similar in the last minute)" if n else ""), *args)


_throttled = _Throttled()


# -- composition -------------------------------------------------------------------------------------


async def startup(ctx: dict[str, Any]) -> None:
    ctx["wechat"] = WeChatClient.from_settings(ctx["settings"], ctx["redis"])


async def shutdown(ctx: dict[str, Any]) -> None:
    client = ctx.pop("wechat", None)
    if client is not None:
        await client.close()


async def kick(ctx: Mapping[str, Any] | ArqRedis, notification_ids: Iterable[int]) -> None:
    """Enqueue delivery of freshly committed outbox rows (call after the commit). `ctx` is an arq ctx
    or an ArqRedis pool. Duplicates are harmless: the claim lets one delivery through."""
    redis: ArqRedis = ctx["redis"] if isinstance(ctx, Mapping) else ctx
    for nid in notification_ids:
        await redis.enqueue_job(outbox.DELIVER, nid, _job_id=outbox.delivery_job_id(nid))


async def deliver_notification(ctx: dict[str, Any], notification_id: int) -> str:
    return await deliver(ctx["sessions"], ctx["wechat"], ctx["settings"], notification_id)


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    return await enqueue_due(ctx["redis"], ctx["sessions"])


async def issue_station_qrs(ctx: dict[str, Any]) -> dict[str, int]:
    try:
        return await issue_qrs(ctx["redis"], ctx["sessions"], ctx["wechat"], ctx["settings"])
    except Exception as err:  # fail soft: never take the worker down, try again next minute
        _throttled.warning("qr", "station QR codes: run failed (%s: %s); retrying next minute",
                           type(err).__name__, err)
        return {"issued": 0, "skipped": 0, "failed": 0}


async def issue_station_qr(ctx: dict[str, Any], code: str) -> dict[str, int]:
    """Issue one station's QR codes now (a kiosk just opened; enqueued by the kiosk page, job id
    `qr:{code}:{window}`), instead of waiting for the next minute's cron."""
    return await issue_qrs(ctx["redis"], ctx["sessions"], ctx["wechat"], ctx["settings"], codes=(code,))


FUNCTIONS: Final = [deliver_notification, issue_station_qr]
CRON: Final = [
    cron(sweep_outbox, name="push:sweep_outbox", second={0, 10, 20, 30, 40, 50}, run_at_startup=True,
         timeout=30),
    cron(issue_station_qrs, name="push:station_qrs", second={15}, run_at_startup=True, timeout=58),
]


# -- the outbox --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    id: int
    attempts: int
    openid: str
    channel: str
    payload: str


def _retry_delay(attempts: int, after: float) -> float:
    return max(after, min(RETRY_CAP_S, RETRY_BASE_S * 2.0 ** max(0, attempts - 1)))


async def claim(sessions: async_sessionmaker[AsyncSession], notification_id: int, now: datetime) -> Claim | str:
    """Take the row for one attempt, or say why not: "skipped" (sent, given up, not due, or another worker
    has it) or "given_up" (the previous attempt was interrupted with its outcome unknown)."""
    n = Notification
    due = (n.id == notification_id, n.status == "pending", n.next_attempt_at <= now)
    async with transaction(sessions) as s:
        row = (await s.execute(
            update(n).where(*due, n.last_error.is_(None) | ~n.last_error.startswith(IN_FLIGHT))
            .values(attempts=n.attempts + 1, next_attempt_at=now + LEASE,
                    last_error=f"{IN_FLIGHT} since {now.isoformat(timespec='seconds')}Z")
            .returning(n.attempts, n.openid, n.channel, n.payload)
        )).first()
        if row is not None:
            return Claim(notification_id, row.attempts, row.openid, row.channel, row.payload)
        interrupted = await s.execute(
            update(n).where(*due, n.last_error.startswith(IN_FLIGHT))
            .values(status="given_up",
                    last_error="outcome unknown, not resent (at most once): a worker stopped while " + n.last_error)
            .returning(n.id)
        )
        if interrupted.first() is not None:
            log.warning("notification %s: previous attempt interrupted, outcome unknown; given up", notification_id)
            return "given_up"
    return "skipped"


def _template_of(settings: Settings, payload: dict[str, Any], text: str, *, with_text: bool = False
                 ) -> tuple[str | None, dict[str, Any]]:
    """The template id and data for a payload: its kind's template (WECHAT_TEMPLATES), else the general
    notice (WECHAT_TEMPLATE_NOTICE, the text as `content`). `with_text`: the text as `content` in either."""
    name = payload.get("template")
    raw_data = payload.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    template_id = settings.wechat_templates.get(name) if isinstance(name, str) else None
    if template_id:
        return template_id, {**data, "content": text} if with_text and text else data
    if settings.wechat_template_notice:
        return settings.wechat_template_notice, {**data, "content": text}
    return None, data


async def send(client: WeChatClient, settings: Settings, c: Claim) -> Outcome:
    """One attempt at sending a claimed row through the right channel."""
    try:
        payload = json.loads(c.payload)
    except ValueError:
        return GiveUp("payload is not JSON")
    if not isinstance(payload, dict):
        return GiveUp("payload is not a JSON object")
    text = str(payload.get("text") or "")
    if not c.openid:
        return GiveUp("no openid")
    if c.channel == "custom":
        if not text:
            return GiveUp("empty text")
        outcome = await client.send_text(c.openid, text)
        fallback = payload.get("fallback")
        if not (isinstance(outcome, GiveUp) and outcome.errcode in WINDOW_CLOSED and isinstance(fallback, str)):
            return outcome
        # The 48-hour window is closed (or its quota used up): a row with a fallback kind (a late reply)
        # goes as that kind's template notice instead, as the other pushes do.
        template_id, data = _template_of(settings, {**payload, "template": fallback}, text, with_text=True)
        if not template_id:
            return GiveUp(f"{outcome.reason}; no template configured for {fallback!r} "
                          "(WECHAT_TEMPLATES or WECHAT_TEMPLATE_NOTICE)", outcome.errcode)
        url = payload.get("url")
        return await client.send_template(c.openid, template_id, data, url=url if isinstance(url, str) else None)
    if c.channel != "template":
        return GiveUp(f"unknown channel {c.channel!r}")
    name = payload.get("template")
    template_id, data = _template_of(settings, payload, text)
    if template_id:
        url = payload.get("url")
        return await client.send_template(c.openid, template_id, data, url=url if isinstance(url, str) else None)
    if not text:
        return GiveUp("no template configured and no text to send")
    outcome = await client.send_text(c.openid, text)
    if isinstance(outcome, GiveUp):
        return GiveUp(f"no template configured for {name!r}, sent as customer-service text: {outcome.reason}",
                      outcome.errcode)
    return outcome


async def record(sessions: async_sessionmaker[AsyncSession], c: Claim, outcome: Outcome, now: datetime) -> str:
    """Mark the claimed attempt's outcome; fenced on `attempts`, so only the claimer writes it."""
    n = Notification
    values: dict[str, Any]
    if isinstance(outcome, Sent):
        status, values = "sent", {"status": "sent", "sent_at": now, "last_error": None}
    elif isinstance(outcome, GiveUp):
        status, values = "given_up", {"status": "given_up", "last_error": outcome.reason[:2000]}
    elif c.attempts >= MAX_ATTEMPTS:
        status, values = "given_up", {"status": "given_up",
                                      "last_error": f"gave up after {c.attempts} attempts: {outcome.reason}"[:2000]}
    else:
        delay = _retry_delay(c.attempts, outcome.after)
        status, values = "retry", {"next_attempt_at": now + timedelta(seconds=delay),
                                   "last_error": outcome.reason[:2000]}
    done = None
    for pause in (0.2, 1.0, 3.0, None):  # the message may be out: try hard to write that down
        try:
            async with transaction(sessions) as s:
                done = (await s.execute(
                    update(n).where(n.id == c.id, n.attempts == c.attempts, n.status != "sent")
                    .values(**values).returning(n.id)
                )).first()
            break
        except Exception:
            if pause is None:
                raise
            log.exception("notification %s: recording %s failed; trying again", c.id, status)
            await asyncio.sleep(pause)
    if done is None:
        log.warning("notification %s: attempt %s outcome %s not recorded (row changed meanwhile)",
                    c.id, c.attempts, status)
    if status == "retry":
        _throttled.warning("deliver", "notification %s: attempt %s failed (%s); will retry",
                           c.id, c.attempts, values["last_error"])
    elif status == "given_up":
        log.info("notification %s given up: %s", c.id, values["last_error"])
    return status


async def deliver(sessions: async_sessionmaker[AsyncSession], client: WeChatClient, settings: Settings,
                  notification_id: int, *, now: datetime | None = None) -> str:
    """Deliver one outbox row: "sent", "retry" (rescheduled), "given_up", or "skipped" (nothing to do).
    `now` (naive UTC) is for tests; by default the clock.

    The access token is made ready before the claim: a worker that dies while getting it (WeChat slow,
    the worker killed) leaves the row pending, not "in flight", so the next worker sends it."""
    await client.prepare()
    c = await claim(sessions, notification_id, now or utcnow())
    if isinstance(c, str):
        return c
    outcome = await send_subscribed(sessions, client, settings, c, now or utcnow())
    if outcome is None:
        outcome = await send(client, settings, c)
    return await record(sessions, c, outcome, now or utcnow())


SUBSCRIBE_REFUSED: Final = 43101  # the follower does not (or no longer) accept this subscription template
NOTICE_FIELD: Final = "thing1"  # the general subscription template's text field ("thing": 20 characters)


def subscription(settings: Settings, c: Claim) -> tuple[str, dict[str, Any], str | None] | None:
    """The subscription template, data and page for a `template` row, or None when none is configured."""
    if c.channel != "template" or not settings.wechat_subscribe_templates:
        return None
    try:
        payload = json.loads(c.payload)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    name = payload.get("template")
    raw_data = payload.get("data")
    url = payload.get("url") if isinstance(payload.get("url"), str) else None
    named = settings.wechat_subscribe_templates.get(name) if isinstance(name, str) else None
    if named:
        return named, raw_data if isinstance(raw_data, dict) else {}, url
    general = settings.wechat_subscribe_templates.get("notice")
    text = str(payload.get("text") or "")
    if general and text:
        return general, {NOTICE_FIELD: text[:20]}, url
    return None


async def send_subscribed(sessions: async_sessionmaker[AsyncSession], client: WeChatClient, settings: Settings,
                          c: Claim, now: datetime) -> Outcome | None:
    """Send the row as a subscription notification when its recipient accepted the template; None: not this
    way (nothing configured, no consent, or the follower refused it just now: recorded, and the caller falls
    back to the other channels)."""
    found = subscription(settings, c)
    if found is None:
        return None
    template_id, data, page = found
    async with sessions() as s:
        if template_id not in await consents.accepted(s, c.openid, [template_id]):
            return None
    outcome = await client.send_subscribe(c.openid, template_id, data, page=page)
    if isinstance(outcome, GiveUp):
        if outcome.errcode == SUBSCRIBE_REFUSED:
            async with transaction(sessions) as s:
                await consents.record(s, c.openid, [(template_id, consents.Consent.REJECT)], now)
        log.info("notification %s: subscription notification not sent (%s); falling back", c.id, outcome.reason)
        return None
    return outcome


async def due(sessions: async_sessionmaker[AsyncSession], now: datetime, limit: int = SWEEP_BATCH
              ) -> list[tuple[int, int]]:
    """(id, attempts) of pending rows that are due, oldest first."""
    n = Notification
    async with sessions() as s:
        rows = await s.execute(
            select(n.id, n.attempts).where(n.status == "pending", n.next_attempt_at <= now)
            .order_by(n.next_attempt_at).limit(limit))
        return [(r.id, r.attempts) for r in rows]


async def enqueue_due(redis: ArqRedis, sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None
                      ) -> int:
    """Enqueue a delivery for every due row. The job id carries the attempt count: one job per attempt,
    however many sweeps see the row, while a new attempt is not blocked by an old job's kept result."""
    count = 0
    for nid, attempts in await due(sessions, now or utcnow()):
        if await redis.enqueue_job("deliver_notification", nid, _job_id=f"notify:{nid}:{attempts}"):
            count += 1
    return count


# -- station QR codes --------------------------------------------------------------------------------


async def _active_codes(sessions: async_sessionmaker[AsyncSession], among: Collection[str]) -> list[str]:
    if not among:
        return []
    async with sessions() as s:
        return list((await s.scalars(select(Station.code).where(Station.status == "active",
                                                                Station.code.in_(sorted(among)))
                                     .order_by(Station.code))).all())


async def issue_qrs(redis: Redis, sessions: async_sessionmaker[AsyncSession], client: WeChatClient,
                    settings: Settings, *, now: float | None = None, concurrency: int = QR_CONCURRENCY,
                    budget_s: float = QR_BUDGET_S, codes: Collection[str] | None = None) -> dict[str, int]:
    """One run of the QR cron: {"issued", "skipped", "failed"} (pairs of station and window). Only for
    active stations among `codes`, by default those whose kiosk is open or that were asked for
    (scoring.kiosk.open_codes): tickets on demand, not for every station every window."""
    now = time.time() if now is None else now
    if codes is None:
        codes = await kiosk.open_codes(redis, now)
    rotation = settings.station_code_rotation_s
    current = int(now) // rotation
    windows = (current, current + 1)
    todo: list[tuple[int, str]] = []
    skipped = 0
    codes = await _active_codes(sessions, codes)
    for i in range(0, len(codes), _CHUNK):
        chunk = codes[i:i + _CHUNK]
        keys = [qr_key(code, w) for code in chunk for w in windows] + [qr_key(code) for code in chunk]
        values = await redis.mget(keys)
        promote = redis.pipeline(transaction=False)
        for j, code in enumerate(chunk):
            cur_raw, next_raw, main_raw = values[2 * j], values[2 * j + 1], values[2 * len(chunk) + j]
            for w, raw in ((current, cur_raw), (current + 1, next_raw)):
                if raw is None:
                    todo.append((w, code))
                else:
                    skipped += 1
            main = _load(main_raw)
            cur = _load(cur_raw)
            if cur is not None and (main is None or main.get("window") != current):
                promote.set(qr_key(code), json.dumps(cur), ex=max(1, int(cur["expires_at"] - time.time())))
        await promote.execute()
    todo.sort()  # current windows first
    issued = failed = streak = 0
    first_error: str | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    pending = iter(todo)

    async def one(window: int, code: str) -> None:
        nonlocal issued, failed, streak, first_error
        try:
            scene = station_scene(settings.scene_key, code, window * rotation, rotation)
        except ValueError as err:
            failed += 1
            first_error = first_error or str(err)
            return
        outcome = await client.create_qr(scene, 2 * rotation, retries=0)
        if not isinstance(outcome, Sent):
            failed += 1
            first_error = first_error or f"{code}: {outcome.reason}"
            if isinstance(outcome, Retry):
                streak += 1
                if streak >= QR_BREAKER:
                    stop.set()
            return
        streak = 0
        at = time.time()
        rec = {"code": code, "scene": scene, **outcome.data, "window": window,
               "valid_from": window * rotation, "valid_until": (window + 1) * rotation,
               "expires_at": int(at) + int(outcome.data["expire_seconds"])}
        ttl = max(1, rec["expires_at"] - int(at))
        pipe = redis.pipeline(transaction=False)
        pipe.set(qr_key(code, window), json.dumps(rec), ex=ttl)
        if window == current:
            pipe.set(qr_key(code), json.dumps(rec), ex=ttl)
        await pipe.execute()
        issued += 1

    async def lane() -> None:
        for window, code in pending:
            if stop.is_set() or loop.time() > deadline:
                return
            await one(window, code)

    await asyncio.gather(*(lane() for _ in range(max(1, concurrency))))
    result = {"issued": issued, "skipped": skipped, "failed": failed}
    if failed or stop.is_set() or issued + failed < len(todo):
        left = len(todo) - issued - failed
        _throttled.warning("qr", "station QR codes: %d issued, %d failed, %d left for the next minute%s",
                           issued, failed, left, f" (first error: {first_error})" if first_error else "")
    elif issued:
        log.info("station QR codes: %d issued, %d already issued", issued, skipped)
    return result
