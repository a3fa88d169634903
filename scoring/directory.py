"""What the public sees of the stations (issue 11, the window): the directory, a station's card, the boards
with the station's public fields, the featured stations and the published activities. Read-only; the web
views call these and hold no SQL.

Promises
- Board rows come from the live boards (scoring.live.station_board: the same points, order and ties as
  `talenthome board`, SPEC 3); delisted stations and stations not yet eligible are absent. Filtering by
  type or district selects rows of the city board: a row keeps its city rank.
- A station is "featured" when it is on this month's carousel (a month close named it for this month).
- Delisted stations are not in the directory and have no card.
- No personal data: nothing here returns a talent.
- Free seats count active sign-ups and walk-in attendances, as scoring.visits.seats_taken; sign-up is open
  until the activity starts and while a seat is free (scoring.signups).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

from redis.asyncio import Redis
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import boards, live, periods
from scoring.models import Activity, Attendance, BoardSnapshot, Entry, MonthClose, Signup, Station
from scoring.periods import Period
from scoring.services import ServiceView, card_services, duties_of

KINDS: Final = ("home", "community")
TYPES: Final = ("comprehensive", "industry", "professional", "service")
BOARD_KINDS: Final = ("total", "year", "month")
CHART_MONTHS: Final = 12


class StationInfo(NamedTuple):  # a tuple: 10^4 of them are made for every board
    id: int
    code: str
    name: str
    kind: str
    type: str
    district: str
    stars: int
    address: str
    opening_hours: str
    status: str


def _info(row: Station) -> StationInfo:
    return StationInfo(row.id, row.code, row.name, row.kind, row.type, row.county, row.stars, row.address,
                       row.opening_hours, row.status)


def _row_info(r: Any) -> StationInfo:
    return StationInfo._make(r)


_INFO_COLUMNS = (Station.id, Station.code, Station.name, Station.kind, Station.type, Station.county, Station.stars,
                 Station.address, Station.opening_hours, Station.status)


async def station_infos(session: AsyncSession, ids: list[int] | None = None) -> dict[int, StationInfo]:
    """Public fields of the stations with `ids` (every station when None), by id."""
    stmt = select(*_INFO_COLUMNS)
    if ids is not None:
        if not ids:
            return {}
        stmt = stmt.where(Station.id.in_(sorted(set(ids))))
    return {r[0]: _row_info(r) for r in (await session.execute(stmt)).all()}


async def featured_ids(session: AsyncSession, month: str) -> list[int]:
    """The stations on the carousel in `month` ("YYYY-MM"): the one each month close named for it."""
    rows = await session.scalars(select(MonthClose.featured_station_id).where(
        MonthClose.featured_month == month, MonthClose.featured_station_id.is_not(None)))
    return sorted({sid for sid in rows.all() if sid is not None})


# -- boards ------------------------------------------------------------------------------------------


class BoardRow(NamedTuple):
    rank: int
    code: str
    name: str
    kind: str
    type: str
    district: str
    stars: int
    points: int
    featured: bool


@dataclass(frozen=True)
class Stations:
    """A copy of the stations a board is ranked from and shown with, and the fingerprint it was read at."""

    fingerprint: tuple[Any, ...]
    active: list[Any]  # scoring.live.active_stations()
    infos: dict[int, StationInfo]


async def stations_fingerprint(session: AsyncSession) -> tuple[Any, ...]:
    """Changes whenever a station is added or changed (`updated_at` is set on every update): one aggregate."""
    row = (await session.execute(select(func.count(Station.id), func.max(Station.id),
                                        func.max(Station.updated_at)))).one()
    return tuple(row)


async def board_version(session: AsyncSession, redis: Redis, now: datetime) -> tuple[Any, ...] | None:
    """Changes whenever what board() returns may have: an entry added to the live boards or a rebuild
    (live.version), a station added or changed, the featured station, the day (eligibility). None when it
    cannot tell (the live boards are not built): compute the board again."""
    counted = await live.version(redis)
    if counted is None:
        return None
    return (counted, await stations_fingerprint(session), tuple(await featured_ids(session, periods.month_key(now))),
            periods.local_day(now))


async def load_stations(session: AsyncSession) -> Stations:
    fingerprint = await stations_fingerprint(session)
    return Stations(fingerprint, await live.active_stations(session), await station_infos(session))


async def board(session: AsyncSession, redis: Redis, period: Period, *, now: datetime,
                stations: Stations | None = None) -> list[BoardRow]:
    """The whole station board of `period` in display order, from the live boards, with public fields.
    `stations`: the caller's copy (load_stations; keep it while stations_fingerprint is unchanged)."""
    stations = stations or await load_stations(session)
    ranked = await live.station_board(session, redis, period, now=now, stations=stations.active)
    infos = stations.infos
    featured = set(await featured_ids(session, periods.month_key(now)))
    out = []
    for r in ranked:
        info = infos[r.standing.id]
        out.append(BoardRow(r.rank, info.code, info.name, info.kind, info.type, info.district, info.stars,
                            r.points, info.id in featured))
    return out


def filter_rows(rows: list[BoardRow], *, station_type: str | None = None,
                district: str | None = None) -> list[BoardRow]:
    """Rows of one type and/or district; each keeps its rank on the city board."""
    return [r for r in rows if (station_type is None or r.type == station_type)
            and (district is None or r.district == district)]


# -- directory ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    items: list[StationInfo]
    total: int


async def directory(session: AsyncSession, *, district: str | None = None, station_type: str | None = None,
                    kind: str | None = None, text: str | None = None, limit: int = 20,
                    offset: int = 0) -> Listing:
    """Active stations, by code, filtered by district, type, kind and a text found in the code, the name or
    the address."""
    where = [Station.status == "active"]
    if district:
        where.append(Station.county == district)
    if station_type:
        where.append(Station.type == station_type)
    if kind:
        where.append(Station.kind == kind)
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(Station.code.ilike(pattern, escape="\\"), Station.name.ilike(pattern, escape="\\"),
                         Station.address.ilike(pattern, escape="\\")))
    total = int(await session.scalar(select(func.count(Station.id)).where(*where)) or 0)
    rows = (await session.execute(select(*_INFO_COLUMNS).where(*where).order_by(Station.code)
                                  .limit(limit).offset(offset))).all()
    return Listing([_row_info(r) for r in rows], total)


async def districts(session: AsyncSession) -> list[str]:
    """The districts that have an active station, sorted."""
    rows = await session.scalars(select(Station.county).where(Station.status == "active").distinct())
    return sorted(d for d in rows.all() if d)


# -- featured ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeaturedMonth:
    month: str  # the month the station is (was) on the carousel
    closed: str  # the month whose board made it first
    station: StationInfo | None  # None: that month had no station with points


@dataclass(frozen=True)
class Featured:
    month: str
    current: list[StationInfo]
    past: list[FeaturedMonth]
    total_past: int


async def featured(session: AsyncSession, now: datetime, *, limit: int = 20, offset: int = 0) -> Featured:
    """This month's featured station(s) and the past months', newest first."""
    month = periods.month_key(now)
    current_ids = await featured_ids(session, month)
    where = (MonthClose.featured_month < month,)
    total = int(await session.scalar(select(func.count()).select_from(MonthClose).where(*where)) or 0)
    rows = (await session.execute(select(MonthClose.featured_month, MonthClose.period, MonthClose.featured_station_id)
                                  .where(*where).order_by(MonthClose.featured_month.desc())
                                  .limit(limit).offset(offset))).all()
    infos = await station_infos(session, [*current_ids, *(sid for _, _, sid in rows if sid is not None)])
    return Featured(month, [infos[i] for i in current_ids if i in infos],
                    [FeaturedMonth(m, p, infos.get(sid) if sid is not None else None) for m, p, sid in rows], total)


# -- activities --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivityView:
    id: int
    station_code: str
    station_name: str
    title: str
    theme: str
    starts_at: datetime
    ends_at: datetime
    capacity: int | None
    taken: int
    signup_open: bool
    category: str = "other"  # scoring.services.CATEGORIES

    @property
    def free_seats(self) -> int | None:
        return None if self.capacity is None else max(0, self.capacity - self.taken)


async def seats_taken(session: AsyncSession, activity_ids: list[int]) -> dict[int, int]:
    """{activity id: seats taken} (active sign-ups plus walk-in attendances) for many activities at once."""
    if not activity_ids:
        return {}
    talents: dict[int, set[int]] = defaultdict(set)
    for aid, tid in (await session.execute(select(Signup.activity_id, Signup.talent_id).where(
            Signup.activity_id.in_(activity_ids), Signup.cancelled_at.is_(None)))).all():
        talents[aid].add(tid)
    for aid, tid in (await session.execute(select(Attendance.activity_id, Attendance.talent_id).where(
            Attendance.activity_id.in_(activity_ids)))).all():
        talents[aid].add(tid)
    return {aid: len(talents[aid]) for aid in activity_ids}


@dataclass(frozen=True)
class ActivityList:
    items: list[ActivityView]
    total: int


async def activities(session: AsyncSession, *, now: datetime, station_code: str | None = None,
                     start: datetime | None = None, end: datetime | None = None, limit: int = 20,
                     offset: int = 0, category: str | None = None) -> ActivityList:
    """Published activities of active stations starting in [start, end) (start defaults to now: upcoming),
    of `category` when given, soonest first, with seats taken and whether sign-up is open."""
    where = [Activity.status == "published", Station.status == "active",
             Activity.starts_at >= (start if start is not None else now)]
    if end is not None:
        where.append(Activity.starts_at < end)
    if station_code is not None:
        where.append(Station.code == station_code)
    if category is not None:
        where.append(Activity.category == category)
    base = select(Activity.id).join(Station, Station.id == Activity.station_id).where(*where)
    total = int(await session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    rows = (await session.execute(
        select(Activity.id, Station.code, Station.name, Activity.title, Activity.theme, Activity.starts_at,
               Activity.ends_at, Activity.capacity, Activity.category)
        .join(Station, Station.id == Activity.station_id).where(*where)
        .order_by(Activity.starts_at, Activity.id).limit(limit).offset(offset))).all()
    taken = await seats_taken(session, [r[0] for r in rows])
    items = []
    for aid, code, sname, title, theme, s, e, cap, category in rows:
        n = taken.get(aid, 0)
        items.append(ActivityView(aid, code, sname, title, theme or "", s, e, cap, n,
                                  signup_open=now < s and (cap is None or n < cap), category=category))
    return ActivityList(items, total)


# -- a station's card --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    rank: int | None  # None: not ranked (not yet eligible, or not in this period)
    points: int


@dataclass(frozen=True)
class MonthPoint:
    month: str
    points: int
    rank: int | None
    closed: bool  # from the month close's snapshot (final) or the live board (the month still runs)


class _Line(NamedTuple):
    rank: int
    points: int


@dataclass(frozen=True)
class StationCard:
    info: StationInfo
    eligible: bool
    featured_now: bool
    featured_months: list[str]
    ranks: dict[str, Standing]  # total, year, month (current periods)
    months: list[MonthPoint]  # the last 12 months, oldest first
    activities: list[ActivityView]
    services: list[ServiceView] = field(default_factory=list)  # the common list, then the station's own
    duties: str = ""  # the station's written service duties (服务职责)


def last_months(now: datetime, n: int = CHART_MONTHS) -> list[str]:
    """The `n` months up to and including now's, oldest first."""
    keys = [periods.month_key(now)]
    while len(keys) < n:
        keys.append(periods.previous_month(keys[-1]))
    return keys[::-1]


async def _month_points(session: AsyncSession, station_id: int, months: list[str]) -> dict[str, int]:
    start = Period("month", months[0]).bounds()[0]
    rows = (await session.execute(select(Entry.amount, Entry.occurred_at).where(
        Entry.station_id == station_id, Entry.occurred_at >= start))).all()
    out: dict[str, int] = defaultdict(int)
    for amount, at in rows:
        out[periods.month_key(at)] += amount
    return out


BoardOf = Callable[[Period], Awaitable[list[BoardRow] | None]]


async def station_card(session: AsyncSession, redis: Redis, code: str, *, now: datetime,
                       activity_limit: int = 20, board_of: BoardOf | None = None) -> StationCard | None:
    """The public card of an active station, or None (unknown or delisted). `board_of`: where to read a
    period's board from (a caller that keeps ranked boards, e.g. the web's cache; None: not kept); else each
    is ranked now, in this session."""
    row = await session.scalar(select(Station).where(Station.code == code))
    if row is None or row.status != "active":
        return None
    info = _info(row)

    async def standing_in(period: Period) -> _Line | None:
        kept = await board_of(period) if board_of is not None else None
        if kept is not None:
            return next((_Line(r.rank, r.points) for r in kept if r.code == code), None)
        found = await live.station_standing(session, redis, row.id, period, now=now)
        return _Line(found.rank, found.points) if found is not None else None

    ranks: dict[str, Standing] = {}
    standings: dict[str, _Line | None] = {}
    for kind in BOARD_KINDS:
        standings[kind] = await standing_in(Period.parse(kind, now=now))
    months = last_months(now)
    sql_points = await _month_points(session, row.id, months)
    snap = {p: (rank, points) for p, rank, points in (await session.execute(
        select(BoardSnapshot.period, BoardSnapshot.rank, BoardSnapshot.points).where(
            BoardSnapshot.scope == "station", BoardSnapshot.kind == "month", BoardSnapshot.account_id == row.id,
            BoardSnapshot.period.in_(months)))).all()}
    closed = set((await session.scalars(select(MonthClose.period).where(MonthClose.period.in_(months)))).all())
    chart = []
    for m in months:
        if m in snap:
            rank, points = snap[m]
            chart.append(MonthPoint(m, points, rank, True))
        elif m == months[-1]:
            current = standings["month"]
            chart.append(MonthPoint(m, current.points if current else sql_points.get(m, 0),
                                    current.rank if current else None, False))
        elif m in closed:  # closed without this station on the board (not eligible then)
            chart.append(MonthPoint(m, sql_points.get(m, 0), None, True))
        else:  # a month not closed yet (the close runs at 00:00 on day 1): its live board
            standing = await standing_in(Period("month", m))
            chart.append(MonthPoint(m, standing.points if standing else sql_points.get(m, 0),
                                    standing.rank if standing else None, False))
    unranked = [k for k in BOARD_KINDS if standings[k] is None]
    points_now = await boards.station_points(session, row.id, now) if unranked else {}
    for kind in BOARD_KINDS:
        s = standings[kind]
        ranks[kind] = Standing(s.rank, s.points) if s else Standing(None, points_now.get(kind, 0))
    featured_months = list((await session.scalars(select(MonthClose.featured_month).where(
        MonthClose.featured_station_id == row.id).order_by(MonthClose.featured_month))).all())
    upcoming = await activities(session, now=now, station_code=code, limit=activity_limit)
    return StationCard(info, eligible=row.eligible_from <= now,
                       featured_now=periods.month_key(now) in featured_months, featured_months=featured_months,
                       ranks=ranks, months=chart, activities=upcoming.items,
                       services=await card_services(session, row.id), duties=await duties_of(session, row.id))
