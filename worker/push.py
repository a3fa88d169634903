"""Pushes (issue 4): delivering the outbox, and keeping each active station's QR code issued.

Outbox delivery
---------------
The domain adds rows with `scoring.outbox.add` (idempotent on a deterministic key); the task that added
them calls `kick(ctx, ids)` after its transaction commits (the bot enqueues its late replies alike);
`sweep_outbox` (cron, every 10 s) enqueues every pending row that is due, so a lost job or a lost Redis
delays a message and never loses it. Both enqueue batches of up to DELIVER_BATCH rows per job
(`deliver_notifications`; a single row: `deliver_notification`), so a month start that tells most stations
of a rank change costs a few dozen jobs, not one per message.

`deliver_many(...)` (a batch; `deliver(...)` is it for one row) first makes the access token ready (a Redis
read when it is; before the claim, so a worker killed while fetching it leaves the rows pending for the
next one), then three steps: two short transactions around the batch's HTTP calls:

1. claim, one transaction: `UPDATE notifications SET attempts = attempts + 1, next_attempt_at = now + LEASE,
   last_error = 'in flight ...' WHERE id IN (the batch) AND status = 'pending' AND next_attempt_at <= now
   AND it is not in flight RETURNING ...` (then the batch's rows left in flight by a dead worker are given
   up, below). Exactly one worker wins each row; a concurrent or duplicate job sees no row and does
   nothing. Rows `held` by a restore (status `held`) are never claimed.
2. send the claimed rows through the WeChat client, all at once (its own bounded retries with backoff;
   token refresh): the batch takes as long as its slowest message, which the LEASE covers.
3. record, one transaction, each row fenced on its claimed `attempts` (one UPDATE per distinct outcome):
   sent (sent_at), retry (next_attempt_at = now + backoff, last_error = the reason), or given_up
   (last_error = the reason).

Semantics chosen: **at most once**. A row is never sent by two workers, never again after it was marked
sent, and never again after an attempt whose outcome is unknown: when a worker dies between claim and mark
(SIGKILL, arq's job timeout, a database that went away), the lease expires with the rows still "in flight",
and the next delivery marks them given_up ("outcome unknown ... not resent") instead of sending a possible
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
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from arq import cron
from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy import select, tuple_, update
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
DELIVER_BATCH: Final = 25  # rows per delivery job: one claim, their sends all at once, one record
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
    """Enqueue delivery of freshly committed outbox rows (call after the commit), DELIVER_BATCH rows per
    job. `ctx` is an arq ctx or an ArqRedis pool. Duplicates are harmless: the claim lets one delivery
    through."""
    redis: ArqRedis = ctx["redis"] if isinstance(ctx, Mapping) else ctx
    ids = list(dict.fromkeys(notification_ids))
    for i in range(0, len(ids), DELIVER_BATCH):
        chunk = ids[i:i + DELIVER_BATCH]
        if len(chunk) == 1:
            await redis.enqueue_job(outbox.DELIVER, chunk[0], _job_id=outbox.delivery_job_id(chunk[0]))
        else:
            await redis.enqueue_job("deliver_notifications", chunk, _job_id=_batch_job_id(chunk))


def _batch_job_id(parts: Iterable[object]) -> str:
    """`notify:b:{digest}`: the same rows (and attempts) give the same job id, so arq queues them once."""
    return "notify:b:" + hashlib.blake2b(repr(list(parts)).encode(), digest_size=10).hexdigest()


async def deliver_notification(ctx: dict[str, Any], notification_id: int) -> str:
    """One row's job (`deliver_notifications` for a batch); "unavailable" when the database or Redis could
    not be reached (`_outage`)."""
    try:
        return await deliver(ctx["sessions"], ctx["wechat"], ctx["settings"], notification_id)
    except Exception as err:
        _outage(err, f"notification {notification_id}")
        return "unavailable"


async def deliver_notifications(ctx: dict[str, Any], notification_ids: list[int]) -> dict[str, int]:
    """A batch's job: {status: how many rows}; {"unavailable": n} when the database or Redis could not be
    reached (`_outage`)."""
    try:
        statuses = await deliver_many(ctx["sessions"], ctx["wechat"], ctx["settings"], notification_ids)
    except Exception as err:
        _outage(err, f"{len(notification_ids)} notifications ({notification_ids[0] if notification_ids else '-'}..)")
        return {"unavailable": len(notification_ids)}
    return dict(Counter(statuses.values()))


def _outage(err: Exception, what: str) -> None:
    """A delivery while the database or Redis is unavailable (a restart): one throttled line instead of arq's
    traceback per job (found by bench/soak.py: a PostgreSQL restart logged a traceback per pending
    notification). Rows not yet claimed are still due and the outbox sweep enqueues them again; rows claimed
    before the failure stay in flight and are given up after the lease (at most once, as above). Any other
    error is raised again."""
    if not _unavailable(err):
        raise err
    _throttled.warning("unavailable", "%s: database or Redis unavailable (%s); the outbox sweep tries again", what,
                       type(err).__name__)


async def sweep_outbox(ctx: dict[str, Any]) -> int:
    try:
        return await enqueue_due(ctx["redis"], ctx["sessions"])
    except Exception as err:
        if not _unavailable(err):
            raise
        _throttled.warning("sweep", "outbox sweep: database or Redis unavailable (%s); next sweep in 10 s",
                           type(err).__name__)
        return 0


def _unavailable(err: BaseException) -> bool:
    from worker.tasks import transient  # worker.tasks imports this module

    return transient(err)


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


FUNCTIONS: Final = [deliver_notification, deliver_notifications, issue_station_qr]
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


async def claim_many(sessions: async_sessionmaker[AsyncSession], notification_ids: Collection[int],
                     now: datetime) -> tuple[list[Claim], dict[int, str]]:
    """Take the due rows among `notification_ids` for one attempt each, in one transaction: the claims, and
    for each row not claimed why not: "skipped" (sent, given up, held, not due, or another worker has it)
    or "given_up" (its previous attempt was interrupted with its outcome unknown)."""
    ids = sorted(set(notification_ids))
    if not ids:
        return [], {}
    n = Notification
    due = (n.id.in_(ids), n.status == "pending", n.next_attempt_at <= now)
    async with transaction(sessions) as s:
        rows = (await s.execute(
            update(n).where(*due, n.last_error.is_(None) | ~n.last_error.startswith(IN_FLIGHT))
            .values(attempts=n.attempts + 1, next_attempt_at=now + LEASE,
                    last_error=f"{IN_FLIGHT} since {now.isoformat(timespec='seconds')}Z")
            .returning(n.id, n.attempts, n.openid, n.channel, n.payload)
        )).all()
        # The rows just claimed are leased past `now`: only rows left in flight by a dead worker match here.
        interrupted = (await s.scalars(
            update(n).where(*due, n.last_error.startswith(IN_FLIGHT))
            .values(status="given_up",
                    last_error="outcome unknown, not resent (at most once): a worker stopped while " + n.last_error)
            .returning(n.id)
        )).all()
    for nid in interrupted:
        log.warning("notification %s: previous attempt interrupted, outcome unknown; given up", nid)
    claims = sorted((Claim(r.id, r.attempts, r.openid, r.channel, r.payload) for r in rows), key=lambda c: c.id)
    taken = {c.id for c in claims}
    others = {nid: "given_up" if nid in interrupted else "skipped" for nid in ids if nid not in taken}
    return claims, others


async def claim(sessions: async_sessionmaker[AsyncSession], notification_id: int, now: datetime) -> Claim | str:
    """`claim_many` for one row: its claim, or why not ("skipped", "given_up")."""
    claims, others = await claim_many(sessions, [notification_id], now)
    return claims[0] if claims else others[notification_id]


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


def _plan(c: Claim, outcome: Outcome, now: datetime) -> tuple[str, dict[str, Any]]:
    """What an attempt's outcome writes: its status ("sent", "retry", "given_up") and the row's new values."""
    if isinstance(outcome, Sent):
        return "sent", {"status": "sent", "sent_at": now, "last_error": None}
    if isinstance(outcome, GiveUp):
        return "given_up", {"status": "given_up", "last_error": outcome.reason[:2000]}
    if c.attempts >= MAX_ATTEMPTS:
        return "given_up", {"status": "given_up",
                            "last_error": f"gave up after {c.attempts} attempts: {outcome.reason}"[:2000]}
    delay = _retry_delay(c.attempts, outcome.after)
    return "retry", {"next_attempt_at": now + timedelta(seconds=delay), "last_error": outcome.reason[:2000]}


RECORD_CHUNK: Final = 400  # (id, attempts) pairs per UPDATE: well under SQLite's parameter limit


async def record_many(sessions: async_sessionmaker[AsyncSession], attempts: Sequence[tuple[Claim, Outcome]],
                      now: datetime) -> dict[int, str]:
    """Mark claimed attempts' outcomes in one transaction ({id: "sent" | "retry" | "given_up"}): one UPDATE
    per distinct outcome (all the sent rows share one), each fenced on the claimed `attempts`, so only the
    claimer writes it."""
    n = Notification
    statuses: dict[int, str] = {}
    groups: dict[tuple[str, tuple[tuple[str, Any], ...]], list[Claim]] = {}
    for c, outcome in attempts:
        status, values = _plan(c, outcome, now)
        statuses[c.id] = status
        groups.setdefault((status, tuple(sorted(values.items()))), []).append(c)
    if not groups:
        return statuses
    done: set[int] = set()
    for pause in (0.2, 1.0, 3.0, None):  # the messages may be out: try hard to write that down
        try:
            async with transaction(sessions) as s:
                done = set()
                for (_, items), claims in groups.items():
                    for i in range(0, len(claims), RECORD_CHUNK):
                        pairs = [(c.id, c.attempts) for c in claims[i:i + RECORD_CHUNK]]
                        done.update((await s.scalars(
                            update(n).where(tuple_(n.id, n.attempts).in_(pairs), n.status != "sent")
                            .values(**dict(items)).returning(n.id))).all())
            break
        except Exception:
            if pause is None:
                raise
            log.exception("notifications %s: recording their outcomes failed; trying again",
                          ", ".join(str(c.id) for c, _ in attempts))
            await asyncio.sleep(pause)
    for (status, items), claims in groups.items():
        error = dict(items).get("last_error")
        for c in claims:
            if c.id not in done:
                log.warning("notification %s: attempt %s outcome %s not recorded (row changed meanwhile)",
                            c.id, c.attempts, status)
            elif status == "retry":
                _throttled.warning("deliver", "notification %s: attempt %s failed (%s); will retry",
                                   c.id, c.attempts, error)
            elif status == "given_up":
                log.info("notification %s given up: %s", c.id, error)
    return statuses


async def record(sessions: async_sessionmaker[AsyncSession], c: Claim, outcome: Outcome, now: datetime) -> str:
    """`record_many` for one attempt."""
    return (await record_many(sessions, [(c, outcome)], now))[c.id]


async def deliver(sessions: async_sessionmaker[AsyncSession], client: WeChatClient, settings: Settings,
                  notification_id: int, *, now: datetime | None = None) -> str:
    """Deliver one outbox row: "sent", "retry" (rescheduled), "given_up", or "skipped" (nothing to do).
    `now` (naive UTC) is for tests; by default the clock."""
    return (await deliver_many(sessions, client, settings, [notification_id], now=now))[notification_id]


async def deliver_many(sessions: async_sessionmaker[AsyncSession], client: WeChatClient, settings: Settings,
                       notification_ids: Collection[int], *, now: datetime | None = None) -> dict[int, str]:
    """Deliver a batch of outbox rows (at most DELIVER_BATCH, as `kick` and the sweep make them): one claim
    transaction, the claimed rows' sends all at once, one transaction recording every outcome.
    {id: "sent" | "retry" | "given_up" | "skipped" | "in flight"}. All sends at once: the batch takes as long
    as its slowest message, which the LEASE and the job timeout cover. A send that raises (a bug, a payload
    the client cannot encode, a database error while recording a refused subscription) leaves its row "in
    flight": given up after the lease, never sent twice; the batch's other outcomes are recorded.

    The access token is made ready before the claim: a worker that dies while getting it (WeChat slow,
    the worker killed) leaves the rows pending, not "in flight", so the next worker sends them."""
    await client.prepare()
    claims, statuses = await claim_many(sessions, notification_ids, now or utcnow())
    if not claims:
        return statuses
    accepted = await _accepted(sessions, settings, claims)

    async def one(c: Claim) -> Outcome:
        outcome = await send_subscribed(sessions, client, settings, c, now or utcnow(), accepted=accepted)
        return outcome if outcome is not None else await send(client, settings, c)

    results = await asyncio.gather(*(one(c) for c in claims), return_exceptions=True)
    outcomes: list[tuple[Claim, Outcome]] = []
    for c, result in zip(claims, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result  # cancelled (the job's timeout, a shutdown): nothing is recorded, nothing resent
            log.error("notification %s: sending raised %s: %s; left in flight (given up after the lease)",
                      c.id, type(result).__name__, result, exc_info=result)
            statuses[c.id] = "in flight"
        else:
            outcomes.append((c, result))
    statuses.update(await record_many(sessions, outcomes, now or utcnow()))
    return statuses


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


async def _accepted(sessions: async_sessionmaker[AsyncSession], settings: Settings, claims: Sequence[Claim]
                    ) -> set[tuple[str, str]]:
    """(openid, template id) of the batch's subscription templates that their recipients accepted: read in one
    session before the sends (nothing when no subscription template is configured)."""
    wanted = {(c.openid, found[0]) for c in claims if (found := subscription(settings, c)) is not None}
    if not wanted:
        return set()
    async with sessions() as s:
        return {(openid, tid) for openid, tid in sorted(wanted) if tid in await consents.accepted(s, openid, [tid])}


async def send_subscribed(sessions: async_sessionmaker[AsyncSession], client: WeChatClient, settings: Settings,
                          c: Claim, now: datetime, *, accepted: Collection[tuple[str, str]] | None = None
                          ) -> Outcome | None:
    """Send the row as a subscription notification when its recipient accepted the template; None: not this
    way (nothing configured, no consent, or the follower refused it just now: recorded, and the caller falls
    back to the other channels). `accepted`: the consents read for the batch (`_accepted`); by default read
    here."""
    found = subscription(settings, c)
    if found is None:
        return None
    template_id, data, page = found
    if accepted is None:
        accepted = await _accepted(sessions, settings, [c])
    if (c.openid, template_id) not in accepted:
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
    """Enqueue a delivery for every due row, DELIVER_BATCH rows per job; returns how many rows went into
    newly queued jobs. The job id carries the rows' attempt counts: one job per batch of attempts, however
    many sweeps see the same rows, while a new attempt is not blocked by an old job's kept result."""
    count = 0
    rows = await due(sessions, now or utcnow())
    for i in range(0, len(rows), DELIVER_BATCH):
        chunk = rows[i:i + DELIVER_BATCH]
        if await redis.enqueue_job("deliver_notifications", [nid for nid, _ in chunk], _job_id=_batch_job_id(chunk)):
            count += len(chunk)
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
