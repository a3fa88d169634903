"""Boards from SQL: the ledger summed per account and period, then ranked (scoring.ranking).

Station boards count only eligible, active stations (SPEC 3): for a year or month, stations certified
before that year; for the total board, entries from each station's `eligible_from`. A station's year
board uses its scoring window, which extensions move (scoring.periods.scoring_window). Talent boards
(total, year) count points earned: redemptions are spending, not points, and are left out.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.clock import utcnow
from scoring.models import Entry, Extension, Station, Talent
from scoring.periods import Period, scoring_window
from scoring.ranking import Ranked, Standing, rank

EARNED = Entry.fact_kind != "redemption"


def _sums(stmt: Select[Any]) -> Select[Any]:
    return stmt.add_columns(func.sum(Entry.amount), func.max(Entry.occurred_at))


async def extension_days(session: AsyncSession, years: list[int]) -> dict[tuple[int, int], int]:
    """{(station_id, year): days} for the given years (days of several grants add up)."""
    rows = (await session.execute(select(Extension.station_id, Extension.year, func.sum(Extension.days))
                                  .where(Extension.year.in_(years))
                                  .group_by(Extension.station_id, Extension.year))).all()
    return {(sid, y): int(d) for sid, y, d in rows}


async def station_year_sums(
    session: AsyncSession, year: int, station_ids: list[int] | None = None
) -> dict[int, tuple[int, datetime | None]]:
    """{station_id: (points, reached_at)} for `year`, honouring each station's extended window."""
    start, end = Period("year", str(year)).bounds()
    stmt = _sums(select(Entry.station_id)).where(
        Entry.station_id.is_not(None), Entry.occurred_at >= start, Entry.occurred_at < end)
    if station_ids is not None:
        stmt = stmt.where(Entry.station_id.in_(station_ids))
    sums = {sid: (int(p), at) for sid, p, at in (await session.execute(stmt.group_by(Entry.station_id))).all()}
    ext = await extension_days(session, [year - 1, year])
    for sid in {sid for sid, _ in ext}:
        if station_ids is not None and sid not in station_ids:
            continue
        w_start, w_end = scoring_window(year, ext.get((sid, year), 0), ext.get((sid, year - 1), 0))
        row = (await session.execute(_sums(select()).where(
            Entry.station_id == sid, Entry.occurred_at >= w_start, Entry.occurred_at < w_end))).one()
        if row[0] is None:
            sums.pop(sid, None)
        else:
            sums[sid] = (int(row[0]), row[1])
    return sums


async def station_sums(session: AsyncSession, period: Period) -> dict[int, tuple[int, datetime | None]]:
    if period.kind == "year":
        assert period.year is not None
        return await station_year_sums(session, period.year)
    if period.kind == "month":
        start, end = period.bounds()
        stmt = _sums(select(Entry.station_id)).where(
            Entry.station_id.is_not(None), Entry.occurred_at >= start, Entry.occurred_at < end)
    else:
        stmt = _sums(select(Entry.station_id)).join(Station, Station.id == Entry.station_id).where(
            Entry.occurred_at >= Station.eligible_from)
    rows = (await session.execute(stmt.group_by(Entry.station_id))).all()
    return {sid: (int(p), at) for sid, p, at in rows}


class StationDates(Protocol):
    status: str
    certified_on: date
    eligible_from: datetime


def station_eligible(station: StationDates, period: Period, now: datetime) -> bool:
    if station.status != "active":
        return False
    if period.year is None:
        return station.eligible_from <= now
    return station.certified_on.year < period.year


async def station_board(
    session: AsyncSession, period: Period, *, now: datetime | None = None, station_type: str | None = None
) -> list[Ranked]:
    """Every eligible active station, with 0 when it has no entry in the period."""
    now = now or utcnow()
    sums = await station_sums(session, period)
    # Plain rows, not ORM objects, and eligibility (station_eligible) decided in SQL, so that no date is
    # parsed: a city has 10^3-10^4 stations and this runs for every board.
    stmt = select(Station.id, Station.code, Station.name).where(_eligible(period, now, station_type))
    standings = []
    none = (0, None)
    for sid, code, name in (await session.execute(stmt)).all():
        points, reached = sums.get(sid, none)
        standings.append(Standing(sid, code, name, points, reached))
    return rank(standings)


# -- the top of a board and one station's line, without ranking every station -----------------------------
#
# The whole board above loads every active station and ranks them in Python: a city's 10^3-10^4 rows for
# every call, far more than the GROUP BY itself when a month has just begun. The top N and a station's own
# line need neither: the GROUP BY stays in the database (over the period's range of ix_entries_station_time),
# joined to the stations it may rank, and only N rows (or one count) come back. Same order, same ranks:
# tests/scoring/test_boards_top.py compares them with station_board line by line.


def _eligible(period: Period, now: datetime, station_type: str | None) -> ColumnElement[bool]:
    """station_eligible() as SQL."""
    cond = and_(Station.status == "active", Station.eligible_from <= now if period.year is None
                else Station.certified_on < date(period.year, 1, 1))
    return and_(cond, Station.type == station_type) if station_type is not None else cond


def _in_period(period: Period) -> ColumnElement[bool]:
    if period.kind == "total":
        return Entry.occurred_at >= Station.eligible_from
    start, end = period.bounds()
    return and_(Entry.occurred_at >= start, Entry.occurred_at < end)


async def _windowed(session: AsyncSession, period: Period) -> bool:
    """A year some station's extension moves (its own window): those take station_board's way."""
    if period.kind != "year":
        return False
    assert period.year is not None
    return bool(await session.scalar(select(func.count()).select_from(Extension).where(
        Extension.year.in_([period.year - 1, period.year]))))


def _sums_subquery(period: Period) -> Any:
    stmt = select(Entry.station_id.label("station_id"), func.sum(Entry.amount).label("points"),
                  func.max(Entry.occurred_at).label("reached"))
    if period.kind == "total":
        stmt = stmt.join(Station, Station.id == Entry.station_id)
    else:
        stmt = stmt.where(Entry.station_id.is_not(None))
    return stmt.where(_in_period(period)).group_by(Entry.station_id).subquery("sums")


def _key(s: Standing) -> tuple[int, datetime, str]:
    return -s.points, s.reached_at or datetime.max, s.code


def _ranked_prefix(standings: list[Standing]) -> list[Ranked]:
    """Competition ranks of the first lines of a board, already in display order."""
    out: list[Ranked] = []
    for i, s in enumerate(standings):
        out.append(Ranked(out[-1].rank if out and out[-1].standing.points == s.points else i + 1, s))
    return out


async def station_top(session: AsyncSession, period: Period, limit: int, *, now: datetime | None = None,
                      station_type: str | None = None) -> list[Ranked]:
    """The first `limit` lines of station_board(...), the same lines and ranks."""
    now = now or utcnow()
    if limit <= 0:
        return []
    if await _windowed(session, period):
        return (await station_board(session, period, now=now, station_type=station_type))[:limit]
    sums = _sums_subquery(period)
    scored = [Standing(sid, code, name, int(p), at) for sid, code, name, p, at in (await session.execute(
        select(Station.id, Station.code, Station.name, sums.c.points, sums.c.reached)
        .join(sums, sums.c.station_id == Station.id).where(_eligible(period, now, station_type))
        .order_by(sums.c.points.desc(), sums.c.reached, Station.code).limit(limit))).all()]
    if len(scored) == limit and scored[-1].points > 0:
        return _ranked_prefix(scored)
    # Stations without an entry in the period (0 points, no reached-at) come after every positive line and
    # the 0-point lines with entries, by code; the first few of them are enough.
    if period.kind == "total":
        entered = and_(Entry.station_id == Station.id, Entry.occurred_at >= Station.eligible_from)
    else:
        start, end = period.bounds()
        entered = and_(Entry.station_id == Station.id, Entry.occurred_at >= start, Entry.occurred_at < end)
    idle = [Standing(sid, code, name, 0, None) for sid, code, name in (await session.execute(
        select(Station.id, Station.code, Station.name).where(_eligible(period, now, station_type), ~exists(
            select(Entry.id).where(entered))).order_by(Station.code).limit(limit))).all()]
    return _ranked_prefix(sorted(scored + idle, key=_key)[:limit])


async def station_rank(session: AsyncSession, station_id: int, period: Period, *, now: datetime | None = None,
                       station_type: str | None = None) -> Ranked | None:
    """The station's line on station_board(...) (its rank, points, reached-at); None when it is not ranked
    there (not eligible, delisted, of another type)."""
    now = now or utcnow()
    st = (await session.execute(select(Station.id, Station.code, Station.name).where(
        Station.id == station_id, _eligible(period, now, station_type)))).one_or_none()
    if st is None:
        return None
    if await _windowed(session, period):
        return next((r for r in await station_board(session, period, now=now, station_type=station_type)
                     if r.standing.id == station_id), None)
    own = select(func.sum(Entry.amount), func.max(Entry.occurred_at)).where(Entry.station_id == station_id)
    if period.kind == "total":
        own = own.join(Station, Station.id == Entry.station_id)
    points_raw, reached = (await session.execute(own.where(_in_period(period)))).one()
    points = int(points_raw or 0)
    sums = _sums_subquery(period)
    ranked_with = select(func.count()).select_from(Station).join(sums, sums.c.station_id == Station.id).where(
        _eligible(period, now, station_type))
    above = int(await session.scalar(ranked_with.where(sums.c.points > points)) or 0)
    if points < 0:  # stations without entries (0 points) are above it too
        everyone = int(await session.scalar(select(func.count()).select_from(Station).where(
            _eligible(period, now, station_type))) or 0)
        above += everyone - int(await session.scalar(ranked_with) or 0)
    return Ranked(above + 1, Standing(st.id, st.code, st.name, points, reached))


async def talent_board(session: AsyncSession, period: Period, *, limit: int | None = None) -> list[Ranked]:
    """Talents with points earned in the period (total or year), ranked; `code` is the cert_no."""
    stmt = _sums(select(Entry.talent_id)).where(Entry.talent_id.is_not(None), EARNED)
    if period.kind == "month" or period.kind == "year":
        start, end = period.bounds()
        stmt = stmt.where(Entry.occurred_at >= start, Entry.occurred_at < end)
    rows = (await session.execute(stmt.group_by(Entry.talent_id))).all()
    names = {tid: (cert, name) for tid, cert, name in (await session.execute(
        select(Talent.id, Talent.cert_no, Talent.name).where(Talent.id.in_([r[0] for r in rows])))).all()
    } if len(rows) < 30_000 else {tid: (cert, name) for tid, cert, name in (await session.execute(
        select(Talent.id, Talent.cert_no, Talent.name))).all()}
    ranked = rank([Standing(tid, *names[tid], int(p), at) for tid, p, at in rows])
    return ranked[:limit] if limit is not None else ranked


async def talent_points(session: AsyncSession, talent_id: int, now: datetime | None = None) -> dict[str, int]:
    """{"total", "year", "month", "balance"} for one talent (balance = points minus redemptions)."""
    now = now or utcnow()
    out: dict[str, int] = defaultdict(int)
    y_start, y_end = Period.parse("year", now=now).bounds()
    m_start, m_end = Period.parse("month", now=now).bounds()
    rows = (await session.execute(select(Entry.amount, Entry.fact_kind, Entry.occurred_at).where(
        Entry.talent_id == talent_id))).all()
    for amount, kind, at in rows:
        out["balance"] += amount
        if kind == "redemption":
            continue
        out["total"] += amount
        if y_start is not None and y_end is not None and y_start <= at < y_end:
            out["year"] += amount
        if m_start is not None and m_end is not None and m_start <= at < m_end:
            out["month"] += amount
    return {k: out[k] for k in ("total", "year", "month", "balance")}


async def station_points(session: AsyncSession, station_id: int, now: datetime | None = None) -> dict[str, int]:
    """{"total", "year", "month"}: everything the station earned (eligible or not), current periods."""
    now = now or utcnow()
    year = Period.parse("year", now=now)
    month = Period.parse("month", now=now)
    total = await session.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).where(
        Entry.station_id == station_id))
    assert year.year is not None
    y = (await station_year_sums(session, year.year, [station_id])).get(station_id, (0, None))[0]
    m_start, m_end = month.bounds()
    m = await session.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).where(
        Entry.station_id == station_id, Entry.occurred_at >= m_start, Entry.occurred_at < m_end))
    return {"total": int(total or 0), "year": y, "month": int(m or 0)}
