"""scoring.operations: publish (an activity published with too little lead is published, and says so) and
the station figures an operator sees."""

from __future__ import annotations

from datetime import date, timedelta

from scoring import operations
from scoring.db import transaction
from scoring.models import Entry
from scoring.operations import OpRefusal, Published
from tests import factories as f
from tests.scoring.builders import local

NOW = local(2026, 11, 18, 10, 0)


async def test_publish_judges_r1s_lead_at_once(sessions):
    """[A1.1] R1 needs the activity published at least `lead_hours` before it starts: exactly that is
    enough, a minute less is not; either way the activity is published."""
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")

    async def publish(starts_in: timedelta, lead_hours: int = 24) -> Published | OpRefusal:
        async with transaction(sessions) as s:
            return await operations.publish(s, st.id, title="沙龙", starts_at=NOW + starts_in,
                                            ends_at=NOW + starts_in + timedelta(hours=2), capacity=None, theme="",
                                            actor="oOp", lead_hours=lead_hours, now=NOW)

    exact = await publish(timedelta(hours=24))
    short = await publish(timedelta(hours=24) - timedelta(minutes=1))
    longer_rule = await publish(timedelta(hours=30), lead_hours=48)
    assert isinstance(exact, Published) and exact.meets_lead and exact.lead_hours == 24
    assert isinstance(short, Published) and not short.meets_lead and short.activity.id > exact.activity.id
    assert isinstance(longer_rule, Published) and not longer_rule.meets_lead and longer_rule.lead_hours == 48
    assert exact.job.id == f"activity:{exact.activity.id}:end" and exact.job.defer_until == exact.activity.ends_at
    assert await publish(-timedelta(minutes=1)) is OpRefusal.START_IN_PAST


async def test_station_figures(sessions):
    """`本站`: points and ranks (None when not ranked: not yet eligible), satisfaction, next month's plan."""
    async with transaction(sessions) as s:
        a, b = await f.station(s, "SA"), await f.station(s, "SB")
        new = await f.station(s, "SN", certified_on=date(2026, 3, 1))  # ranked from 2027
        for st, amount in ((a, 3), (b, 5), (new, 9)):
            s.add(Entry(key=f"test:{st.code}", station_id=st.id, amount=amount, rule="R3@1", fact_kind="test",
                        occurred_at=NOW - timedelta(hours=1)))
    async with sessions() as s:
        fa = await operations.station_figures(s, a.id, now=NOW)
        fn = await operations.station_figures(s, new.id, now=NOW)
        assert await operations.station_figures(s, 999, now=NOW) is OpRefusal.NOT_FOUND
    assert isinstance(fa, operations.StationFigures) and isinstance(fn, operations.StationFigures)
    assert fa.station.code == "SA" and fa.points == {"total": 3, "year": 3, "month": 3}
    assert fa.ranks == {"month": 2, "year": 2, "total": 2}
    assert fn.points["month"] == 9 and fn.ranks == {"month": None, "year": None, "total": None}
    assert (fa.satisfied, fa.replies, fa.open_flags, fa.next_month, fa.has_plan) == (0, 0, 0, "2026-12", False)
    async with transaction(sessions) as s:
        await operations.publish(s, a.id, title="十二月沙龙", starts_at=local(2026, 12, 3, 10),
                                 ends_at=local(2026, 12, 3, 12), capacity=None, theme="", actor="oOp", lead_hours=24,
                                 now=NOW)
    async with sessions() as s:
        planned = await operations.station_figures(s, a.id, now=NOW)
    assert isinstance(planned, operations.StationFigures) and planned.has_plan
