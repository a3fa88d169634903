"""scoring.operations.publish: an activity published with too little lead is published, and says so."""

from __future__ import annotations

from datetime import timedelta

from scoring import operations
from scoring.db import transaction
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
    assert exact.job_id == f"apply_activity:{exact.activity.id}:end"
    assert await publish(-timedelta(minutes=1)) is OpRefusal.START_IN_PAST
