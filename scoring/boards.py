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

from sqlalchemy import Select, func, select
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
    # Plain rows, not ORM objects: a city has 10^3-10^4 stations and this runs for every board.
    stmt = select(Station.id, Station.code, Station.name, Station.status, Station.certified_on,
                  Station.eligible_from).where(Station.status == "active")
    if station_type is not None:
        stmt = stmt.where(Station.type == station_type)
    standings = []
    for st in (await session.execute(stmt)).all():
        if station_eligible(st, period, now):
            points, reached = sums.get(st.id, (0, None))
            standings.append(Standing(st.id, st.code, st.name, points, reached))
    return rank(standings)


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
