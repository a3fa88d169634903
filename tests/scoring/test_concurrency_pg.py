"""Concurrent applications: separate sessions (separate connections), asyncio.gather, real databases."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from scoring import ledger
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts import media, redemption, survey, visit
from scoring.facts.common import Applied, Outcome, Refusal, Refused
from scoring.models import Entry, Gift, Redemption
from tests import factories as f
from tests.scoring import builders as b

NOV = datetime(2026, 11, 2, 3, 0)
N = 50


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    return await b.clean_db_url(request, tmp_path)


@pytest.fixture
async def pg_url(pg_server):
    return await b.clean_pg_url(pg_server)


@pytest.fixture
async def wide_engine(db_url):
    """On PostgreSQL a pool that lets all N sessions hold a connection at once. SQLite lets one writer in
    at a time whatever the pool, and 50 connections would only wait in its busy handler's sleeps: 5."""
    engine = make_engine(db_url, pool_size=5 if db_url.startswith("sqlite") else N, max_overflow=0)
    yield engine
    await engine.dispose()


@pytest.fixture
async def pg_engine(pg_url):
    engine = make_engine(pg_url, pool_size=N, max_overflow=0)
    yield engine
    await engine.dispose()


async def test_fifty_concurrent_applications_of_one_visit_write_one_set_of_entries_on_postgresql(pg_engine):
    sessions = make_sessionmaker(pg_engine)
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        v = await f.visit(s, t, st, NOV)

    async def apply() -> Outcome:
        async with transaction(sessions) as s:
            return await visit.apply(s, v.id)

    results = await asyncio.gather(*(apply() for _ in range(N)))
    assert all(isinstance(r, Applied) and len(r.entries) == 2 for r in results)
    assert sum(r.written == 2 for r in results if isinstance(r, Applied)) == 1
    assert sum(r.already for r in results if isinstance(r, Applied)) == N - 1
    async with sessions() as s:
        rows = (await s.execute(select(Entry.key, Entry.amount, Entry.station_id, Entry.talent_id))).all()
    key = f"visit:{visit.credit_key(t.id, st.id, v.local_day)}"
    assert sorted(tuple(r) for r in rows) == sorted([(key + "#station", 1, st.id, None),
                                                     (key + "#talent", 1, None, t.id)])


async def test_fifty_concurrent_redemptions_never_overdraw(wide_engine):
    sessions = make_sessionmaker(wide_engine)
    balance, cost = 23, 4
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        g = await b.gift(s, cost=cost, stock=N)
        for d in range(balance):
            v = await f.visit(s, t, st, NOV + timedelta(days=d))
            await visit.credit(s, [v.id])
        reds = [await b.redemption(s, t, g) for _ in range(N)]

    async def redeem(rid: int) -> Outcome:
        async with transaction(sessions) as s:
            return await redemption.apply(s, rid)

    results = await asyncio.gather(*(redeem(r.id) for r in reds))
    applied = balance // cost
    assert sum(isinstance(r, Applied) for r in results) == applied
    assert {r.reason for r in results if isinstance(r, Refused)} == {Refusal.BALANCE}
    async with sessions() as s:
        assert await ledger.talent_balance(s, t.id) == balance - applied * cost >= 0
        assert await s.scalar(select(Gift.stock).where(Gift.id == g.id)) == N - applied
        statuses = (await s.execute(select(Redemption.status, func.count()).group_by(Redemption.status))).all()
    assert dict(statuses) == {"applied": applied, "rejected": N - applied}


async def test_fifty_concurrent_applications_of_one_redemption_debit_once(wide_engine):
    sessions = make_sessionmaker(wide_engine)
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        g = await b.gift(s, cost=1, stock=5)
        v = await f.visit(s, t, st, NOV)
        await visit.credit(s, [v.id])
        red = await b.redemption(s, t, g)

    async def redeem() -> Outcome:
        async with transaction(sessions) as s:
            return await redemption.apply(s, red.id)

    results = await asyncio.gather(*(redeem() for _ in range(N)))
    assert all(isinstance(r, Applied) for r in results)
    assert sum(r.written for r in results if isinstance(r, Applied)) == 1
    async with sessions() as s:
        assert await ledger.talent_balance(s, t.id) == 0
        assert await s.scalar(select(Gift.stock).where(Gift.id == g.id)) == 4


async def test_concurrent_survey_results_stay_within_the_cap(wide_engine):
    sessions = make_sessionmaker(wide_engine)
    async with transaction(sessions) as s:
        st = await f.station(s)
        surveys = [await b.survey(s, st, 2026, 10) for _ in range(12)]

    async def apply(sid: int) -> Outcome:
        async with transaction(sessions) as s:
            return await survey.apply(s, sid, now=datetime(2026, 12, 1))

    results = await asyncio.gather(*(apply(sv.id) for sv in surveys))
    assert sum(isinstance(r, Applied) for r in results) == 5
    assert {r.reason for r in results if isinstance(r, Refused)} == {Refusal.SURVEY_CAP}
    async with sessions() as s:
        assert await survey.total(s, st.id, 2026) == 50


async def test_media_payment_is_serialised_by_a_row_lock_on_postgresql(pg_engine):
    """A worker paying media for an activity holds the activity's row lock until it commits, and a second
    worker waits at that lock before it reads what is already paid. Without it the second would read
    "paid 0" while the first is uncommitted, and pay 20 on top of the first's 3.

    The second worker here gives up after lock_timeout instead of waiting, and the test checks where it
    was waiting: at the activity's row lock (not, say, at the report rows the first one marked)."""
    sessions = make_sessionmaker(pg_engine)
    async with transaction(sessions) as s:
        st = await f.station(s)
        act = await b.activity(s, st, starts_at=NOV)
        await b.media(s, act, "county")

    held = act.ends_at + timedelta(days=1)
    first = sessions()
    await first.begin()
    paid_first = await media.apply(first, act.id, now=held)  # holds the lock, not committed yet
    assert isinstance(paid_first, Applied) and [e.amount for e in paid_first.entries] == [3]
    async with transaction(sessions) as s:
        await b.media(s, act, "central")
    with pytest.raises(DBAPIError, match="lock timeout") as blocked:
        async with transaction(sessions) as s:
            await s.execute(text("SET LOCAL lock_timeout = '100ms'"))
            await media.apply(s, act.id, now=held)
    assert "FROM activities" in str(blocked.value.statement)
    assert "FOR NO KEY UPDATE" in str(blocked.value.statement)
    await first.commit()
    await first.close()
    async with transaction(sessions) as s:
        paid_second = await media.apply(s, act.id, now=held)
    assert isinstance(paid_second, Applied) and paid_second.written == 1
    assert [e.amount for e in paid_second.entries] == [3, 17]
    async with sessions() as s:
        total = await s.scalar(select(func.sum(Entry.amount)).where(Entry.station_id == st.id))
    assert total == 20
