"""The city at a glance, for admins (`/admin`, issue 11): coverage of talents, check-ins per district and
month, stations without next month's plan, and what is waiting for an admin (held visits, dead letters).

Promises: read-only; aggregates only (counts per district, station codes and names), no talent's name,
phone or openid; a few GROUP BY queries whatever the city's size (no per-station loop).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import periods
from scoring.models import Activity, DeadLetter, Flag, Station, Talent, Visit

CHART_MONTHS: Final = 6
UNKNOWN_DISTRICT: Final = "—"


@dataclass(frozen=True)
class Coverage:
    district: str
    registered: int
    bound: int

    @property
    def rate(self) -> float:
        return self.bound / self.registered if self.registered else 0.0


@dataclass(frozen=True)
class Checkins:
    months: list[str]  # oldest first
    districts: list[str]  # busiest first
    counts: dict[str, dict[str, int]]  # district -> month -> accepted check-ins

    @property
    def peak(self) -> int:
        return max((n for by in self.counts.values() for n in by.values()), default=0)


@dataclass(frozen=True)
class Unplanned:
    code: str
    name: str
    district: str


@dataclass(frozen=True)
class CityView:
    coverage: list[Coverage]
    checkins: Checkins
    plan_month: str
    without_plan: list[Unplanned]
    held_visits: int
    dead_letters: int

    @property
    def coverage_total(self) -> Coverage:
        return Coverage("", sum(c.registered for c in self.coverage), sum(c.bound for c in self.coverage))


async def coverage(session: AsyncSession) -> list[Coverage]:
    """Registered and bound talents per district (annex 3.1: aim for full coverage), by district."""
    rows = (await session.execute(select(Talent.county, func.count(Talent.id), func.count(Talent.openid))
                                  .group_by(Talent.county))).all()
    merged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for county, registered, bound in rows:
        key = county or UNKNOWN_DISTRICT
        merged[key][0] += int(registered)
        merged[key][1] += int(bound)
    return [Coverage(d, r, b) for d, (r, b) in sorted(merged.items())]


def months_up_to(now: datetime, n: int) -> list[str]:
    keys = [periods.month_key(now)]
    while len(keys) < n:
        keys.append(periods.previous_month(keys[-1]))
    return keys[::-1]


async def checkins(session: AsyncSession, now: datetime, n_months: int = CHART_MONTHS) -> Checkins:
    """Accepted check-ins per station district and local month, for the last `n_months` months."""
    months = months_up_to(now, n_months)
    first = periods.Period("month", months[0]).bounds()[0]
    assert first is not None
    first_day = periods.local_day(first)
    rows = (await session.execute(
        select(Station.county, Visit.local_day, func.count(Visit.id))
        .join(Station, Station.id == Visit.station_id)
        .where(Visit.status == "accepted", Visit.local_day >= first_day)
        .group_by(Station.county, Visit.local_day))).all()
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(months, 0))
    for county, day, n in rows:
        key = f"{day.year:04d}-{day.month:02d}"
        if key in months:
            counts[county or UNKNOWN_DISTRICT][key] += int(n)
    districts = sorted(counts, key=lambda d: (-sum(counts[d].values()), d))
    return Checkins(months, districts, {d: dict(counts[d]) for d in districts})


async def without_plan(session: AsyncSession, month: str) -> list[Unplanned]:
    """Active stations with no plan for `month` (SPEC 3: activities in the month published before its
    first day), by district and code."""
    start, end = periods.Period("month", month).bounds()
    planned = select(Activity.id).where(and_(
        Activity.station_id == Station.id, Activity.status == "published", Activity.starts_at >= start,
        Activity.starts_at < end, Activity.published_at < start)).exists()
    rows = (await session.execute(select(Station.code, Station.name, Station.county)
                                  .where(Station.status == "active", ~planned)
                                  .order_by(Station.county, Station.code))).all()
    return [Unplanned(code, name, county) for code, name, county in rows]


async def waiting(session: AsyncSession) -> tuple[int, int]:
    """(held visits, dead letters) waiting for an admin: open holds and unresolved dead letters."""
    held = await session.scalar(select(func.count(Flag.id)).where(Flag.hold.is_(True), Flag.status == "open"))
    dead = await session.scalar(select(func.count(DeadLetter.id)).where(DeadLetter.resolved_at.is_(None)))
    return int(held or 0), int(dead or 0)


async def city_view(session: AsyncSession, now: datetime) -> CityView:
    plan_month = periods.next_month(periods.month_key(now))
    held, dead = await waiting(session)
    return CityView(coverage=await coverage(session), checkins=await checkins(session, now), plan_month=plan_month,
                    without_plan=await without_plan(session, plan_month), held_visits=held, dead_letters=dead)
