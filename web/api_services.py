"""The window's service routes (issue 12) under /api/v1, on the same domain calls as the bot's words.

- `GET /api/v1/services?type=&district=&station_type=&limit=&offset=`: active stations offering a service
  whose name contains `type` (a common-list item: every station), with their matching items. Public, cached.
- `GET /api/v1/me/bookings`: the talent's open bookings. `POST /api/v1/me/bookings` (application/json
  `{"station": code, "slot_start": ISO time (local when it has no offset), "service_id": optional}`) books a
  slot (201); `DELETE /api/v1/me/bookings/{id}` cancels one. Capacity, the horizon and the talent's limit
  are scoring.bookings'.
- Same promises as web/api.py: unknown parameters refused, errors `{"error": {"code", "message"}}`,
  the talent from web/auth.py (401 / 403 as /me).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from scoring import bookings, directory, services
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.periods import TZ
from web import texts
from web.api import PREFIX, ApiError, _json_body, local_iso, me_talent, paging, params, private, public
from web.deps import deps

MAX_AGE: Final = 60

MESSAGES: Final = texts.BOOKING_ERRORS
STATUS: Final = {"station_not_found": 404, "service_not_found": 404, "booking_not_found": 404, "bad_slot": 400}
CODES: Final = {bookings.BookingRefusal.NO_STATION: "station_not_found",
                bookings.BookingRefusal.NO_SERVICE: "service_not_found",
                bookings.BookingRefusal.NOT_FOUND: "booking_not_found"}


def _error(result: bookings.BookingRefused, booking_id: int = 0) -> ApiError:
    code = CODES.get(result.reason, result.reason.value)
    template = MESSAGES.get(code)
    message = template.format(id=booking_id, limit=result.limit, first=bookings.FIRST_HOUR,
                              last=bookings.LAST_HOUR) if template else texts.error_message(code)
    return ApiError(STATUS.get(code, 409), code, message)


def service_json(v: services.ServiceView) -> dict[str, Any]:
    return asdict(v)


async def offering(request: web.Request) -> web.Response:
    q = params(request, ("type", "district", "station_type", "limit", "offset"))
    limit, offset = paging(q)
    kind = q.get("station_type") or ""
    if kind and kind not in directory.TYPES:
        raise ApiError(400, "bad_parameter", name="station_type")
    for name in ("type", "district"):
        if len(q.get(name, "")) > 64:
            raise ApiError(400, "bad_parameter", name=name)
    async with deps(request).sessions() as s:
        found = await services.stations_offering(s, (q.get("type") or "").strip(), (q.get("district") or "").strip(),
                                                 kind, limit=limit, offset=offset)
    rows = [{"code": st.code, "name": st.name, "kind": st.kind, "type": st.type, "district": st.county,
             "services": [service_json(services.view(it)) for it in items]} for st, items in found.rows]
    return public(request, {"total": found.total, "limit": limit, "offset": offset, "rows": rows}, MAX_AGE)


def booking_json(b: bookings.Listed) -> dict[str, Any]:
    return {"id": b.id, "station": b.station_code, "station_name": b.station, "service": b.service or None,
            "slot_start": local_iso(b.slot_start), "slot_end": local_iso(b.slot_end), "status": b.status}


async def my_bookings(request: web.Request) -> web.Response:
    q = params(request, ("limit", "offset"))
    limit, offset = paging(q)
    talent = await me_talent(request)
    async with deps(request).sessions() as s:
        mine = await bookings.my_bookings(s, talent.id, utcnow())
    return private({"total": len(mine), "limit": limit, "offset": offset,
                    "rows": [booking_json(b) for b in mine[offset:offset + limit]]})


def _slot(value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ApiError(400, "bad_parameter", name="slot_start")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "bad_parameter", name="slot_start") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=TZ)
    return at.astimezone(UTC).replace(tzinfo=None)


def _id(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ApiError(400, "bad_parameter", name=name)
    text = str(value).strip().lstrip("#")
    if not text.isascii() or not text.isdigit() or len(text) > 12 or int(text) < 1:
        raise ApiError(400, "bad_parameter", name=name)
    return int(text)


async def add_booking(request: web.Request) -> web.Response:
    params(request, ())
    body = await _json_body(request)
    unknown = sorted(set(body) - {"station", "slot_start", "service_id"})
    if unknown:
        raise ApiError(400, "unknown_parameter", name=str(unknown[0])[:40])
    code = body.get("station")
    if not isinstance(code, str) or not 0 < len(code) <= 32:
        raise ApiError(400, "bad_parameter", name="station")
    slot = _slot(body.get("slot_start"))
    service_id = _id(body["service_id"], "service_id") if body.get("service_id") is not None else None
    talent = await me_talent(request)
    d = deps(request)
    limits = bookings.Limits(horizon_days=d.settings.booking_horizon_days,
                             visit_capacity=d.settings.booking_visit_capacity,
                             max_open=d.settings.talent_max_open_bookings)
    async with transaction(d.sessions) as s:
        station = await services.find_station(s, code, exact=True)
        if station is None:
            raise ApiError(404, "station_not_found")
        result = await bookings.book(s, talent_id=talent.id, station_id=station.id, slot_start=slot,
                                     service_id=service_id, now=utcnow(), limits=limits, alert=ALERT)
    if isinstance(result, bookings.BookingRefused):
        raise _error(result)
    b = result.booking
    return private({"id": b.id, "station": result.station.code, "station_name": result.station.name,
                    "service": result.service.name if result.service else None,
                    "slot_start": local_iso(b.slot_start), "slot_end": local_iso(b.slot_end), "status": b.status,
                    "places_left": result.places_left}, status=201)


async def cancel_booking(request: web.Request) -> web.Response:
    params(request, ())
    booking_id = _id(request.match_info["id"], "id")
    talent = await me_talent(request)
    async with transaction(deps(request).sessions) as s:
        result = await bookings.cancel(s, talent_id=talent.id, booking_id=booking_id, now=utcnow())
    if isinstance(result, bookings.BookingRefused):
        raise _error(result, booking_id)
    return private({"id": booking_id, "cancelled": True})


ALERT: Final = texts.OP_NEW_BOOKING


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/services", offering)
    r.add_get(f"{PREFIX}/me/bookings", my_bookings)
    r.add_post(f"{PREFIX}/me/bookings", add_booking)
    r.add_delete(f"{PREFIX}/me/bookings/{{id}}", cancel_booking)
