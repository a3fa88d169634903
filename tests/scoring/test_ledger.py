"""The ledger's promises (scoring/ledger.py docstring, issue 2 section 5), each on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import ledger
from scoring.boards import station_board, station_points, talent_points
from scoring.db import transaction
from scoring.ledger import Draft, LedgerConflict, Refusal
from scoring.models import Entry, Redemption, SurveyResult, Visit
from scoring.periods import Period
from scoring.rules import RULES
from tests import factories as f
from tests.scoring import builders as b

NOV = datetime(2026, 11, 2, 3, 0)  # 11:00 local


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    return await b.clean_db_url(request, tmp_path)


async def count_entries(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count(Entry.id))) or 0)


async def station_total(sessions: async_sessionmaker[AsyncSession], station_id: int) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.coalesce(func.sum(Entry.amount), 0))
                                  .where(Entry.station_id == station_id)) or 0)


async def setup_visit(sessions, at: datetime = NOV):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        v = await f.visit(s, t, st, at)
    return st, t, v


# -- idempotency ------------------------------------------------------------------------------------
async def test_reapplying_a_fact_says_already_applied_and_writes_nothing(sessions):
    st, t, v = await setup_visit(sessions)
    async with transaction(sessions) as s:
        first = await ledger.apply_visit(s, v.id)
    for _ in range(3):
        async with transaction(sessions) as s:
            again = await ledger.apply_visit(s, v.id)
        assert again.already and not again.applied and again.entries == [] and again.refused is None
    assert first.applied and not first.already
    assert {(e.station_id, e.talent_id, e.amount) for e in first.entries} == {(st.id, None, 1), (None, t.id, 1)}
    assert await count_entries(sessions) == 2
    # The same drafts posted directly are "already applied" too.
    async with transaction(sessions) as s:
        visit = await s.get(Visit, v.id)
        assert visit is not None and visit.applied_at is not None
        direct = await ledger.post(s, ledger.visit_drafts(visit))
    assert direct.already and direct.entries == []
    assert await count_entries(sessions) == 2


async def test_keys_are_derived_from_the_fact(sessions):
    st, t, v = await setup_visit(sessions)
    async with transaction(sessions) as s:
        posted = await ledger.apply_visit(s, v.id)
    day = v.local_day.isoformat()
    assert sorted(e.key for e in posted.entries) == [
        f"visit:{t.id}:{st.id}:{day}#station", f"visit:{t.id}:{st.id}:{day}#talent"]
    assert {(e.fact_kind, e.fact_id) for e in posted.entries} == {("visit", v.id)}


async def test_second_visit_same_local_day_earns_nothing(sessions):
    """One R3 credit per (talent, station, local day), even if a second accepted scan slipped through."""
    st, t, v = await setup_visit(sessions, datetime(2026, 11, 2, 1, 0))  # 09:00 local
    async with transaction(sessions) as s:
        # 23:30 local the same day, recorded without the bot's de-duplication key.
        v2 = Visit(openid="o", talent_id=t.id, station_id=st.id, source="operator",
                   scanned_at=datetime(2026, 11, 2, 15, 30), local_day=v.local_day, status="accepted")
        s.add(v2)
        await s.flush()
        next_day = await f.visit(s, t, st, datetime(2026, 11, 2, 16, 30))  # 00:30 local, 3 November
    async with transaction(sessions) as s:
        assert (await ledger.apply_visit(s, v.id)).applied
        dup = await ledger.apply_visit(s, v2.id)
        nxt = await ledger.apply_visit(s, next_day.id)
    assert dup.already and dup.entries == []
    assert nxt.applied
    assert await station_total(sessions, st.id) == 2


async def test_rejected_or_missing_visit_is_refused(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        v = Visit(openid="o", talent_id=t.id, station_id=st.id, source="station", scanned_at=NOV,
                  local_day=NOV.date(), status="rejected", reason="expired_code")
        s.add(v)
        await s.flush()
    async with transaction(sessions) as s:
        assert (await ledger.apply_visit(s, v.id)).refused == Refusal.NOT_ACCEPTED
        assert (await ledger.apply_visit(s, v.id + 1000)).refused == Refusal.NOT_FOUND
    assert await count_entries(sessions) == 0


# -- conflicts and atomicity ------------------------------------------------------------------------
async def test_same_key_other_amount_raises_and_the_whole_post_rolls_back(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        await ledger.post(s, [Draft(key="k:1", amount=1, rule="R3@1", fact_kind="test", fact_id=1,
                                    occurred_at=NOV, station_id=st.id)])
    bad = [
        Draft(key="k:2", amount=1, rule="R3@1", fact_kind="test", fact_id=2, occurred_at=NOV, station_id=st.id),
        Draft(key="k:1", amount=2, rule="R3@1", fact_kind="test", fact_id=1, occurred_at=NOV, station_id=st.id),
    ]
    with pytest.raises(LedgerConflict):
        async with transaction(sessions) as s:
            await ledger.post(s, bad)
    # Other account, same amount: also a conflict.
    with pytest.raises(LedgerConflict):
        async with transaction(sessions) as s:
            await ledger.post(s, [Draft(key="k:1", amount=1, rule="R3@1", fact_kind="test", fact_id=1,
                                        occurred_at=NOV, talent_id=t.id)])
    async with sessions() as s:
        rows = (await s.execute(select(Entry.key, Entry.amount, Entry.station_id))).all()
    assert [tuple(r) for r in rows] == [("k:1", 1, st.id)]


async def test_conflict_writes_nothing_even_when_the_caller_goes_on_and_commits(sessions):
    """post() undoes its own partial insert: a caller that catches LedgerConflict cannot commit half a fact."""
    st, t, v = await setup_visit(sessions)
    talent_key = ledger.visit_key(t.id, st.id, v.local_day) + "#talent"
    async with transaction(sessions) as s:
        await ledger.post(s, [Draft(key=talent_key, amount=7, rule="R3@1", fact_kind="visit", fact_id=v.id,
                                    occurred_at=NOV, talent_id=t.id)])
    async with transaction(sessions) as s:
        with pytest.raises(LedgerConflict):
            await ledger.apply_visit(s, v.id)
        # the session is still usable and its commit carries no leg of the visit
    async with sessions() as s:
        entries = (await s.scalars(select(Entry))).all()
        visit = await s.get(Visit, v.id)
    assert [(e.key, e.amount) for e in entries] == [(talent_key, 7)]
    assert visit is not None and visit.applied_at is None


async def test_visit_legs_are_written_in_one_transaction(sessions):
    _st, _t, v = await setup_visit(sessions)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with transaction(sessions) as s:
            posted = await ledger.apply_visit(s, v.id)
            assert len(posted.entries) == 2
            raise Crash
    assert await count_entries(sessions) == 0
    async with transaction(sessions) as s:
        posted = await ledger.apply_visit(s, v.id)
    assert len(posted.entries) == 2
    assert len({e.recorded_at for e in posted.entries}) == 1
    assert {e.occurred_at for e in posted.entries} == {v.scanned_at}


async def test_an_entry_has_exactly_one_account(sessions):
    for accounts in ({}, {"station_id": None, "talent_id": None}):
        with pytest.raises(IntegrityError):
            async with transaction(sessions) as s:
                await ledger.post(s, [Draft(key="k", amount=1, rule="R3@1", fact_kind="test", fact_id=1,
                                            occurred_at=NOV, **accounts)])
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
    with pytest.raises(IntegrityError):
        async with transaction(sessions) as s:
            await ledger.post(s, [Draft(key="k", amount=1, rule="R3@1", fact_kind="test", fact_id=1,
                                        occurred_at=NOV, station_id=st.id, talent_id=t.id)])
    assert await count_entries(sessions) == 0


async def test_entries_carry_business_time_and_recording_time(sessions):
    _st, _t, v = await setup_visit(sessions)
    with time_machine.travel(datetime(2026, 11, 5, 12, 0), tick=False):
        async with transaction(sessions) as s:
            posted = await ledger.apply_visit(s, v.id)
    for e in posted.entries:
        assert e.occurred_at == v.scanned_at == NOV
        assert e.recorded_at == datetime(2026, 11, 5, 12, 0)
        assert isinstance(e.amount, int)


# -- voids ------------------------------------------------------------------------------------------
async def test_void_writes_reversals_pointing_at_originals_and_a_second_void_changes_nothing(sessions):
    st, t, v = await setup_visit(sessions)
    async with transaction(sessions) as s:
        originals = {e.id: e for e in (await ledger.apply_visit(s, v.id)).entries}
    async with transaction(sessions) as s:
        ids = await ledger.fact_entries(s, "visit", v.id)
        voided = await ledger.reverse(s, ids, actor="admin-7", reason="代打卡")
    assert sorted(ids) == sorted(originals)
    assert len(voided.entries) == 2
    for rev in voided.entries:
        orig = originals[rev.reverses_id]  # type: ignore[index]
        assert rev.amount == -orig.amount
        assert (rev.station_id, rev.talent_id) == (orig.station_id, orig.talent_id)
        assert (rev.fact_kind, rev.fact_id) == (orig.fact_kind, orig.fact_id)
        assert rev.actor == "admin-7" and rev.reason == "代打卡"
        assert rev.rule == RULES["V"].tag == "V@1"
        assert rev.key == f"void:{orig.id}"
    n = await count_entries(sessions)
    async with transaction(sessions) as s:
        again = await ledger.reverse(s, ids, actor="admin-8", reason="again")
        # a reversal is never reversed
        rev_of_rev = await ledger.reverse(s, [e.id for e in voided.entries], actor="admin-8", reason="undo")
    assert again.already and again.entries == [] and again.refused == Refusal.ALREADY_REVERSED
    assert rev_of_rev.refused == Refusal.NOT_FOUND and rev_of_rev.entries == []
    assert await count_entries(sessions) == n == 4
    assert await station_total(sessions, st.id) == 0
    async with sessions() as s:
        assert (await talent_points(s, t.id, now=NOV))["balance"] == 0
        # the originals are untouched: a void is a new entry, not an edit
        for e in (await s.scalars(select(Entry).where(Entry.id.in_(ids)))).all():
            assert e.amount == 1 and e.actor is None
    # Reapplying the voided fact does not bring its points back.
    async with transaction(sessions) as s:
        assert (await ledger.apply_visit(s, v.id)).already
    assert await station_total(sessions, st.id) == 0


async def test_reversal_keeps_the_original_period(sessions):
    st, _t, v = await setup_visit(sessions, b.local(2026, 11, 30, 23, 30))
    async with transaction(sessions) as s:
        await ledger.apply_visit(s, v.id)
    with time_machine.travel(datetime(2026, 12, 5, 2, 0), tick=False):
        async with transaction(sessions) as s:
            voided = await ledger.reverse(s, await ledger.fact_entries(s, "visit", v.id),
                                          actor="admin", reason="fraud")
    assert all(e.occurred_at == b.local(2026, 11, 30, 23, 30) for e in voided.entries)
    assert all(e.recorded_at == datetime(2026, 12, 5, 2, 0) for e in voided.entries)
    async with sessions() as s:
        nov = await station_board(s, Period("month", "2026-11"), now=datetime(2026, 12, 20))
        dec = await station_board(s, Period("month", "2026-12"), now=datetime(2026, 12, 20))
        pts = await station_points(s, st.id, now=datetime(2026, 12, 20))
    assert [(r.code, r.points) for r in nov] == [(st.code, 0)]
    assert [(r.code, r.points) for r in dec] == [(st.code, 0)]
    assert pts == {"total": 0, "year": 0, "month": 0}


# -- redemptions ------------------------------------------------------------------------------------
async def earn(sessions, t, st, days: int) -> None:
    async with transaction(sessions) as s:
        for d in range(days):
            v = await f.visit(s, t, st, NOV + timedelta(days=d))
            await ledger.apply_visit(s, v.id)


async def test_redemption_never_takes_the_balance_below_zero(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        g = await b.gift(s, cost=2, stock=10)
    await earn(sessions, t, st, 3)
    async with transaction(sessions) as s:
        r1 = await b.redemption(s, t, g)
        r2 = await b.redemption(s, t, g)
    async with transaction(sessions) as s:
        ok = await ledger.apply_redemption(s, r1.id)
    async with transaction(sessions) as s:
        no = await ledger.apply_redemption(s, r2.id)
    assert ok.applied and [(e.talent_id, e.amount, e.rule) for e in ok.entries] == [(t.id, -2, "G@1")]
    assert no.refused == Refusal.BALANCE and no.entries == []
    async with transaction(sessions) as s:
        assert (await ledger.apply_redemption(s, r1.id)).already
        assert (await ledger.apply_redemption(s, r2.id)).refused == Refusal.BALANCE
        reds = {r.id: r for r in (await s.scalars(select(Redemption))).all()}
        pts = await talent_points(s, t.id, now=NOV)
    assert reds[r1.id].status == "applied" and reds[r1.id].pickup_code
    assert reds[r2.id].status == "rejected" and reds[r2.id].reason == "balance"
    # Redemptions are spending: the balance drops, points earned do not.
    assert pts["balance"] == 1 and pts["total"] == 3


async def test_redemption_exactly_the_balance_is_allowed_and_stock_is_respected(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        g = await b.gift(s, cost=2, stock=1)
    await earn(sessions, t, st, 4)
    async with transaction(sessions) as s:
        r1 = await b.redemption(s, t, g)
        r2 = await b.redemption(s, t, g)
    async with transaction(sessions) as s:
        assert (await ledger.apply_redemption(s, r1.id)).applied
    async with transaction(sessions) as s:
        assert (await ledger.apply_redemption(s, r2.id)).refused == Refusal.STOCK
    async with transaction(sessions) as s:
        g2 = await b.gift(s, cost=2, stock=5)
        r3 = await b.redemption(s, t, g2)
    async with transaction(sessions) as s:
        assert (await ledger.apply_redemption(s, r3.id)).applied
        assert await ledger.talent_balance(s, t.id) == 0


# -- R4 survey --------------------------------------------------------------------------------------
async def survey_apply(sessions, st, year: int, amount: int):
    async with transaction(sessions) as s:
        sv = await b.survey(s, st, year, amount)
    async with transaction(sessions) as s:
        return sv, await ledger.apply_survey(s, sv.id, now=datetime(2026, 12, 1))


async def survey_sum(sessions, station_id: int, year: int) -> int:
    async with sessions() as s:
        return await ledger.survey_total(s, station_id, year)


async def test_survey_cap_positive_side_and_exact_boundary(sessions):
    async with transaction(sessions) as s:
        a = await f.station(s)
        other = await f.station(s)
    _, p1 = await survey_apply(sessions, a, 2026, 30)
    _, p2 = await survey_apply(sessions, a, 2026, 20)  # exactly 50
    over, p3 = await survey_apply(sessions, a, 2026, 1)
    assert p1.applied and p2.applied
    assert p3.refused == Refusal.SURVEY_CAP and p3.entries == []
    assert await survey_sum(sessions, a.id, 2026) == 50
    async with transaction(sessions) as s:
        assert (await s.get(SurveyResult, over.id)).status == "rejected"  # type: ignore[union-attr]
        assert (await ledger.apply_survey(s, over.id)).refused == Refusal.SURVEY_CAP  # stays refused
    # Another year and another station have their own room.
    assert (await survey_apply(sessions, a, 2027, 50))[1].applied
    assert (await survey_apply(sessions, other, 2026, 50))[1].applied
    assert (await survey_apply(sessions, other, 2026, 1))[1].refused == Refusal.SURVEY_CAP
    assert (await survey_apply(sessions, a, 2025, 51))[1].refused == Refusal.SURVEY_CAP
    assert await survey_sum(sessions, a.id, 2026) == 50
    # A void makes room again.
    async with transaction(sessions) as s:
        await ledger.reverse(s, [e.id for e in p2.entries], actor="admin", reason="录入错误")
    assert await survey_sum(sessions, a.id, 2026) == 30
    assert (await survey_apply(sessions, a, 2026, 20))[1].applied
    assert await survey_sum(sessions, a.id, 2026) == 50


async def test_survey_cap_negative_side(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
    assert (await survey_apply(sessions, st, 2026, -40))[1].applied
    assert (await survey_apply(sessions, st, 2026, -10))[1].applied  # exactly -50
    assert (await survey_apply(sessions, st, 2026, -1))[1].refused == Refusal.SURVEY_CAP
    assert await survey_sum(sessions, st.id, 2026) == -50
    assert (await survey_apply(sessions, st, 2026, 5))[1].applied
    assert await survey_sum(sessions, st.id, 2026) == -45
    assert await station_total(sessions, st.id) == -45


async def test_survey_entry_is_inside_its_year_and_idempotent(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        sv = await b.survey(s, st, 2026, 10)
    async with transaction(sessions) as s:
        # entered in January 2027 for 2026: counts in 2026 (its last local second)
        posted = await ledger.apply_survey(s, sv.id, now=datetime(2027, 1, 10))
    async with transaction(sessions) as s:
        again = await ledger.apply_survey(s, sv.id, now=datetime(2027, 1, 11))
    assert [e.occurred_at for e in posted.entries] == [b.local(2026, 12, 31, 23, 59, 59)]
    assert posted.entries[0].actor == "admin-1" and posted.entries[0].key == f"survey:{st.id}:2026:{sv.id}"
    assert again.already and again.entries == []
    assert await survey_sum(sessions, st.id, 2026) == 10


# -- R2 media ---------------------------------------------------------------------------------------
async def test_media_pays_only_the_difference_to_the_best_level(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        act = await b.activity(s, st, starts_at=NOV)
    paid = []
    for level, expected in [("county", 3), ("provincial", 7), ("municipal", 0), ("central", 10),
                            ("central", 0), ("county", 0)]:
        async with transaction(sessions) as s:
            await b.media(s, act, level)
        async with transaction(sessions) as s:
            posted = await ledger.apply_media(s, act.id)
        async with transaction(sessions) as s:
            again = await ledger.apply_media(s, act.id)
        assert sum(e.amount for e in posted.entries) == expected, level
        assert again.entries == [] and again.already
        if expected == 0:
            assert posted.refused == Refusal.NOTHING_TO_PAY
        paid.append(expected)
    assert await station_total(sessions, st.id) == 20 == sum(paid)
    async with sessions() as s:
        rules = set((await s.scalars(select(Entry.rule))).all())
    assert rules == {"R2@1"}


async def test_media_after_a_void_pays_the_best_remaining_level(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        act = await b.activity(s, st, starts_at=NOV)
        await b.media(s, act, "municipal")
        central = await b.media(s, act, "central")
    async with transaction(sessions) as s:
        assert sum(e.amount for e in (await ledger.apply_media(s, act.id)).entries) == 20
    async with transaction(sessions) as s:
        # the central report was fake: void it and everything it paid, then re-pay what remains
        report = await s.get(type(central), central.id)
        assert report is not None
        report.voided_at = datetime(2026, 11, 10)
        await ledger.reverse(s, await ledger.fact_entries(s, "media", act.id), actor="admin", reason="假报道")
        repaid = await ledger.apply_media(s, act.id)
    assert [e.amount for e in repaid.entries] == [5]
    assert await station_total(sessions, st.id) == 5


async def test_media_occurs_when_the_report_was_made(sessions):
    """A late worker run does not move the points into the next month."""
    async with transaction(sessions) as s:
        st = await f.station(s)
        act = await b.activity(s, st, starts_at=NOV)
        await b.media(s, act, "county", at=b.local(2026, 11, 30, 23, 0))
    async with transaction(sessions) as s:
        posted = await ledger.apply_media(s, act.id, now=b.local(2026, 12, 1, 0, 30))
    assert [e.occurred_at for e in posted.entries] == [b.local(2026, 11, 30, 23, 0)]


# -- R1 activity ------------------------------------------------------------------------------------
START = b.local(2026, 11, 10, 14, 0)
AFTER = START + timedelta(days=1)


async def held_activity(sessions, *, missing: str | None = None, lead: timedelta = timedelta(hours=24)):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        act = await b.activity(s, st, starts_at=START,
                               published_at=START - (timedelta(hours=23, minutes=59) if missing == "lead_time"
                                                     else lead),
                               status="voided" if missing == "published" else "published")
        if missing != "attendees":
            await b.attend(s, act, t)
        if missing != "publicity":
            await b.publicity(s, act)
    return st, act


async def test_activity_with_every_condition_earns_r1_once(sessions):
    st, act = await held_activity(sessions)  # published exactly 24 h ahead: the boundary passes
    async with transaction(sessions) as s:
        posted = await ledger.apply_activity(s, act.id, now=AFTER)
    async with transaction(sessions) as s:
        again = await ledger.apply_activity(s, act.id, now=AFTER)
    assert [(e.station_id, e.amount, e.rule, e.key, e.occurred_at) for e in posted.entries] == [
        (st.id, 5, "R1@1", f"host:{act.id}", act.ends_at)]
    assert again.already and again.entries == []


async def test_activity_missing_any_one_condition_earns_nothing(sessions):
    for missing in ["lead_time", "attendees", "publicity", "ended", "published"]:
        _st, act = await held_activity(sessions, missing=None if missing == "ended" else missing)
        now = act.ends_at - timedelta(minutes=1) if missing == "ended" else AFTER
        async with transaction(sessions) as s:
            conditions = await ledger.activity_conditions(s, act, now=now)
            posted = await ledger.apply_activity(s, act.id, now=now)
        assert [name for name, ok in conditions.items() if not ok] == [missing]
        assert posted.refused == Refusal.CONDITIONS_NOT_MET and posted.entries == [], missing
    assert await count_entries(sessions) == 0


async def test_activity_minimum_attendees_counts_distinct_talents(sessions):
    _st, act = await held_activity(sessions)
    async with transaction(sessions) as s:
        refused = await ledger.apply_activity(s, act.id, now=AFTER, min_attendees=2)
        await b.attend(s, act, await f.talent(s))
    async with transaction(sessions) as s:
        applied = await ledger.apply_activity(s, act.id, now=AFTER, min_attendees=2)
    assert refused.refused == Refusal.CONDITIONS_NOT_MET
    assert applied.applied


async def test_activity_lead_time_is_a_parameter(sessions):
    _, act = await held_activity(sessions, lead=timedelta(hours=47))
    async with transaction(sessions) as s:
        refused = await ledger.apply_activity(s, act.id, now=AFTER, lead_hours=48)
        applied = await ledger.apply_activity(s, act.id, now=AFTER, lead_hours=47)
    assert refused.refused == Refusal.CONDITIONS_NOT_MET
    assert applied.applied


# -- rules ------------------------------------------------------------------------------------------
async def test_every_entry_stores_its_rule_tag(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        v = await f.visit(s, t, st, START - timedelta(days=1))
        act = await b.activity(s, st, starts_at=START)
        await b.attend(s, act, t)
        await b.publicity(s, act)
        await b.media(s, act, "municipal")
        sv = await b.survey(s, st, 2026, 5)
        g = await b.gift(s, cost=1)
        red = await b.redemption(s, t, g)
    async with transaction(sessions) as s:
        tags = {
            "visit": {e.rule for e in (await ledger.apply_visit(s, v.id)).entries},
            "activity": {e.rule for e in (await ledger.apply_activity(s, act.id, now=AFTER)).entries},
            "media": {e.rule for e in (await ledger.apply_media(s, act.id)).entries},
            "survey": {e.rule for e in (await ledger.apply_survey(s, sv.id)).entries},
            "redemption": {e.rule for e in (await ledger.apply_redemption(s, red.id)).entries},
        }
        tags["void"] = {e.rule for e in (await ledger.reverse(
            s, await ledger.fact_entries(s, "visit", v.id), actor="a", reason="r")).entries}
    assert tags == {"visit": {"R3@1"}, "activity": {"R1@1"}, "media": {"R2@1"}, "survey": {"R4@1"},
                    "redemption": {"G@1"}, "void": {"V@1"}}
    assert {r.tag for r in RULES.values()} == {"R1@1", "R2@1", "R3@1", "R4@1", "V@1", "G@1"}
    assert (RULES["R1"].station, RULES["R3"].station, RULES["R3"].talent) == (5, 1, 1)
    assert dict(RULES["R2"].params) == {"central": 20, "provincial": 10, "municipal": 5, "county": 3}
    assert RULES["R4"].params["cap"] == 50


# -- append-only --------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = [
    re.compile(r"\b(?:update|delete)\(\s*(?:\w+\.)*Entry\b"),  # sqlalchemy update(Entry) / delete(Entry)
    re.compile(r"\bEntry\.__table__\.(?:update|delete)\b"),
    re.compile(r"(?i)\bupdate\s+\"?entries\"?\s+set\b"),
    re.compile(r"(?i)\bdelete\s+from\s+\"?entries\"?\b"),
    re.compile(r"(?i)\btruncate\s+(?:table\s+)?\"?entries\"?\b"),
    re.compile(r"\b(?:entry|entries|e|orig|original|rev)\.(?:amount|key|station_id|talent_id|occurred_at|rule)"
               r"\s*(?:[-+*/]?=)(?!=)"),
    re.compile(r"\.delete\(\s*(?:entry|e|orig|original)\s*\)"),
]


def forbidden_hits(text: str) -> list[str]:
    return [m.group(0) for pattern in FORBIDDEN for m in pattern.finditer(text)]


async def test_the_orm_refuses_to_change_or_delete_an_entry(sessions):
    st, _t, v = await setup_visit(sessions)
    async with transaction(sessions) as s:
        await ledger.apply_visit(s, v.id)
    with pytest.raises(ledger.AppendOnly):
        async with transaction(sessions) as s:
            entry = (await s.scalars(select(Entry).where(Entry.station_id == st.id))).one()
            entry.amount = 100
            await s.flush()
    with pytest.raises(ledger.AppendOnly):
        async with transaction(sessions) as s:
            await s.delete((await s.scalars(select(Entry).where(Entry.station_id == st.id))).one())
            await s.flush()
    assert await station_total(sessions, st.id) == 1
    assert await count_entries(sessions) == 2


def test_the_append_only_detector_catches_what_it_should():
    for bad in ["await s.execute(update(Entry).values(amount=0))", "sa.delete(models.Entry)",
                'conn.exec_driver_sql("UPDATE entries SET amount = 0")', "DELETE FROM entries WHERE id=1",
                "Entry.__table__.delete()", "entry.amount = 3", "e.amount -= 1", "await session.delete(entry)",
                "TRUNCATE entries"]:
        assert forbidden_hits(bad), bad
    for fine in ["update(Visit).values(applied_at=now)", "gift.stock -= 1", "select(Entry)",
                 "delete(Flag)", "if e.amount == 1:", "insert(Entry)"]:
        assert not forbidden_hits(fine), fine


def test_no_code_updates_or_deletes_entries():
    files = [p for pkg in ("scoring", "bot", "worker", "talenthome") for p in (ROOT / pkg).rglob("*.py")]
    assert any(p.name == "ledger.py" for p in files)
    hits = {str(p.relative_to(ROOT)): h for p in files if (h := forbidden_hits(p.read_text(encoding="utf-8")))}
    assert hits == {}
