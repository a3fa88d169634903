"""scoring.visits on SQLite and PostgreSQL: every reason, batches, races for one credit, activities."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import visits
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts import attendance
from scoring.models import Attendance, Signup, Staff, Visit
from scoring.tokens import station_scene, talent_scene
from scoring.visits import Accepted, Reason, Rejected, Scan
from tests import factories as f
from tests.scoring.builders import activity, local

KEY = b"test-scene-key"
AT = local(2026, 11, 2, 10, 0)


@pytest.fixture
async def lite(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """SQLite only, for the tests whose SQL is the same on both databases."""
    engine = make_engine(sqlite_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def all_visits(sessions) -> list[Visit]:
    async with sessions() as s:
        return list((await s.scalars(select(Visit).order_by(Visit.id))).all())


async def test_each_reason_in_order(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
        await f.station(s, "OLD", status="delisted")
        own = await f.station(s, "OWN")
        t = await f.talent(s, openid="oT")
        await f.talent(s, openid="oStaff")
        s.add(Staff(openid="oStaff", role="operator", station_id=own.id))
    scans = [
        Scan("oT", AT, station_code="ST1"),
        Scan("oT", AT, station_code="ST1"),  # same credit in the same batch
        Scan("oT", AT, station_code="NOPE"),
        Scan("oT", AT, station_code="OLD"),
        Scan("oNobody", AT, station_code="ST1"),
        Scan("oStaff", AT, station_code="OWN"),
        Scan("oT", AT, station_code="ST1", code_error=Reason.EXPIRED_CODE),
        Scan("oT", AT, station_code=None, code_error=Reason.FORGED_CODE),
        Scan("oNobody", AT, station_code="NOPE", code_error=Reason.FORGED_CODE),  # the code is checked first
    ]
    async with transaction(sessions) as s:
        out = await visits.record_visits(s, scans)
    assert isinstance(out[0], Accepted)
    assert [o.reason for o in out[1:] if isinstance(o, Rejected)] == [
        Reason.ALREADY_TODAY, Reason.UNKNOWN_STATION, Reason.STATION_DELISTED, Reason.NOT_BOUND,
        Reason.STAFF_OWN_STATION, Reason.EXPIRED_CODE, Reason.FORGED_CODE, Reason.FORGED_CODE]
    stored = await all_visits(sessions)
    assert len(stored) == len(scans)  # every scan is stored, accepted or not
    accepted = [v for v in stored if v.status == "accepted"]
    assert [(v.talent_id, v.station_id, v.credit_key) for v in accepted] == \
        [(t.id, st.id, f"{t.id}:{st.id}:2026-11-02")]
    assert out[0].job.id == f"visit:{accepted[0].id}"
    unbound = next(v for v in stored if v.reason == "not_bound")
    assert (unbound.talent_id, unbound.station_id, unbound.openid) == (None, st.id, "oNobody")


async def test_one_credit_per_local_day_across_transactions(lite):
    sessions = lite
    async with transaction(sessions) as s:
        await f.station(s, "ST1")
        await f.talent(s, openid="oT")
    days = [local(2026, 11, 2, 0, 0), local(2026, 11, 2, 23, 59, 59), local(2026, 11, 3, 0, 0)]
    results = []
    for at in days:
        async with transaction(sessions) as s:
            results.append(await visits.record_visit(s, Scan("oT", at, station_code="ST1")))
    assert [type(r).__name__ for r in results] == ["Accepted", "Rejected", "Accepted"]
    assert [v.local_day for v in await all_visits(sessions)] == [date(2026, 11, 2)] * 2 + [date(2026, 11, 3)]


async def test_new_year_boundary(lite):
    sessions = lite
    async with transaction(sessions) as s:
        await f.station(s, "ST1")
        await f.talent(s, openid="oT")
    for at in (local(2026, 12, 31, 23, 59, 59), local(2027, 1, 1, 0, 0, 0)):
        async with transaction(sessions) as s:
            assert isinstance(await visits.record_visit(s, Scan("oT", at, station_code="ST1")), Accepted)
    a, b = await all_visits(sessions)
    assert (a.local_day, b.local_day) == (date(2026, 12, 31), date(2027, 1, 1))
    assert a.scanned_at == datetime(2026, 12, 31, 15, 59, 59) and b.scanned_at == datetime(2026, 12, 31, 16, 0)


async def test_concurrent_batches_race_for_one_credit(sessions):
    """Two bot processes each writing a batch with the same credit: exactly one wins."""
    async with transaction(sessions) as s:
        await f.station(s, "ST1")
        await f.talent(s, openid="oT")

    async def one() -> list[visits.Outcome]:
        async with transaction(sessions) as s:
            return await visits.record_visits(s, [Scan("oT", AT, station_code="ST1")])

    outcomes = [o for batch in await asyncio.gather(*[one() for _ in range(8)]) for o in batch]
    assert sum(isinstance(o, Accepted) for o in outcomes) == 1
    assert {o.reason for o in outcomes if isinstance(o, Rejected)} == {Reason.ALREADY_TODAY}
    assert len(await all_visits(sessions)) == 8


async def test_station_scan_verifies_the_token():
    now = datetime(2026, 11, 2, 2, 0)
    good = station_scene(KEY, "ST1", visits.unix(now))
    assert visits.station_scan(KEY, good, "o", now) == Scan("o", now, station_code="ST1")
    late = now + timedelta(minutes=11)
    assert visits.station_scan(KEY, good, "o", late).code_error is Reason.EXPIRED_CODE
    assert visits.station_scan(KEY, good, "o", late).station_code == "ST1"
    assert visits.station_scan(b"other", good, "o", now).code_error is Reason.FORGED_CODE
    assert visits.station_scan(KEY, "ac:1:abc.def", "o", now).code_error is Reason.FORGED_CODE
    assert visits.station_scan(KEY, "garbage", "o", now) == Scan("o", now, code_error=Reason.FORGED_CODE)


async def test_operator_scan_by_station_id_and_talent_id(lite):
    sessions = lite
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
        t = await f.talent(s, openid="oT")
    async with transaction(sessions) as s:
        out = await visits.record_visit(s, Scan("oT", AT, station_id=st.id, talent_id=t.id,
                                                source=visits.Source.OPERATOR, operator_openid="oOp"))
    assert isinstance(out, Accepted)
    assert (out.visit.source, out.visit.operator_openid, out.station_name) == ("operator", "oOp", st.name)


async def test_personal_code_scanned_by_an_operator(lite):
    sessions = lite
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
        t = await f.talent(s, openid="oT")
        unbound = await f.talent(s)
        s.add(Staff(openid="oOp", role="operator", station_id=st.id))
    now = AT
    code = talent_scene(KEY, t.id, visits.unix(now))
    scans = [
        visits.personal_code_scan(KEY, code, operator_openid="oOp", station_id=st.id, at=now),
        visits.personal_code_scan(KEY, code, operator_openid="oOp", station_id=st.id, at=now + timedelta(minutes=11)),
        visits.personal_code_scan(KEY, code[:-2] + "zz", operator_openid="oOp", station_id=st.id, at=now),
        visits.personal_code_scan(KEY, talent_scene(KEY, unbound.id, visits.unix(now)), operator_openid="oOp",
                                  station_id=st.id, at=now),
    ]
    async with transaction(sessions) as s:
        out = await visits.record_visits(s, scans)
    assert isinstance(out[0], Accepted)
    assert (out[0].visit.openid, out[0].visit.talent_id, out[0].visit.source, out[0].visit.operator_openid) == \
        ("oT", t.id, "operator", "oOp")
    assert [o.reason for o in out[1:] if isinstance(o, Rejected)] == \
        [Reason.EXPIRED_CODE, Reason.FORGED_CODE, Reason.NOT_BOUND]
    # the operator's reply names the talent: record_personal_scan gives the name with the outcome
    async with transaction(sessions) as s:
        again = await visits.record_personal_scan(s, scans[0])
        other = await f.talent(s, openid="oT2", name="陈晓")
        named = await visits.record_personal_scan(s, visits.personal_code_scan(
            KEY, talent_scene(KEY, other.id, visits.unix(now)), operator_openid="oOp", station_id=st.id, at=now))
    assert isinstance(again, Rejected) and again.reason is Reason.ALREADY_TODAY
    assert isinstance(named, Accepted) and named.talent_name == "陈晓"


# -- activities ----------------------------------------------------------------------------------------
async def _activity_setup(sessions, *, capacity=None, starts=AT):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
        act = await activity(s, st, starts_at=starts)
        act.capacity = capacity
        talents = [await f.talent(s, openid=f"o{i}") for i in range(3)]
    return st, act, talents


async def attend(sessions, openid, act, at):
    async with transaction(sessions) as s:
        return await attendance.record(s, openid=openid, activity_id=act.id, at=at)


async def test_attendance_window(lite):
    sessions = lite
    st, act, _ = await _activity_setup(sessions)
    too_early = await attend(sessions, "o0", act, act.starts_at - timedelta(minutes=31))
    assert isinstance(too_early, Rejected) and too_early.reason is Reason.ACTIVITY_NOT_STARTED
    early = await attend(sessions, "o1", act, act.starts_at - timedelta(minutes=30))
    assert isinstance(early, attendance.Attended) and isinstance(early.visit, Accepted)
    ended = await attend(sessions, "o2", act, act.ends_at + timedelta(minutes=30, seconds=1))
    assert isinstance(ended, Rejected) and ended.reason is Reason.ACTIVITY_ENDED
    stored = await all_visits(sessions)
    assert [(v.source, v.activity_id, v.station_id, v.reason) for v in stored] == [
        ("activity", act.id, st.id, "activity_not_started"), ("activity", act.id, st.id, None),
        ("activity", act.id, st.id, "activity_ended")]


async def test_activity_code_credits_only_inside_its_window(lite):
    """However old the code, a scan credits only from the grace before the start to the grace after the
    end (ACTIVITY_CODE_GRACE_MINUTES, 30 by default); a code kept for 300 days credits nobody."""
    sessions = lite
    _, act, _ = await _activity_setup(sessions)
    late = await attend(sessions, "o0", act, act.ends_at + timedelta(minutes=30))
    assert isinstance(late, attendance.Attended)  # the grace after the end
    for openid, at in (("o1", act.ends_at + timedelta(days=300)), ("o1", act.starts_at - timedelta(days=300))):
        out = await attend(sessions, openid, act, at)
        assert isinstance(out, Rejected) and out.reason in (Reason.ACTIVITY_ENDED, Reason.ACTIVITY_NOT_STARTED)
    async with transaction(sessions) as s:  # no grace at all: the activity's own hours
        strict = await attendance.record(s, openid="o2", activity_id=act.id, at=act.ends_at + timedelta(minutes=1),
                                         grace=timedelta(0))
    assert isinstance(strict, Rejected) and strict.reason is Reason.ACTIVITY_ENDED
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Attendance)) == 1


async def test_attendance_recorded_even_when_already_credited_today(lite):
    sessions = lite
    _, act, (t0, _, _) = await _activity_setup(sessions)
    async with transaction(sessions) as s:
        assert isinstance(await visits.record_visit(s, Scan("o0", act.starts_at - timedelta(hours=3),
                                                            station_code="ST1")), Accepted)
    out = await attend(sessions, "o0", act, act.starts_at)
    assert isinstance(out, attendance.Attended) and out.first
    assert isinstance(out.visit, Rejected) and out.visit.reason is Reason.ALREADY_TODAY
    again = await attend(sessions, "o0", act, act.starts_at + timedelta(minutes=5))
    assert isinstance(again, attendance.Attended) and not again.first
    async with sessions() as s:
        rows = (await s.scalars(select(Attendance))).all()
    assert [(a.talent_id, a.activity_id, a.visit_id) for a in rows] == [(t0.id, act.id, out.visit.visit.id)]


async def test_walk_ins_only_while_seats_remain(sessions):
    _, act, (t0, _, _) = await _activity_setup(sessions, capacity=2)
    async with transaction(sessions) as s:
        s.add(Signup(activity_id=act.id, talent_id=t0.id))
    walk_in = await attend(sessions, "o1", act, act.starts_at)
    assert isinstance(walk_in, attendance.Attended) and walk_in.walk_in
    full = await attend(sessions, "o2", act, act.starts_at)
    assert isinstance(full, Rejected) and full.reason is Reason.ACTIVITY_FULL
    signed = await attend(sessions, "o0", act, act.starts_at)  # a signed-up talent always gets in
    assert isinstance(signed, attendance.Attended) and not signed.walk_in
    async with sessions() as s:
        assert await s.scalar(select(func.count(Attendance.id))) == 2


async def test_activity_refusals(lite):
    sessions = lite
    st, act, _ = await _activity_setup(sessions)
    async with transaction(sessions) as s:
        s.add(Staff(openid="o2", role="operator", station_id=st.id))
    async with transaction(sessions) as s:
        out = await attendance.record(s, openid="o0", activity_id=999, at=act.starts_at)
    assert isinstance(out, Rejected) and out.reason is Reason.UNKNOWN_ACTIVITY
    not_bound = await attend(sessions, "oNobody", act, act.starts_at)
    assert isinstance(not_bound, Rejected) and not_bound.reason is Reason.NOT_BOUND
    staff = await attend(sessions, "o2", act, act.starts_at)
    assert isinstance(staff, Rejected) and staff.reason is Reason.STAFF_OWN_STATION
    async with transaction(sessions) as s:
        forged = await attendance.record(s, openid="o0", activity_id=None, at=act.starts_at,
                                                code_error=Reason.FORGED_CODE)
    assert isinstance(forged, Rejected) and forged.reason is Reason.FORGED_CODE
    assert [v.reason for v in await all_visits(sessions)] == \
        ["unknown_activity", "not_bound", "staff_own_station", "forged_code"]
    # a refusal names the activity when it is known (the reply names it: one domain call for the handler)
    assert (not_bound.station_name, not_bound.title, not_bound.starts_at) == (st.name, act.title, act.starts_at)
    assert (staff.station_name, staff.title) == (st.name, act.title)
    assert (out.station_name, out.title, out.starts_at) == ("", "", None)
    assert (forged.station_name, forged.title, forged.starts_at) == ("", "", None)
