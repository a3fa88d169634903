"""Small builders for test data (plain inserts through the models)."""

from __future__ import annotations

import itertools
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from scoring import periods
from scoring.models import Station, Talent, Visit

_n = itertools.count(1)


async def station(session: AsyncSession, code: str | None = None, *, certified_on: date = date(2020, 5, 1),
                  kind: str = "home", type: str = "comprehensive", name: str | None = None,
                  status: str = "active", stars: int = 3) -> Station:
    code = code or f"S{next(_n):04d}"
    st = Station(code=code, name=name or f"站点{code}", kind=kind, type=type, county="鲤城区",
                 certified_on=certified_on, eligible_from=periods.eligible_from(certified_on),
                 status=status, stars=stars)
    session.add(st)
    await session.flush()
    return st


async def talent(session: AsyncSession, cert_no: str | None = None, *, openid: str | None = None,
                 name: str = "张三") -> Talent:
    cert_no = cert_no or f"QZ{next(_n):06d}"
    t = Talent(cert_no=cert_no, name=name, openid=openid)
    session.add(t)
    await session.flush()
    return t


async def visit(session: AsyncSession, talent: Talent, station: Station, at: datetime) -> Visit:
    """An accepted visit at `at` (naive UTC)."""
    day = periods.local_day(at)
    v = Visit(openid=talent.openid or f"o{talent.id}", talent_id=talent.id, station_id=station.id,
              source="station", scanned_at=at, local_day=day, status="accepted",
              credit_key=f"{talent.id}:{station.id}:{day.isoformat()}")
    session.add(v)
    await session.flush()
    return v
