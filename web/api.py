"""The mini program's JSON API under /api/v1 (SPEC 5, issue 11), on the same domain calls as the bot.

Promises
- Public reads (boards, featured, stations, activities) carry no personal data (no talent names, phones or
  openids), an `ETag` and `Cache-Control: public, max-age=...`; a matching `If-None-Match` gets 304.
- Board rows are the live boards' (scoring.directory.board: the same order and points as `talenthome
  board`). A computed board is kept in this process and recomputed in the background about every second
  (BoardCache: a scan shows within a second or two; 10,000 stations are not re-ranked for every request,
  nor when nothing changed: directory.board_version); `updated_at` says when it was computed.
- Every list is paged: `limit` 1..100 (default 20) and `offset` >= 0; the answer says `total`.
- An unknown query parameter is refused (400 `unknown_parameter`), a bad value too (400 `bad_parameter`).
- Errors are `{"error": {"code", "message"}}` with a 4xx status; `code` is the domain's reason where there is
  one, `message` is Chinese (web/texts.py). No stack trace reaches the caller.
- `/me...` is the logged-in talent's own data (web/auth.py: bearer token or session cookie): 401
  `unauthenticated` without a valid one, 403 `not_bound` when the openid is not a bound talent.
- Times are ISO 8601 in Asia/Shanghai (`+08:00`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from aiohttp import web

from scoring import accounts, directory, periods, services, signups, statement
from scoring.clock import unix, utcnow
from scoring.db import transaction
from scoring.periods import Period
from scoring.tokens import TALENT_CODE_TTL_S, talent_scene
from web import qr, texts
from web.auth import current_openid
from web.deps import DepsOf, WebDeps, deps

log = logging.getLogger(__name__)

PREFIX: Final = "/api/v1"
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
MAX_OFFSET: Final = 1_000_000
BOARD_TTL_S: Final = 1.0
MAX_BOARDS: Final = 48  # boards kept in the process (periods); each is 10^4 rows at most
FIRST_YEAR: Final = 2000  # periods before this year, or after next year, are refused
MAX_AGE: Final = {"boards": 5, "featured": 60, "stations": 60, "station": 30, "activities": 30}
MAX_JSON_BODY: Final = 4096


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str | None = None, **fields: object) -> None:
        super().__init__(code)
        self.status, self.code = status, code
        self.message = message or texts.error_message(code, **fields)


def error_response(status: int, code: str, message: str | None = None, **fields: object) -> web.Response:
    body = {"error": {"code": code, "message": message or texts.error_message(code, **fields)}}
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def local_iso(at: datetime | None) -> str | None:
    return None if at is None else periods.to_local(at).isoformat(timespec="seconds")


# -- parameters --------------------------------------------------------------------------------------


def params(request: web.Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query as a dict; unknown or repeated parameters are refused."""
    out: dict[str, str] = {}
    for name, value in request.query.items():
        if name not in allowed:
            raise ApiError(400, "unknown_parameter", name=name[:40])
        if name in out:
            raise ApiError(400, "bad_parameter", name=name)
        out[name] = value
    return out


def _int(q: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or not low <= int(raw) <= high:
        raise ApiError(400, "bad_parameter", name=name)
    return int(raw)


def paging(q: dict[str, str]) -> tuple[int, int]:
    return _int(q, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT), _int(q, "offset", 0, 0, MAX_OFFSET)


def _choice(q: dict[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    raw = q.get(name) or None
    if raw is not None and raw not in choices:
        raise ApiError(400, "bad_parameter", name=name)
    return raw


def _text(q: dict[str, str], name: str, max_len: int = 64) -> str | None:
    raw = (q.get(name) or "").strip()
    if len(raw) > max_len:
        raise ApiError(400, "bad_parameter", name=name)
    return raw or None


def _day(q: dict[str, str], name: str) -> date | None:
    raw = q.get(name) or None
    if raw is None:
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", name=name) from None


# -- responses ---------------------------------------------------------------------------------------


def public(request: web.Request, payload: Any, max_age: int) -> web.Response:
    """A public read: JSON with a strong ETag over its bytes and Cache-Control; 304 on If-None-Match."""
    body = _dumps(payload).encode()
    return public_bytes(request, body, max_age)


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def public_bytes(request: web.Request, body: bytes, max_age: int, etag: str | None = None) -> web.Response:
    etag = etag or etag_of(body)
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}", "Vary": "Accept-Encoding"}
    inm = request.headers.get("If-None-Match", "")
    if inm and (inm.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in inm.split(",")]):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", charset="utf-8", headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On /api/ paths: ApiError as its JSON; aiohttp's 404/405/413 and any crash as JSON errors too."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err.status, err.code, err.message)
    except web.HTTPNotFound:
        return error_response(404, "not_found")
    except web.HTTPMethodNotAllowed:
        return error_response(405, "method_not_allowed")
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large")
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("api %s %s failed", request.method, request.path)
        return web.json_response({"error": {"code": "internal", "message": texts.ERRORS["internal"]}},
                                 status=500, dumps=_dumps)


# -- public reads ------------------------------------------------------------------------------------


def station_json(s: directory.StationInfo) -> dict[str, Any]:
    return {"code": s.code, "name": s.name, "kind": s.kind, "type": s.type, "district": s.district,
            "stars": s.stars, "address": s.address, "opening_hours": s.opening_hours}


def activity_json(a: directory.ActivityView) -> dict[str, Any]:
    return {"id": a.id, "station": {"code": a.station_code, "name": a.station_name}, "title": a.title,
            "theme": a.theme, "starts_at": local_iso(a.starts_at), "ends_at": local_iso(a.ends_at),
            "capacity": a.capacity, "taken": a.taken, "free_seats": a.free_seats, "signup_open": a.signup_open,
            "category": a.category}


@dataclass
class _Board:
    at: float  # when computed (monotonic); identifies the board for its rendered pages
    updated_at: datetime
    rows: list[directory.BoardRow]
    ttl_s: float
    version: tuple[Any, ...] | None  # directory.board_version when computed
    checked: float  # when last found current (monotonic)


def version_stations(version: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    return None if version is None else version[1]


class BoardCache:
    """Computed boards by period, kept in this process and refreshed every BOARD_TTL_S: a reader of a stale
    board gets it at once while one task computes the next (so no reader waits on 10,000 stations being
    ranked); only the very first reader of a period waits. Rendered pages of a board are kept by query."""

    def __init__(self, ttl_s: float = BOARD_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._boards: dict[Period, _Board] = {}
        self._inflight: dict[Period, asyncio.Task[_Board]] = {}
        self._bodies: dict[tuple[Any, ...], tuple[float, bytes, str]] = {}
        self._stations: directory.Stations | None = None  # re-read when a station is added or changed

    async def _compute(self, d: WebDeps, period: Period) -> _Board:
        try:
            started = time.monotonic()
            now = utcnow()
            async with d.sessions() as s:
                version = await directory.board_version(s, d.redis, now)
                hit = self._boards.get(period)
                if hit is not None and version is not None and hit.version == version:
                    hit.checked = started  # unchanged: the same rows, pages and ETags
                    return hit
                if self._stations is None or self._stations.fingerprint != version_stations(version) \
                        or version is None:
                    self._stations = await directory.load_stations(s)
                rows = await directory.board(s, d.redis, period, now=now, stations=self._stations)
            done = time.monotonic()
            # Ranking 10^4 stations costs a share of the loop: a changing board is re-ranked at most every
            # 4x that cost (and every ttl_s).
            result = _Board(done, now, rows, max(self.ttl_s, 4 * (done - started)), version, done)
            self._boards.pop(period, None)
            self._boards[period] = result
            while len(self._boards) > MAX_BOARDS:  # the least recently computed go (a reader may walk periods)
                del self._boards[next(iter(self._boards))]
            return result
        finally:
            self._inflight.pop(period, None)

    def _refresh(self, d: WebDeps, period: Period) -> asyncio.Task[_Board]:
        task = self._inflight.get(period)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._compute(d, period))
            task.add_done_callback(_log_failure)
            self._inflight[period] = task
        return task

    async def board(self, d: WebDeps, period: Period) -> _Board:
        hit = self._boards.get(period)
        if hit is not None:
            if time.monotonic() - hit.checked >= hit.ttl_s:
                self._refresh(d, period)
            return hit
        return await asyncio.shield(self._refresh(d, period))

    def stale(self) -> list[asyncio.Task[_Board]]:
        """Mark every board stale now (the next reader starts its refresh); the refreshes running."""
        for b in self._boards.values():
            b.ttl_s = 0.0
        return list(self._inflight.values())

    async def refreshed(self) -> None:
        """Wait for the refreshes running now (tests and benchmarks; readers never wait)."""
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    def body(self, key: tuple[Any, ...], at: float) -> tuple[bytes, str] | None:
        hit = self._bodies.get(key)
        return (hit[1], hit[2]) if hit is not None and hit[0] == at else None

    def keep(self, key: tuple[Any, ...], at: float, body: bytes) -> str:
        if len(self._bodies) > 2000:
            self._bodies.clear()
        etag = etag_of(body)
        self._bodies[key] = (at, body, etag)
        return etag

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("computing a board failed", exc_info=task.exception())


BOARDS: web.AppKey[BoardCache] = web.AppKey("web_board_cache")


def _period(kind: str, q: dict[str, str]) -> Period:
    raw = q.get("period") or None
    if kind == "total" and raw not in (None, "all"):
        raise ApiError(400, "bad_parameter", name="period")
    key = raw if raw is not None else None if kind == "total" else _current_key(kind, int(time.time()) // 60)
    period = _parse_period(kind, key)
    if period is None:
        raise ApiError(400, "bad_parameter", name="period")
    return period


@functools.lru_cache(maxsize=8)
def _current_key(kind: str, minute: int) -> str:
    """This year's or month's key (Asia/Shanghai), worked out once a minute."""
    return Period.parse(kind, now=utcnow()).key


@functools.lru_cache(maxsize=256)
def _parse_period(kind: str, raw: str | None) -> Period | None:
    """The period, or None when malformed or outside FIRST_YEAR .. next year (nothing to show there, and
    every distinct period costs a ranking of every station)."""
    try:
        period = Period.parse(kind, raw, now=utcnow())
        period.bounds()
    except (ValueError, OverflowError):
        return None
    if period.year is not None and not FIRST_YEAR <= period.year <= periods.to_local(utcnow()).year + 1:
        return None
    return period


async def boards(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    if kind not in directory.BOARD_KINDS:
        raise ApiError(404, "not_found")
    q = params(request, ("period", "type", "district", "limit", "offset"))
    period = _period(kind, q)
    station_type = _choice(q, "type", directory.TYPES)
    district = _text(q, "district")
    limit, offset = paging(q)
    cache = request.app[BOARDS]
    b = await cache.board(deps(request), period)
    key = (period, station_type, district, limit, offset)
    kept = cache.body(key, b.at)
    if kept is not None:
        body, etag = kept
    else:
        rows = directory.filter_rows(b.rows, station_type=station_type, district=district)
        page = rows[offset:offset + limit]
        body = _dumps({"period": period.key, "kind": period.kind, "updated_at": local_iso(b.updated_at),
                       "total": len(rows), "limit": limit, "offset": offset,
                       "rows": [{"rank": r.rank, "code": r.code, "name": r.name, "kind": r.kind, "type": r.type,
                                 "district": r.district, "stars": r.stars, "points": r.points,
                                 "featured": r.featured} for r in page]}).encode()
        etag = cache.keep(key, b.at, body)
    return public_bytes(request, body, MAX_AGE["boards"], etag)


async def featured(request: web.Request) -> web.Response:
    q = params(request, ("limit", "offset"))
    limit, offset = paging(q)
    async with deps(request).sessions() as s:
        f = await directory.featured(s, utcnow(), limit=limit, offset=offset)
    return public(request, {
        "month": f.month, "current": [station_json(s) for s in f.current],
        "past": [{"month": p.month, "closed": p.closed,
                  "station": station_json(p.station) if p.station else None} for p in f.past],
        "total": f.total_past, "limit": limit, "offset": offset}, MAX_AGE["featured"])


async def stations(request: web.Request) -> web.Response:
    q = params(request, ("district", "type", "kind", "text", "limit", "offset"))
    limit, offset = paging(q)
    async with deps(request).sessions() as s:
        found = await directory.directory(
            s, district=_text(q, "district"), station_type=_choice(q, "type", directory.TYPES),
            kind=_choice(q, "kind", directory.KINDS), text=_text(q, "text"), limit=limit, offset=offset)
    return public(request, {"total": found.total, "limit": limit, "offset": offset,
                            "rows": [station_json(st) for st in found.items]}, MAX_AGE["stations"])


async def station(request: web.Request) -> web.Response:
    params(request, ())
    code = request.match_info["code"]
    if len(code) > 32:
        raise ApiError(404, "station_not_found")
    d = deps(request)
    cache = request.app[BOARDS]
    # The current boards from the cache, before this view's session (on SQLite a second session would wait
    # for the first one's lock); older months not closed yet are ranked in the card's session.
    now = utcnow()
    kept = {p: (await cache.board(d, p)).rows for p in (Period.parse(k, now=now) for k in directory.BOARD_KINDS)}

    async def board_of(period: Period) -> list[directory.BoardRow] | None:
        return kept.get(period)

    async with d.sessions() as s:
        card = await directory.station_card(s, d.redis, code, now=now, board_of=board_of)
    if card is None:
        raise ApiError(404, "station_not_found")
    return public(request, {
        **station_json(card.info), "eligible": card.eligible, "featured": card.featured_now,
        "featured_months": card.featured_months,
        "ranks": {k: {"rank": v.rank, "points": v.points} for k, v in card.ranks.items()},
        "months": [{"month": m.month, "points": m.points, "rank": m.rank, "closed": m.closed} for m in card.months],
        "activities": [activity_json(a) for a in card.activities],
        "services": [dataclasses.asdict(v) for v in card.services], "duties": card.duties}, MAX_AGE["station"])


async def activities(request: web.Request) -> web.Response:
    q = params(request, ("station", "from", "to", "category", "limit", "offset"))
    limit, offset = paging(q)
    start, end = _day(q, "from"), _day(q, "to")
    if start is not None and end is not None and end < start:
        raise ApiError(400, "bad_parameter", name="to")
    async with deps(request).sessions() as s:
        found = await directory.activities(
            s, now=utcnow(), station_code=_text(q, "station", 32),
            start=periods.local_midnight_utc(start) if start else None,
            end=periods.local_midnight_utc(end + timedelta(days=1)) if end else None, limit=limit, offset=offset,
            category=_choice(q, "category", services.CATEGORIES))
    return public(request, {"total": found.total, "limit": limit, "offset": offset,
                            "rows": [activity_json(a) for a in found.items]}, MAX_AGE["activities"])


# -- the talent's own --------------------------------------------------------------------------------


def private(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=_dumps, headers={"Cache-Control": "private, no-store"})


@dataclass(frozen=True)
class Me:
    id: int
    cert_no: str
    name: str


async def me_talent(request: web.Request) -> Me:
    """The logged-in, bound talent; 401 without a valid session, 403 when the openid is not bound."""
    openid = current_openid(request)
    if openid is None:
        raise ApiError(401, "unauthenticated")
    async with deps(request).sessions() as s:
        talent = await accounts.talent_by_openid(s, openid)
    if talent is None:
        raise ApiError(403, "not_bound")
    return Me(talent.id, talent.cert_no, talent.name)


def line_text(line: statement.StatementLine) -> str:
    """A ledger line in words (web/texts.py)."""
    station = line.station_name or ""
    if line.fact_kind == "visit" and line.activity_title:
        what = texts.LINE_VISIT_ACTIVITY.format(activity=line.activity_title, station=station)
    elif line.fact_kind == "visit":
        what = texts.LINE_VISIT.format(station=station)
    elif line.fact_kind == "redemption":
        what = texts.LINE_REDEMPTION.format(gift=line.gift_name or "")
    else:
        what = texts.LINE_OTHER.format(rule=line.rule)
    if line.reversal:
        return texts.LINE_VOID.format(what=what, reason=line.reason or texts.NO_REASON)
    return what


def line_json(line: statement.StatementLine) -> dict[str, Any]:
    return {"id": line.id, "amount": line.amount, "rule": line.rule,
            "fact": {"kind": line.fact_kind, "id": line.fact_id,
                     "station": {"code": line.station_code, "name": line.station_name}
                     if line.station_code else None,
                     "activity": {"id": line.activity_id, "title": line.activity_title}
                     if line.activity_id else None,
                     "gift": line.gift_name},
            "reversal": line.reversal, "reason": line.reason, "text": line_text(line),
            "occurred_at": local_iso(line.occurred_at), "recorded_at": local_iso(line.recorded_at)}


async def me(request: web.Request) -> web.Response:
    q = params(request, ("limit", "offset"))
    limit, offset = paging(q)
    talent = await me_talent(request)
    async with deps(request).sessions() as s:
        st = await statement.statement(s, talent.id, now=utcnow(), limit=limit, offset=offset)
    return private({"talent": {"cert_no": talent.cert_no, "name": talent.name},
                    "points": st.points, "balance": st.balance, "total": st.total_lines, "limit": limit,
                    "offset": offset, "lines": [line_json(x) for x in st.lines]})


def signup_json(a: signups.Listed) -> dict[str, Any]:
    return {"activity_id": a.id, "title": a.title, "station": a.station, "starts_at": local_iso(a.starts_at),
            "ends_at": local_iso(a.ends_at)}


async def my_signups(request: web.Request) -> web.Response:
    q = params(request, ("limit", "offset"))
    limit, offset = paging(q)
    talent = await me_talent(request)
    async with deps(request).sessions() as s:
        mine = await signups.my_signups(s, talent.id, utcnow())
    return private({"total": len(mine), "limit": limit, "offset": offset,
                    "rows": [signup_json(a) for a in mine[offset:offset + limit]]})


# Who hears of a sign-up is the domain's decision (scoring.signups); the words are ours, as the bot's.
OPERATOR_ALERTS: Final = signups.OperatorAlerts(signup=texts.OP_NEW_SIGNUP, full=texts.OP_ACTIVITY_FULL)
REFUSAL_STATUS: Final = {signups.SignupRefusal.NOT_FOUND: 404, signups.SignupRefusal.CLOSED: 409,
                         signups.SignupRefusal.FULL: 409, signups.SignupRefusal.ALREADY: 409,
                         signups.SignupRefusal.NOT_SIGNED_UP: 404}


def _refused(result: signups.SignupRefused, activity_id: int) -> ApiError:
    reason = result.reason
    message = texts.error_message("activity_not_found") if reason == signups.SignupRefusal.NOT_FOUND \
        else texts.error_message(reason.value, id=activity_id)
    return ApiError(REFUSAL_STATUS.get(reason, 409), reason.value, message)


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object. `Content-Type: application/json` is required: a cross-site HTML form cannot
    send it (a page elsewhere could otherwise post with the talent's cookie where SameSite does not hold)."""
    if request.content_type != "application/json":
        raise ApiError(415, "bad_content_type")
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise ApiError(413, "too_large")
    raw = await request.content.read(MAX_JSON_BODY + 1)
    if len(raw) > MAX_JSON_BODY:
        raise ApiError(413, "too_large")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):  # `[[[[...` 4 KiB deep is a RecursionError, not a ValueError
        raise ApiError(400, "bad_body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_body")
    return body


def _activity_id(value: object, name: str = "activity_id") -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ApiError(400, "bad_parameter", name=name)
    text = str(value).strip().lstrip("#")
    if not text.isascii() or not text.isdigit() or len(text) > 12 or int(text) < 1:
        raise ApiError(400, "bad_parameter", name=name)
    return int(text)


async def add_signup(request: web.Request) -> web.Response:
    params(request, ())
    body = await _json_body(request)
    unknown = sorted(set(body) - {"activity_id"})
    if unknown:
        raise ApiError(400, "unknown_parameter", name=str(unknown[0])[:40])
    activity_id = _activity_id(body.get("activity_id"))
    talent = await me_talent(request)
    async with transaction(deps(request).sessions) as s:
        result = await signups.signup(s, talent_id=talent.id, activity_id=activity_id, now=utcnow(),
                                      alerts=OPERATOR_ALERTS)
    if isinstance(result, signups.SignupRefused):
        raise _refused(result, activity_id)
    a = result.activity
    return private({"activity_id": a.id, "title": a.title, "station": result.station,
                    "starts_at": local_iso(a.starts_at), "ends_at": local_iso(a.ends_at),
                    "seats_left": result.seats_left}, status=201)


async def cancel_signup(request: web.Request) -> web.Response:
    params(request, ())
    activity_id = _activity_id(request.match_info["id"], "id")
    talent = await me_talent(request)
    async with transaction(deps(request).sessions) as s:
        result = await signups.cancel(s, talent_id=talent.id, activity_id=activity_id, now=utcnow())
    if isinstance(result, signups.SignupRefused):
        raise _refused(result, activity_id)
    return private({"activity_id": activity_id, "cancelled": True})


async def my_code(request: web.Request) -> web.Response:
    """The personal code (`tl:...`, the scene the bot's 我的码 gives) as a QR image; SVG unless ?format=png."""
    q = params(request, ("format",))
    fmt = _choice(q, "format", ("svg", "png")) or "svg"
    talent = await me_talent(request)
    now = unix(utcnow())
    scene = talent_scene(deps(request).settings.scene_key, talent.id, now)
    headers = {"Cache-Control": "private, no-store",
               "X-Code-Expires-At": local_iso(utcnow() + timedelta(seconds=TALENT_CODE_TTL_S)) or ""}
    if fmt == "png":
        return web.Response(body=qr.png(scene), content_type="image/png", headers=headers)
    return web.Response(text=qr.svg(scene), content_type="image/svg+xml", headers=headers)


def setup(app: web.Application, deps_of: DepsOf) -> None:
    app[BOARDS] = BoardCache()

    async def close_cache(app: web.Application) -> None:
        await app[BOARDS].close()

    app.on_shutdown.append(close_cache)
    app.middlewares.append(errors)
    r = app.router
    r.add_get(f"{PREFIX}/boards/{{kind}}", boards)
    r.add_get(f"{PREFIX}/featured", featured)
    r.add_get(f"{PREFIX}/stations", stations)
    r.add_get(f"{PREFIX}/stations/{{code}}", station)
    r.add_get(f"{PREFIX}/activities", activities)
    r.add_get(f"{PREFIX}/me", me)
    r.add_get(f"{PREFIX}/me/signups", my_signups)
    r.add_post(f"{PREFIX}/me/signups", add_signup)
    r.add_delete(f"{PREFIX}/me/signups/{{id}}", cancel_signup)
    r.add_get(f"{PREFIX}/me/code", my_code)
