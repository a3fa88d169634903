"""scoring.signups: the list, capacity under concurrency (both databases), closing, cancel and re-signup."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import signups
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import Notification, Signup, Staff
from scoring.signups import Cancelled, SignedUp, SignupRefusal, SignupRefused
from tests import factories as f
from tests.scoring.builders import activity, local

NOW = local(2026, 11, 2, 9, 0)


@pytest.fixture
async def lite(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """SQLite only, for the tests whose SQL is the same on both databases."""
    engine = make_engine(sqlite_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_fifty_concurrent_signups_for_the_last_seat(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
        act = await activity(s, st, starts_at=NOW + timedelta(days=2))
        act.capacity = 3
        talents = [await f.talent(s, openid=f"o{i}") for i in range(52)]
        s.add_all([Signup(activity_id=act.id, talent_id=t.id) for t in talents[:2]])  # 2 of 3 seats taken

    async def one(talent_id: int) -> SignedUp | SignupRefused:
        async with transaction(sessions) as s:
            return await signups.signup(s, talent_id=talent_id, activity_id=act.id, now=NOW)

    results = await asyncio.gather(*[one(t.id) for t in talents[2:]])
    assert sum(isinstance(r, SignedUp) for r in results) == 1
    assert {r.reason for r in results if isinstance(r, SignupRefused)} == {SignupRefusal.FULL}
    async with sessions() as s:
        assert await s.scalar(select(func.count(Signup.id)).where(Signup.cancelled_at.is_(None))) == 3


async def test_full_closed_already_cancel_and_signup_again(lite):
    sessions = lite
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
        act = await activity(s, st, starts_at=NOW + timedelta(days=1))
        act.capacity = 1
        a, b = await f.talent(s, openid="oA"), await f.talent(s, openid="oB")

    async def call(fn, talent, now=NOW):
        async with transaction(sessions) as s:
            return await fn(s, talent_id=talent.id, activity_id=act.id, now=now)

    first = await call(signups.signup, a)
    assert isinstance(first, SignedUp) and first.seats_left == 0
    assert (await call(signups.signup, a)).reason is SignupRefusal.ALREADY
    assert (await call(signups.signup, b)).reason is SignupRefusal.FULL
    assert (await call(signups.cancel, b)).reason is SignupRefusal.NOT_SIGNED_UP
    assert isinstance(await call(signups.cancel, a), Cancelled)
    assert isinstance(await call(signups.signup, b), SignedUp)  # the freed seat
    assert (await call(signups.signup, a)).reason is SignupRefusal.FULL
    assert isinstance(await call(signups.cancel, b), Cancelled)
    again = await call(signups.signup, a)  # re-signup after cancel re-activates the row
    assert isinstance(again, SignedUp) and again.signup.cancelled_at is None
    assert (await call(signups.signup, b, act.starts_at)).reason is SignupRefusal.CLOSED
    assert (await call(signups.cancel, a, act.starts_at)).reason is SignupRefusal.CLOSED
    async with transaction(sessions) as s:
        assert (await signups.signup(s, talent_id=a.id, activity_id=999, now=NOW)).reason is SignupRefusal.NOT_FOUND
        assert await s.scalar(select(func.count(Signup.id))) == 2  # one row per (activity, talent)


async def test_upcoming_lists_every_station_soonest_first_in_pages(lite):
    sessions = lite
    async with transaction(sessions) as s:
        north = await f.station(s, "N1")
        south = await f.station(s, "S1")
        south.county = "晋江市"
        past = await activity(s, north, starts_at=NOW - timedelta(hours=1))
        made = [await activity(s, north if i % 2 else south, starts_at=NOW + timedelta(days=7 - i))
                for i in range(7)]
        voided = await activity(s, north, starts_at=NOW + timedelta(days=1), status="voided")
    async with sessions() as s:
        p1 = await signups.upcoming(s, NOW, 1)
        p2 = await signups.upcoming(s, NOW, 2)
        beyond = await signups.upcoming(s, NOW, 9)
    soonest = [a.id for a in sorted(made, key=lambda a: a.starts_at)]
    assert (p1.total, p1.pages, p1.page) == (7, 2, 1)
    assert [i.id for i in p1.items] + [i.id for i in p2.items] == soonest
    assert {i.station for i in p1.items} == {north.name, south.name}
    assert beyond.page == 2
    assert past.id not in soonest and voided.id not in soonest


async def test_the_domain_decides_who_hears_of_a_signup(lite):
    """With `alerts`, each active operator of the activity's station (and no one else) hears of every new
    sign-up and, once, of the activity becoming full, in the sign-up's transaction; without, no one."""
    sessions = lite
    alerts = signups.OperatorAlerts(signup="{name} #{id} {title} {taken}{cap}", full="full #{id} {title} {cap}")
    async with transaction(sessions) as s:
        st, other = await f.station(s, "ST1"), await f.station(s, "ST2")
        s.add_all([Staff(openid="oOp1", role="operator", station_id=st.id),
                   Staff(openid="oOp2", role="operator", station_id=st.id),
                   Staff(openid="oGone", role="operator", station_id=st.id, active=False),
                   Staff(openid="oOther", role="operator", station_id=other.id),
                   Staff(openid="oAdmin", role="admin")])
        act = await activity(s, st, starts_at=NOW + timedelta(days=1))
        act.capacity = 2
        a, b, c = [await f.talent(s, openid=f"o{n}", name=n) for n in ("甲", "乙", "丙")]

    async def sign(talent, with_alerts=True):
        async with transaction(sessions) as s:
            return await signups.signup(s, talent_id=talent.id, activity_id=act.id, now=NOW,
                                        alerts=alerts if with_alerts else None)

    quiet = await sign(c, with_alerts=False)
    assert isinstance(quiet, SignedUp) and quiet.alerted == 0 and quiet.station == st.name
    async with transaction(sessions) as s:
        await signups.cancel(s, talent_id=c.id, activity_id=act.id, now=NOW)
    first, second = await sign(a), await sign(b)
    assert isinstance(first, SignedUp) and first.alerted == 2
    assert isinstance(second, SignedUp) and second.alerted == 4  # the sign-up and the full activity, to each
    assert (await sign(c)).reason is SignupRefusal.FULL
    async with sessions() as s:
        notes = (await s.execute(select(Notification.key, Notification.openid, Notification.payload)
                                 .order_by(Notification.id))).all()
    assert [(k.split(":")[0], o) for k, o, _ in notes] == [
        ("signup", "oOp1"), ("signup", "oOp2"), ("signup", "oOp1"), ("full", "oOp1"), ("signup", "oOp2"),
        ("full", "oOp2")]
    texts = [json.loads(p)["text"] for _, _, p in notes]
    assert texts[0] == f"甲 #{act.id} {act.title} 1/2" and texts[2] == f"乙 #{act.id} {act.title} 2/2"
    assert texts[3] == f"full #{act.id} {act.title} 2"
