"""Builders for the scoring tests' facts (activities, reports, surveys, gifts, redemptions, extensions).

tests/factories.py holds the shared ones (station, talent, visit); these are the ledger tests' own.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import ledger, periods
from scoring.facts import visit as visit_fact
from scoring.facts.common import Applied, Refused
from scoring.models import (
    Activity,
    Attendance,
    Base,
    Entry,
    Extension,
    Gift,
    MediaReport,
    PublicityReport,
    Redemption,
    Station,
    SurveyResult,
    Talent,
    Visit,
)
from tests.conftest import new_pg_database, new_sqlite_database

# -- databases ----------------------------------------------------------------------------------------
# The shared `db_url` fixture makes a PostgreSQL database per test with CREATE DATABASE ... TEMPLATE, which
# costs about half a second here. These modules reuse one PostgreSQL database per test session instead and
# empty it before each test (DELETE every table, restart every sequence: about 50 ms), which leaves it as
# fresh as a new copy of the template.
_reusable: dict[int, str] = {}


async def _reset_pg(url: str, port: int) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=make_url(url).database)
    try:
        seqs = [r[0] for r in await conn.fetch("SELECT sequencename FROM pg_sequences")]
        await conn.execute(";".join([f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables)]
                                    + [f'ALTER SEQUENCE "{q}" RESTART' for q in seqs]))
    finally:
        await conn.close()


async def clean_pg_url(server: Any) -> str:
    url = _reusable.get(id(server))
    if url is None:
        url = _reusable[id(server)] = await new_pg_database(server)
    else:
        await _reset_pg(url, server.port)
    return url


async def clean_db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """For a module's own `db_url` fixture, parametrised over sqlite and postgresql."""
    if request.param == "sqlite":
        return new_sqlite_database(request.getfixturevalue("sqlite_template"), str(tmp_path))
    return await clean_pg_url(request.getfixturevalue("pg_server"))


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    """A local (Asia/Shanghai) wall-clock time as the naive UTC the database stores."""
    return periods.to_utc_naive(datetime(y, mo, d, h, mi, s))


async def activity(session: AsyncSession, station: Station, *, starts_at: datetime,
                   hours: int = 2, published_at: datetime | None = None, status: str = "published") -> Activity:
    a = Activity(station_id=station.id, title="沙龙", starts_at=starts_at,
                 ends_at=starts_at + timedelta(hours=hours),
                 published_at=published_at or starts_at - timedelta(days=3), status=status)
    session.add(a)
    await session.flush()
    return a


async def attend(session: AsyncSession, act: Activity, talent: Talent) -> Attendance:
    att = Attendance(activity_id=act.id, talent_id=talent.id)
    session.add(att)
    await session.flush()
    return att


async def publicity(session: AsyncSession, act: Activity) -> PublicityReport:
    p = PublicityReport(activity_id=act.id, url="https://example.org/news/1")
    session.add(p)
    await session.flush()
    return p


async def media(session: AsyncSession, act: Activity, level: str, *, at: datetime | None = None) -> MediaReport:
    m = MediaReport(activity_id=act.id, level=level, outlet="泉州晚报", url="https://example.org/m",
                    **({"created_at": at} if at is not None else {}))
    session.add(m)
    await session.flush()
    return m


async def survey(session: AsyncSession, station: Station, year: int, amount: int) -> SurveyResult:
    s = SurveyResult(station_id=station.id, year=year, amount=amount, reason="满意度调查",
                     entered_by="admin-1")
    session.add(s)
    await session.flush()
    return s


async def gift(session: AsyncSession, cost: int, stock: int = 1000, name: str = "茶叶") -> Gift:
    g = Gift(name=name, cost=cost, stock=stock)
    session.add(g)
    await session.flush()
    return g


async def redemption(session: AsyncSession, talent: Talent | int, g: Gift | int) -> Redemption:
    tid = talent if isinstance(talent, int) else talent.id
    gid = g if isinstance(g, int) else g.id
    r = Redemption(talent_id=tid, gift_id=gid)
    session.add(r)
    await session.flush()
    return r


async def extension(session: AsyncSession, station: Station, year: int, days: int) -> Extension:
    e = Extension(station_id=station.id, year=year, days=days, reason="疫情", granted_by="admin-1")
    session.add(e)
    await session.flush()
    return e


async def all_entries(session: AsyncSession) -> list[Entry]:
    return list((await session.scalars(select(Entry).order_by(Entry.id))).all())


def certified(year: int, month: int = 6, day: int = 1) -> date:
    return date(year, month, day)


# -- what rules wrote ------------------------------------------------------------------------------------
async def credited(session: AsyncSession, visit: Visit) -> list[Entry]:
    """R3 for one visit without the fraud screen (scoring.facts.visit.credit): the entries it wrote."""
    before = {e.id for e in await ledger.entries_of(session, "visit", [visit.id])}
    await visit_fact.credit(session, [visit.id])
    return [e for e in await ledger.entries_of(session, "visit", [visit.id]) if e.id not in before]


async def reversed_now(session: AsyncSession, entry_ids: list[int], *, actor: str = "admin",
                       reason: str = "test") -> list[Entry]:
    """The reversals that ledger.reverse wrote for these entries (none for those reversed before)."""
    posted = await ledger.reverse(session, entry_ids, actor=actor, reason=reason)
    return [e for e in await ledger.reversals_of(session, entry_ids) if e.key in set(posted.written)]


def written(outcome: Applied | Refused) -> list[Entry]:
    """The entries of an outcome whose fact got all of them from this call (one payment per fact)."""
    return list(outcome.entries) if isinstance(outcome, Applied) and outcome.written else []
