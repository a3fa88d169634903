"""Service lists (服务清单) and service duties (服务职责): policy measures 1, 7 and 9.

- The city-wide common list is the set of items with no station (`ServiceItem.station_id` NULL); migration
  0007 seeds measure 7's three (涉才政策咨询、人才寻访登记、茶咖休闲交流). Only admins edit it.
- Each station has its own items on top (name, short description, when offered, bookable or not, capacity
  per slot) and one written statement of its duties. An operator edits their own station's; an admin any
  station's. Staff scope is passed in as `scope`: a station id (an operator) or None (an admin).
- A withdrawn item (`active` False) is kept for the bookings that name it; it is no longer listed.
- Activities have a category (policy measure 9): CATEGORIES, filterable in the lists.
- Imports (`talenthome import-services FILE`) follow scoring/imports.py: every row is validated first,
  an error names the line and field, and nothing is written on any error.
- Domain functions write no audit rows (the bot's router and the CLI do, scoring/staff.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Final, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import bookings, consultations, imports
from scoring.models import Activity, ServiceItem, Station, StationDuties, Visit

MAX_NAME: Final = 60
MAX_DESCRIPTION: Final = 300
MAX_SCHEDULE: Final = 100
MAX_DUTIES: Final = 2000
MAX_CAPACITY: Final = 1000

# Activity categories (policy measure 9): the stored code.
CATEGORIES: Final = ("lecture", "seminar", "culture", "salon", "other")


class ServiceRefusal(StrEnum):
    NO_STATION = "no_station"  # unknown station
    NOT_FOUND = "not_found"  # unknown (or withdrawn) item / activity
    OTHER_STATION = "other_station"  # an operator touching another station's, or the common list
    BAD_NAME = "bad_name"
    TOO_LONG = "too_long"
    BAD_CAPACITY = "bad_capacity"
    DUPLICATE = "duplicate"  # an active item of the same name on the same list
    BAD_CATEGORY = "bad_category"


@dataclass(frozen=True)
class ItemFields:
    name: str
    description: str = ""
    schedule: str = ""
    bookable: bool = False
    capacity: int | None = None


@dataclass(frozen=True)
class ServiceList:
    station: Station
    common: list[ServiceItem]
    own: list[ServiceItem]
    duties: str


# -- finding stations --------------------------------------------------------------------------------------
STATION_NAME_MAX: Final = 200  # stations.name is String(200), stations.code String(32)


async def find_station(session: AsyncSession, text: str, *, exact: bool = False) -> Station | None:
    """A station by code (any case) or name: exact name first, then (unless `exact`) the one name
    containing `text`."""
    t = text.strip()
    if not t or len(t) > STATION_NAME_MAX:  # nothing longer matches; and SQLite refuses a LIKE over 50 kB
        return None
    found = await session.scalar(select(Station).where(func.lower(Station.code) == t.lower()))
    if found is not None:
        return found
    found = await session.scalar(select(Station).where(Station.name == t).order_by(Station.id).limit(1))
    if found is not None or exact:
        return found
    like = (await session.scalars(select(Station).where(Station.name.contains(t, autoescape=True))
                                  .order_by(Station.id).limit(2))).all()
    return like[0] if len(like) == 1 else None


async def last_visited(session: AsyncSession, talent_id: int) -> Station | None:
    """The station of the talent's latest accepted visit."""
    sid = await session.scalar(select(Visit.station_id).where(
        Visit.talent_id == talent_id, Visit.status == "accepted", Visit.station_id.is_not(None))
        .order_by(Visit.scanned_at.desc(), Visit.id.desc()).limit(1))
    return None if sid is None else await session.get(Station, sid)


# -- reading -----------------------------------------------------------------------------------------------
async def common_items(session: AsyncSession) -> list[ServiceItem]:
    return list((await session.scalars(select(ServiceItem).where(
        ServiceItem.station_id.is_(None), ServiceItem.active).order_by(ServiceItem.id))).all())


async def station_items(session: AsyncSession, station_id: int) -> list[ServiceItem]:
    return list((await session.scalars(select(ServiceItem).where(
        ServiceItem.station_id == station_id, ServiceItem.active).order_by(ServiceItem.id))).all())


async def duties_of(session: AsyncSession, station_id: int) -> str:
    row = await session.get(StationDuties, station_id)
    return row.text if row is not None else ""


async def service_list(session: AsyncSession, station: Station) -> ServiceList:
    return ServiceList(station=station, common=await common_items(session),
                       own=await station_items(session, station.id), duties=await duties_of(session, station.id))


@dataclass(frozen=True)
class ServiceView:
    """An item as the window shows it (the station card, GET /api/v1/services)."""

    id: int
    name: str
    description: str
    schedule: str
    bookable: bool
    capacity: int | None
    common: bool  # on the city-wide common list


def view(it: ServiceItem) -> ServiceView:
    return ServiceView(id=it.id, name=it.name, description=it.description, schedule=it.schedule,
                       bookable=it.bookable, capacity=it.capacity, common=it.station_id is None)


async def card_services(session: AsyncSession, station_id: int) -> list[ServiceView]:
    """The common list, then the station's own items."""
    return [view(it) for it in await common_items(session) + await station_items(session, station_id)]


async def item(session: AsyncSession, item_id: int) -> ServiceItem | None:
    found = await session.get(ServiceItem, item_id)
    return found if found is not None and found.active else None


@dataclass(frozen=True)
class Offering:
    total: int
    rows: list[tuple[Station, list[ServiceItem]]]


async def stations_offering(session: AsyncSession, service: str = "", district: str = "",
                            station_type: str = "", limit: int = 20, offset: int = 0) -> Offering:
    """Active stations offering a service whose name contains `service` (every station offers the common
    list, so a common item's name matches them all), in `district` (county) and of `station_type` when
    given; each with its matching own items (all of them without `service`). By code, paged."""
    q = select(Station.id).where(Station.status == "active")
    if district:
        q = q.where(Station.county == district)
    if station_type:
        q = q.where(Station.type == station_type)
    common_match = False
    if service:
        common_match = bool(await session.scalar(select(func.count(ServiceItem.id)).where(
            ServiceItem.station_id.is_(None), ServiceItem.active,
            ServiceItem.name.contains(service, autoescape=True))))
        if not common_match:
            q = q.where(Station.id.in_(select(ServiceItem.station_id).where(
                ServiceItem.active, ServiceItem.name.contains(service, autoescape=True))))
    total = int(await session.scalar(select(func.count()).select_from(q.subquery())) or 0)
    stations = list((await session.scalars(select(Station).where(Station.id.in_(q)).order_by(Station.code)
                                           .limit(limit).offset(offset))).all())
    ids = [s.id for s in stations]
    items: dict[int, list[ServiceItem]] = {i: [] for i in ids}
    if ids:
        iq = select(ServiceItem).where(ServiceItem.station_id.in_(ids), ServiceItem.active)
        if service and not common_match:
            iq = iq.where(ServiceItem.name.contains(service, autoescape=True))
        for it in (await session.scalars(iq.order_by(ServiceItem.id))).all():
            assert it.station_id is not None
            items[it.station_id].append(it)
    return Offering(total, [(s, items[s.id]) for s in stations])


# -- editing -----------------------------------------------------------------------------------------------
def _check(fields: ItemFields) -> ServiceRefusal | None:
    if not fields.name.strip():
        return ServiceRefusal.BAD_NAME
    if (len(fields.name) > MAX_NAME or len(fields.description) > MAX_DESCRIPTION
            or len(fields.schedule) > MAX_SCHEDULE):
        return ServiceRefusal.TOO_LONG
    if fields.capacity is not None and not 1 <= fields.capacity <= MAX_CAPACITY:
        return ServiceRefusal.BAD_CAPACITY
    if fields.bookable and fields.capacity is None:
        return ServiceRefusal.BAD_CAPACITY
    return None


def _may(scope: int | None, station_id: int | None) -> bool:
    """An admin (scope None) may edit any list; an operator only their own station's."""
    return scope is None or (station_id is not None and station_id == scope)


async def _duplicate(session: AsyncSession, station_id: int | None, name: str, but: int | None = None) -> bool:
    q = select(func.count(ServiceItem.id)).where(ServiceItem.active, ServiceItem.name == name,
                                                 ServiceItem.station_id.is_(None) if station_id is None
                                                 else ServiceItem.station_id == station_id)
    if but is not None:
        q = q.where(ServiceItem.id != but)
    return bool(await session.scalar(q))


async def add_item(session: AsyncSession, *, station_id: int | None, fields: ItemFields, scope: int | None,
                   now: datetime) -> ServiceItem | ServiceRefusal:
    """Add an item to a station's list (`station_id`) or the common list (None, admins only)."""
    if not _may(scope, station_id):
        return ServiceRefusal.OTHER_STATION
    bad = _check(fields)
    if bad is not None:
        return bad
    if await _duplicate(session, station_id, fields.name.strip()):
        return ServiceRefusal.DUPLICATE
    row = ServiceItem(station_id=station_id, name=fields.name.strip(), description=fields.description,
                      schedule=fields.schedule, bookable=fields.bookable,
                      capacity=fields.capacity, active=True, created_at=now, updated_at=now)
    session.add(row)
    await session.flush()
    return row


async def edit_item(session: AsyncSession, *, item_id: int, fields: ItemFields, scope: int | None,
                    now: datetime) -> ServiceItem | ServiceRefusal:
    row = await item(session, item_id)
    if row is None:
        return ServiceRefusal.NOT_FOUND
    if not _may(scope, row.station_id):
        return ServiceRefusal.OTHER_STATION
    bad = _check(fields)
    if bad is not None:
        return bad
    if await _duplicate(session, row.station_id, fields.name.strip(), but=row.id):
        return ServiceRefusal.DUPLICATE
    row.name, row.description, row.schedule = fields.name.strip(), fields.description, fields.schedule
    row.bookable, row.capacity, row.updated_at = fields.bookable, fields.capacity, now
    await session.flush()
    return row


async def withdraw_item(session: AsyncSession, *, item_id: int, scope: int | None, now: datetime
                        ) -> ServiceItem | ServiceRefusal:
    row = await item(session, item_id)
    if row is None:
        return ServiceRefusal.NOT_FOUND
    if not _may(scope, row.station_id):
        return ServiceRefusal.OTHER_STATION
    row.active, row.updated_at = False, now
    await session.flush()
    return row


async def set_duties(session: AsyncSession, *, station_id: int, text: str, scope: int | None, actor: str,
                     now: datetime) -> StationDuties | ServiceRefusal:
    """Replace a station's written service duties (stored as written)."""
    if not _may(scope, station_id):
        return ServiceRefusal.OTHER_STATION
    if not text.strip():
        return ServiceRefusal.BAD_NAME
    if len(text) > MAX_DUTIES:
        return ServiceRefusal.TOO_LONG
    if await session.get(Station, station_id) is None:
        return ServiceRefusal.NO_STATION
    row = await session.get(StationDuties, station_id)
    if row is None:
        row = StationDuties(station_id=station_id, text=text, updated_at=now, updated_by=actor[:80])
        session.add(row)
    else:
        row.text, row.updated_at, row.updated_by = text, now, actor[:80]
    await session.flush()
    return row


async def set_category(session: AsyncSession, *, activity_id: int, category: str, scope: int | None
                       ) -> Activity | ServiceRefusal:
    if category not in CATEGORIES:
        return ServiceRefusal.BAD_CATEGORY
    act = await session.get(Activity, activity_id)
    if act is None or act.status != "published":
        return ServiceRefusal.NOT_FOUND
    if not _may(scope, act.station_id):
        return ServiceRefusal.OTHER_STATION
    act.category = category
    await session.flush()
    return act


# -- import ------------------------------------------------------------------------------------------------
SERVICE_FIELDS: Final = ("station", "name", "description", "schedule", "bookable", "capacity")
COMMON_WORDS: Final = frozenset({"", "-", "city", "common", "全市", "共性", "全市通用"})
YES: Final = frozenset({"1", "yes", "y", "true", "是", "可", "可预约"})
NO: Final = frozenset({"", "0", "no", "n", "false", "否", "不可", "不可预约"})


class ServiceRow(NamedTuple):
    line: int
    where: str
    station: str  # a station code, "" for the common list
    fields: ItemFields


def _service_row(raw: imports.RawRow, where: str) -> ServiceRow:
    v = raw.values
    station = imports._optional(v, "station", 32)
    if station.lower() in COMMON_WORDS:
        station = ""
    elif not imports.CODE_RE.match(station):
        raise imports._Bad("station", f"must be a station code, or empty for the common list (got {station!r})")
    flag = imports._optional(v, "bookable", 8).lower()
    if flag not in YES | NO:
        raise imports._Bad("bookable", f"must be yes or no (got {flag!r})")
    bookable = flag in YES
    cap_text = imports._text(v.get("capacity"))
    capacity = imports._whole(v, "capacity", 1, MAX_CAPACITY) if cap_text else None
    if bookable and capacity is None:
        raise imports._Bad("capacity", "is required when the item is bookable")
    return ServiceRow(line=raw.line, where=where, station=station, fields=ItemFields(
        name=imports._required(v, "name", MAX_NAME), description=imports._optional(v, "description", MAX_DESCRIPTION),
        schedule=imports._optional(v, "schedule", MAX_SCHEDULE), bookable=bookable, capacity=capacity))


def read_services(path: str | Path) -> list[ServiceRow]:
    """Read and validate a service-list file (columns SERVICE_FIELDS); raises imports.ImportFailed naming
    the first bad line and field. Stations are checked when saving."""
    where, raws = imports._read(path, SERVICE_FIELDS)
    return imports._validate(where, raws, lambda raw: _service_row(raw, where),
                             lambda r: f"{r.fields.name} at {r.station or 'common'}", "name")


async def save_services(session: AsyncSession, rows: Sequence[ServiceRow], now: datetime) -> imports.ImportResult:
    """Create or update items by (station, name) in the caller's transaction; raises ImportFailed before
    writing anything when a row names an unknown station."""
    codes = sorted({r.station for r in rows if r.station})
    ids = dict((await session.execute(select(Station.code, Station.id).where(Station.code.in_(codes)))).all()) \
        if codes else {}
    unknown = [r for r in rows if r.station and r.station not in ids]
    if unknown:
        raise imports.ImportFailed([imports.RowError(r.where, r.line, "station", f"unknown station {r.station!r}")
                                    for r in unknown[:imports.MAX_REPORTED]], len(unknown))
    existing: dict[tuple[int | None, str], ServiceItem] = {}
    for it in (await session.scalars(select(ServiceItem).where(ServiceItem.active).order_by(ServiceItem.id.desc())
                                     )).all():
        existing[(it.station_id, it.name)] = it
    created = updated = unchanged = 0
    for r in rows:
        sid = ids[r.station] if r.station else None
        f = r.fields
        row = existing.get((sid, f.name))
        if row is None:
            row = ServiceItem(station_id=sid, name=f.name, description=f.description, schedule=f.schedule,
                              bookable=f.bookable, capacity=f.capacity, active=True, created_at=now, updated_at=now)
            session.add(row)
            existing[(sid, f.name)] = row
            created += 1
        elif (row.description, row.schedule, row.bookable, row.capacity) == (
                f.description, f.schedule, f.bookable, f.capacity):
            unchanged += 1
        else:
            row.description, row.schedule = f.description, f.schedule
            row.bookable, row.capacity, row.updated_at = f.bookable, f.capacity, now
            updated += 1
    await session.flush()
    return imports.ImportResult(created=created, updated=updated, unchanged=unchanged)



# -- the admin overview ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OverviewRow:
    """Per station (None: city-wide questions): consultations and bookings (the admin's /admin overview)."""

    station_id: int | None
    code: str
    name: str
    questions: int
    answered: int
    median_minutes: float | None  # time to first answer
    p90_minutes: float | None
    escalated: int
    ratings: int
    rating_avg: float | None
    settled: int  # bookings kept or missed
    no_shows: int

    @property
    def no_show_rate(self) -> float | None:
        return None if self.settled == 0 else self.no_shows / self.settled


async def overview(session: AsyncSession, since: datetime | None = None, until: datetime | None = None
                   ) -> list[OverviewRow]:
    """Stations with any consultation or settled booking in [since, until), by code; the city's questions
    last."""
    figs = {f.station_id: f for f in await consultations.figures(session, since, until)}
    rates = {r.id: r for r in await bookings.no_show_rates(session, "station", since, until)}
    ids = sorted({i for i in figs if i is not None} | set(rates))
    full = {sid: (code, name) for sid, code, name in (await session.execute(
        select(Station.id, Station.code, Station.name).where(Station.id.in_(ids)))).all()} if ids else {}
    rows = []
    order: list[int | None] = [*sorted(ids, key=lambda i: full.get(i, ("", ""))[0]), *([None] if None in figs else [])]
    for sid in order:
        f, r = figs.get(sid), rates.get(sid) if sid is not None else None
        code, name = full.get(sid, ("", "")) if sid is not None else ("", "")
        rows.append(OverviewRow(
            station_id=sid, code=code, name=name, questions=f.questions if f else 0,
            answered=f.answered if f else 0, median_minutes=f.median_minutes if f else None,
            p90_minutes=f.p90_minutes if f else None, escalated=f.escalated if f else 0,
            ratings=f.ratings if f else 0, rating_avg=f.rating_avg if f else None,
            settled=r.settled if r else 0, no_shows=r.no_shows if r else 0))
    return rows
