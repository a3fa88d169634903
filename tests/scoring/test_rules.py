"""Each rule of SPEC 2, by its id, against the clause of the policy annex it implements (scoring/facts/):
R1 and R2 [A1.1], R3 [A1.2], R4 [A1.3], V [A3.3], G [A2]. Edges first; each on SQLite and PostgreSQL.

Times are explicit (local Asia/Shanghai wall-clock times through `b.local`): nothing here depends on the day
the tests run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import admin, gifts, ledger, visits
from scoring.boards import station_points, talent_points
from scoring.db import transaction
from scoring.facts import activity, media, redemption, survey, visit, void
from scoring.facts.common import Applied, Audience, NoticeKind, Outcome, Params, Refusal, Refused
from scoring.models import Activity, Entry, Flag, Gift, MediaReport, Redemption, Station, SurveyResult, Void
from scoring.rules import RULES
from scoring.visits import Accepted, Reason, Rejected, Scan, Source
from tests import factories as f
from tests.scoring import builders as b

Sessions = async_sessionmaker[AsyncSession]
START = b.local(2026, 11, 10, 14, 0)  # an activity from 14:00 to 16:00 local
ENDS = START + timedelta(hours=2)
AFTER = START + timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    return await b.clean_db_url(request, tmp_path)


async def run(sessions: Sessions, fact: object, fact_id: int, *, now: datetime | None = None,
              params: Params | None = None) -> Outcome:
    async with transaction(sessions) as s:
        return await fact.apply(s, fact_id, params or Params(), now=now)  # type: ignore[attr-defined, no-any-return]


async def total(sessions: Sessions, **where: int) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).where(
            *(getattr(Entry, k) == v for k, v in where.items()))) or 0)


# -- R1 activity -----------------------------------------------------------------------------------------
async def held_activity(sessions: Sessions, *, lead: timedelta = timedelta(hours=24), attendees: int = 1,
                        publicity: bool = True) -> tuple[Station, Activity]:
    async with transaction(sessions) as s:
        st = await f.station(s)
        act = await b.activity(s, st, starts_at=START, published_at=START - lead)
        for _ in range(attendees):
            await b.attend(s, act, await f.talent(s))
        if publicity:
            await b.publicity(s, act)
    return st, act


async def test_r1_activity_held(sessions: Sessions) -> None:
    """R1 [A1.1] "在微信小程序上发布活动预告，组织市高层次人才参加，并做好宣传报道的，每举办1场活动可获5个积分":
    published at least 24 hours ahead (exactly 24 h is enough, 23 h 59 min is not), at least one talent
    checked in, a publicity report, the activity over and standing; +5 once, when it ended."""
    st, act = await held_activity(sessions)  # published exactly 24 h ahead
    async with sessions() as s:
        assert await activity.conditions(s, act, now=AFTER) == dict.fromkeys(activity.NAMES, True)
    paid = await run(sessions, activity, act.id, now=AFTER)
    again = await run(sessions, activity, act.id, now=AFTER)
    assert isinstance(paid, Applied) and paid.written == 1
    assert [(e.station_id, e.amount, e.rule, e.key, e.occurred_at) for e in paid.entries] == [
        (st.id, 5, "R1@1", f"host:{act.id}", act.ends_at)]
    assert isinstance(again, Applied) and again.already
    assert [e.id for e in again.entries] == [e.id for e in paid.entries]

    cases = {"lead_time": dict(lead=timedelta(hours=23, minutes=59)), "attendees": dict(attendees=0),
             "publicity": dict(publicity=False)}
    for missing, kwargs in cases.items():
        _, act = await held_activity(sessions, **kwargs)  # type: ignore[arg-type]
        async with sessions() as s:
            conditions = await activity.conditions(s, act, now=AFTER)
        assert [name for name, ok in conditions.items() if not ok] == [missing]
        assert await run(sessions, activity, act.id, now=AFTER) == Refused(Refusal.CONDITIONS_NOT_MET), missing
    _, act = await held_activity(sessions)
    assert await run(sessions, activity, act.id, now=ENDS - timedelta(minutes=1)) == \
        Refused(Refusal.CONDITIONS_NOT_MET)  # not over yet
    async with transaction(sessions) as s:
        row = await s.get(Activity, act.id)
        assert row is not None
        row.status = "voided"
    assert await run(sessions, activity, act.id, now=AFTER) == Refused(Refusal.CONDITIONS_NOT_MET)
    assert await total(sessions) == 5


async def test_r1_min_attendees_counts_distinct_talents_and_the_lead_is_a_parameter(sessions: Sessions) -> None:
    """R1 [A1.1] "组织市高层次人才参加": `min_attendees` distinct talents (a talent twice is one); the lead
    (24 h) and the minimum (1) are the rules table's, overridden by settings."""
    _, act = await held_activity(sessions, lead=timedelta(hours=47))
    two = Params(min_attendees=2)
    assert await run(sessions, activity, act.id, now=AFTER, params=two) == Refused(Refusal.CONDITIONS_NOT_MET)
    async with transaction(sessions) as s:
        await b.attend(s, act, await f.talent(s))
    assert await run(sessions, activity, act.id, now=AFTER, params=Params(lead_hours=48, min_attendees=2)) == \
        Refused(Refusal.CONDITIONS_NOT_MET)
    assert isinstance(await run(sessions, activity, act.id, now=AFTER, params=Params(lead_hours=47, min_attendees=2)),
                      Applied)
    assert (RULES["R1"].params["lead_hours"], RULES["R1"].params["min_attendees"]) == (24, 1)


async def test_r1_sweeper_finds_what_the_end_job_missed(sessions: Sessions) -> None:
    """R1 [A1.1]: `unapplied` lists exactly the ended activities that meet every condition and have no
    R1 entry yet (what a lost job left), by the same conditions as `apply`."""
    _, ok = await held_activity(sessions)
    await held_activity(sessions, lead=timedelta(hours=23, minutes=59))  # too short a lead
    await held_activity(sessions, attendees=0)  # nobody came
    async with sessions() as s:
        assert await activity.unapplied(s, cutoff=ENDS - timedelta(seconds=1), now=AFTER) == []
        assert await activity.unapplied(s, cutoff=AFTER, now=AFTER) == [ok.id]
    await run(sessions, activity, ok.id, now=AFTER)
    async with sessions() as s:
        assert await activity.unapplied(s, cutoff=AFTER, now=AFTER) == []


# -- R2 media ----------------------------------------------------------------------------------------
async def test_r2_media_best_level_only(sessions: Sessions) -> None:
    """R2 [A1.1] "活动报道刊登于中央、省、市、县（市、区）新闻媒体的，可分别获20、10、5、3个积分，同一活动同时在多家
    媒体报道的，按最高标准计分，不重复计算": the best level only; a later, higher report pays the difference, a
    lower or equal one nothing."""
    st, act = await held_activity(sessions)
    paid = []
    for level, expected in [("county", 3), ("provincial", 7), ("municipal", 0), ("central", 10),
                            ("central", 0), ("county", 0)]:
        async with transaction(sessions) as s:
            await b.media(s, act, level, at=AFTER)
        out = await run(sessions, media, act.id, now=AFTER)
        again = await run(sessions, media, act.id, now=AFTER)
        assert isinstance(out, Applied) and isinstance(again, Applied) and again.already
        assert sum(e.amount for e in out.entries) == sum(paid) + expected, level
        assert (out.written, sorted(e.key for e in again.entries)) == (int(expected > 0), sorted(
            e.key for e in out.entries)), level
        paid.append(expected)
    assert await total(sessions, station_id=st.id) == 20 == sum(paid)
    assert dict(RULES["R2"].params) == {"central": 20, "provincial": 10, "municipal": 5, "county": 3}
    async with sessions() as s:
        assert set((await s.scalars(select(Entry.rule))).all()) == {"R2@1"}


async def test_r2_only_for_an_activity_that_took_place(sessions: Sessions) -> None:
    """R2 [A1.1] (media points are part of "活动举办"): a report uploaded 3 minutes before an activity that
    never met R1's lead is paid nothing then; it waits, unapplied, and is paid when the activity has
    ended, counting from the end. A voided activity's reports are never paid."""
    async with transaction(sessions) as s:
        st = await f.station(s)
        act = await b.activity(s, st, starts_at=START, published_at=START - timedelta(hours=1))
        early = START - timedelta(minutes=3)
        report = await b.media(s, act, "municipal", at=early)
        gone = await b.activity(s, st, starts_at=START, status="voided")
        await b.media(s, gone, "central", at=AFTER)
    assert await run(sessions, media, act.id, now=early) == Refused(Refusal.NOT_HELD_YET)
    assert await run(sessions, media, act.id, now=ENDS - timedelta(seconds=1)) == Refused(Refusal.NOT_HELD_YET)
    async with sessions() as s:
        assert (await s.get(MediaReport, report.id)).applied_at is None  # type: ignore[union-attr]
        assert await media.unapplied(s, cutoff=early + timedelta(minutes=1), now=early) == []  # it waits
        assert await media.unapplied(s, cutoff=ENDS + timedelta(minutes=1), now=ENDS) == [act.id]  # ended
    assert await total(sessions) == 0
    out = await run(sessions, media, act.id, now=ENDS + timedelta(minutes=1))
    assert isinstance(out, Applied) and [(e.amount, e.occurred_at) for e in out.entries] == [(5, act.ends_at)]
    assert await run(sessions, media, gone.id, now=AFTER) == Refused(Refusal.NOT_ACCEPTED)
    async with sessions() as s:
        assert await media.unapplied(s, cutoff=AFTER, now=AFTER) == []  # paid, and the voided one never
    assert await total(sessions) == 5


async def test_r2_occurs_when_the_report_was_made(sessions: Sessions) -> None:
    """R2 [A1.1]: a late worker run does not move the points into the next month."""
    _, act = await held_activity(sessions)
    async with transaction(sessions) as s:
        await b.media(s, act, "county", at=b.local(2026, 11, 30, 23, 0))
    out = await run(sessions, media, act.id, now=b.local(2026, 12, 1, 0, 30))
    assert isinstance(out, Applied) and [e.occurred_at for e in out.entries] == [b.local(2026, 11, 30, 23, 0)]


# -- R3 visit ----------------------------------------------------------------------------------------
async def test_r3_one_credit_per_talent_station_and_local_day(sessions: Sessions) -> None:
    """R3 [A1.2] "每1名市高层次人才通过微信小程序到人才之家打卡或参加活动的，站点和人才各获1个积分": +1 and +1, once per
    talent, station and calendar day in Asia/Shanghai: 23:59 and 00:00 local are two days although both
    are 2 November in UTC; a second scan the same local day earns nothing; another station is another
    credit."""
    async with transaction(sessions) as s:
        st, other = await f.station(s), await f.station(s)
        t = await f.talent(s, openid="oR3")
    scans = [b.local(2026, 11, 2, 23, 59), b.local(2026, 11, 3, 0, 0), b.local(2026, 11, 3, 10, 0)]
    assert {at.date() for at in scans[:2]} == {datetime(2026, 11, 2).date()}  # UTC
    outcomes = []
    async with transaction(sessions) as s:
        for at in scans:
            outcomes.append(await visits.record_visit(s, Scan(openid="oR3", at=at, station_id=st.id,
                                                              source=Source.OPERATOR)))
        outcomes.append(await visits.record_visit(s, Scan(openid="oR3", at=scans[2], station_id=other.id,
                                                          source=Source.OPERATOR)))
    assert [type(o) for o in outcomes] == [Accepted, Accepted, Rejected, Accepted]
    assert isinstance(outcomes[2], Rejected) and outcomes[2].reason is Reason.ALREADY_TODAY
    for o in outcomes:
        if isinstance(o, Accepted):
            out = await run(sessions, visit, o.visit.id)
            assert isinstance(out, Applied) and out.written == 2
    async with sessions() as s:
        keys = sorted((await s.scalars(select(Entry.key).where(Entry.station_id == st.id))).all())
        pts = await talent_points(s, t.id, now=scans[2])
    assert keys == [f"visit:{t.id}:{st.id}:2026-11-02#station", f"visit:{t.id}:{st.id}:2026-11-03#station"]
    assert (pts["total"], await total(sessions, station_id=st.id), await total(sessions, station_id=other.id)) == \
        (3, 2, 1)
    assert (RULES["R3"].station, RULES["R3"].talent) == (1, 1)
    assert visit.credit_key(t.id, st.id, datetime(2027, 1, 1).date()) == f"{t.id}:{st.id}:2027-01-01"


async def test_r3_a_held_visit_waits_and_a_released_one_is_credited(sessions: Sessions) -> None:
    """R3 [A1.2] with [A3.3]'s fraud rule: a talent at 3 stations within 30 minutes is held (no points, the
    station and the admins hear of it) until an admin releases the hold; then it is credited once."""
    async with transaction(sessions) as s:
        sts = [await f.station(s) for _ in range(3)]
        t = await f.talent(s)
        vs = [await f.visit(s, t, st, START + timedelta(minutes=10 * i)) for i, st in enumerate(sts)]
    for v in vs[:2]:
        assert isinstance(await run(sessions, visit, v.id), Applied)
    held = await run(sessions, visit, vs[2].id)
    assert isinstance(held, Refused) and held.reason is Refusal.HELD
    assert [(n.kind, n.audience, n.account_id) for n in held.notices] == [
        (NoticeKind.HOLD, Audience.STATION, sts[2].id), (NoticeKind.HOLD, Audience.ADMINS, None),
        (NoticeKind.HOLD, Audience.TALENT, t.id)]
    async with sessions() as s:
        assert await visit.unapplied(s, cutoff=AFTER, now=AFTER) == []  # held: not the sweeper's
        flag = (await s.scalars(select(Flag))).one()
    assert await run(sessions, visit, vs[2].id) == Refused(Refusal.HELD)  # told once
    async with transaction(sessions) as s:
        released = await admin.release_flag(s, flag.id, "admin-1", now=AFTER)
        assert isinstance(released, admin.Released) and released.job == visit.job(vs[2].id, release=flag.id)
    async with sessions() as s:
        assert await visit.unapplied(s, cutoff=AFTER, now=AFTER) == [vs[2].id]  # a lost job loses nothing
    out = await run(sessions, visit, vs[2].id)
    assert isinstance(out, Applied) and out.written == 2 and not out.notices
    assert await total(sessions, talent_id=t.id) == 3


# -- R4 survey ---------------------------------------------------------------------------------------
async def survey_apply(sessions: Sessions, station: Station, year: int, amount: int) -> tuple[int, Outcome]:
    async with transaction(sessions) as s:
        sv = await b.survey(s, station, year, amount)
    return sv.id, await run(sessions, survey, sv.id, now=datetime(2026, 12, 1))


async def survey_sum(sessions: Sessions, station_id: int, year: int) -> int:
    async with sessions() as s:
        return await survey.total(s, station_id, year)


async def test_r4_survey_within_fifty_per_station_and_year(sessions: Sessions) -> None:
    """R4 [A1.3] "根据测评结果给予人才之家不高于50积分的加减分": a station's survey results of one year sum to
    within [-50, +50]; exactly 50 fits, one more is refused whole (and stays refused); another year and
    another station have their own room; a void makes room again."""
    async with transaction(sessions) as s:
        a, other = await f.station(s), await f.station(s)
    _, p1 = await survey_apply(sessions, a, 2026, 30)
    _, p2 = await survey_apply(sessions, a, 2026, 20)  # exactly 50
    over, p3 = await survey_apply(sessions, a, 2026, 1)
    assert isinstance(p1, Applied) and isinstance(p2, Applied) and p3 == Refused(Refusal.SURVEY_CAP)
    async with transaction(sessions) as s:
        assert (await s.get(SurveyResult, over)).status == "rejected"  # type: ignore[union-attr]
    assert await run(sessions, survey, over) == Refused(Refusal.SURVEY_CAP)  # stays refused
    assert isinstance((await survey_apply(sessions, a, 2027, 50))[1], Applied)
    assert isinstance((await survey_apply(sessions, other, 2026, 50))[1], Applied)
    assert (await survey_apply(sessions, a, 2025, 51))[1] == Refused(Refusal.SURVEY_CAP)
    for amount, expected in [(-40, Applied), (-10, Applied), (-1, Refused)]:  # -50 exactly, then no more
        assert isinstance((await survey_apply(sessions, other, 2027, amount))[1], expected)
    assert (await survey_sum(sessions, a.id, 2026), await survey_sum(sessions, other.id, 2027)) == (50, -50)
    async with transaction(sessions) as s:
        await ledger.reverse(s, [e.id for e in p2.entries], actor="admin", reason="录入错误")
    assert await survey_sum(sessions, a.id, 2026) == 30
    assert isinstance((await survey_apply(sessions, a, 2026, 20))[1], Applied)
    assert RULES["R4"].params["cap"] == survey.CAP == 50


async def test_r4_entry_is_inside_its_year_and_idempotent(sessions: Sessions) -> None:
    """R4 [A1.3] "年度" results: entered in January 2027 for 2026, the entry counts in 2026 (its last local
    second); applying it again writes nothing."""
    async with transaction(sessions) as s:
        st = await f.station(s)
        sv = await b.survey(s, st, 2026, 10)
    posted = await run(sessions, survey, sv.id, now=datetime(2027, 1, 10))
    again = await run(sessions, survey, sv.id, now=datetime(2027, 1, 11))
    assert isinstance(posted, Applied) and isinstance(again, Applied) and again.already
    assert [e.occurred_at for e in posted.entries] == [b.local(2026, 12, 31, 23, 59, 59)]
    assert posted.entries[0].actor == "admin-1" and posted.entries[0].key == f"survey:{st.id}:2026:{sv.id}"
    assert await survey_sum(sessions, st.id, 2026) == 10


# -- V void ------------------------------------------------------------------------------------------
async def void_of(sessions: Sessions, kind: str, target: int) -> int:
    async with transaction(sessions) as s:
        row = Void(target_kind=kind, target_id=target, actor="admin-1", reason="弄虚作假")
        s.add(row)
        await s.flush()
        return row.id


async def test_v_void_reverses_every_entry_and_twice_changes_nothing(sessions: Sessions) -> None:
    """V [A3.3] "严禁…弄虚作假、恶意刷分。一经发现，积分无效": a void writes a reversal for every entry its target
    produced (a visit: both legs; an activity: R1 and R2), pointing at it, with the admin and the
    reason, in the original's period; a fact voided before it was applied never earns; running a void
    again changes nothing; the station hears of what it lost."""
    st, act = await held_activity(sessions)
    sid = st.id
    async with transaction(sessions) as s:
        t = await f.talent(s)
        v = await f.visit(s, t, st, START)
        early = await f.visit(s, t, st, START + timedelta(days=3))
        await b.media(s, act, "provincial", at=AFTER)
    await run(sessions, visit, v.id)
    await run(sessions, activity, act.id, now=AFTER)
    await run(sessions, media, act.id, now=AFTER)
    assert await total(sessions, station_id=sid) == 1 + 5 + 10

    for kind, target, reversed_amounts, station_lost in [("visit", v.id, [-1, -1], -1),
                                                         ("activity", act.id, [-5, -10], -15)]:
        vid = await void_of(sessions, kind, target)
        out = await run(sessions, void, vid, now=AFTER)
        assert isinstance(out, Applied) and sorted(e.amount for e in out.entries) == sorted(reversed_amounts)
        async with sessions() as s:
            for e in out.entries:
                original = await s.get(Entry, e.reverses_id)
                assert original is not None and (e.amount, e.occurred_at, e.fact_kind, e.fact_id) == (
                    -original.amount, original.occurred_at, original.fact_kind, original.fact_id)
                assert (e.rule, e.key, e.actor, e.reason) == ("V@1", f"void:{original.id}", "admin-1", "弄虚作假")
        # the station hears through its hourly digest only: one ENTRY notice per reversal of its entries
        told = [n for n in out.notices if n.audience is Audience.STATION]
        assert {n.kind for n in told} == {NoticeKind.ENTRY}
        station_reversals = [e for e in out.entries if e.station_id == sid]
        assert sorted(n.data["entry_id"] for n in told) == sorted(e.id for e in station_reversals)
        assert sum(e.amount for e in station_reversals) == station_lost
        again = await run(sessions, void, vid, now=AFTER + timedelta(hours=1))
        assert isinstance(again, Applied) and again.already and not again.notices
        assert sorted(e.id for e in again.entries) == sorted(e.id for e in out.entries)
    assert await total(sessions, station_id=sid) == 0
    # voided, R1 and R2 refuse the activity; the visit stays at nothing
    assert await run(sessions, activity, act.id, now=AFTER) == Refused(Refusal.CONDITIONS_NOT_MET)
    assert await run(sessions, media, act.id, now=AFTER) == Refused(Refusal.NOT_ACCEPTED)
    assert await run(sessions, visit, v.id) == Refused(Refusal.VOIDED)
    assert await total(sessions, station_id=sid) == 0
    # voided before it was applied: it never earns
    assert await run(sessions, void, await void_of(sessions, "visit", early.id)) == \
        Refused(Refusal.NOTHING_TO_REVERSE)
    assert await run(sessions, visit, early.id) == Refused(Refusal.VOIDED)
    assert await total(sessions, station_id=sid) == 0 and await total(sessions, talent_id=t.id) == 0


async def test_v_void_of_the_best_media_report_pays_the_best_remaining(sessions: Sessions) -> None:
    """V [A3.3] with R2 [A1.1]: voiding the central report takes back what it paid and R2 pays the best
    report still standing (municipal 5)."""
    st, act = await held_activity(sessions)
    sid = st.id
    async with transaction(sessions) as s:
        await b.media(s, act, "municipal", at=AFTER)
        central = await b.media(s, act, "central", at=AFTER)
    await run(sessions, media, act.id, now=AFTER)
    assert await total(sessions, station_id=sid) == 20
    out = await run(sessions, void, await void_of(sessions, "media", central.id), now=AFTER)
    assert isinstance(out, Applied)
    assert sorted(e.amount for e in out.entries) == [-20, 5]
    assert await total(sessions, station_id=sid) == 5


async def test_v_void_may_leave_a_talent_owing_points(sessions: Sessions) -> None:
    """V [A3.3] and G [A2], decided: a void always reverses what its fact produced, even points the talent
    has already spent on a gift, so the balance may go below zero (the debt is shown); no redemption is
    accepted until later points cover the debt and the gift's cost."""
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        vs = [await f.visit(s, t, st, START + timedelta(days=d)) for d in range(3)]
        g = await b.gift(s, cost=3)
        cheap = await b.gift(s, cost=1, name="书签")
    await visit_credit(sessions, [v.id for v in vs])
    async with transaction(sessions) as s:
        red = await b.redemption(s, t, g)
    assert isinstance(await run(sessions, redemption, red.id, now=AFTER), Applied)
    await run(sessions, void, await void_of(sessions, "visit", vs[0].id), now=AFTER)
    async with sessions() as s:
        assert await ledger.talent_balance(s, t.id) == -1
        assert (await talent_points(s, t.id, now=AFTER))["balance"] == -1
    async with transaction(sessions) as s:
        refused = await gifts.request_redemption(s, talent_id=t.id, gift_id=cheap.id)
        assert isinstance(refused, gifts.RedeemRefused) and refused.reason is gifts.RedeemRefusal.BALANCE
        assert refused.available == -1
        late = await b.redemption(s, t, cheap)  # a request that got through before the void
    out = await run(sessions, redemption, late.id, now=AFTER)
    assert isinstance(out, Refused) and out.reason is Refusal.BALANCE
    assert [(n.kind, n.data["balance"]) for n in out.notices] == [(NoticeKind.REDEEM_REFUSED, -1)]
    async with transaction(sessions) as s:
        more = [await f.visit(s, t, st, START + timedelta(days=10 + d)) for d in range(2)]
    await visit_credit(sessions, [v.id for v in more])  # balance 1: the debt covered, the cost too
    async with transaction(sessions) as s:
        red2 = await b.redemption(s, t, cheap)
    assert isinstance(await run(sessions, redemption, red2.id, now=AFTER), Applied)
    async with sessions() as s:
        assert await ledger.talent_balance(s, t.id) == 0


async def visit_credit(sessions: Sessions, ids: list[int]) -> None:
    async with transaction(sessions) as s:
        await visit.credit(s, ids)


# -- G redemption ------------------------------------------------------------------------------------
async def test_g_never_below_zero_and_stock_permitting(sessions: Sessions) -> None:
    """G [A2] "人才获取的积分，可换取相应物品": a redemption debits the gift's cost only when the balance covers
    it (exactly the balance is enough) and takes one of the stock only when there is one; the pickup
    code goes to the talent; a refusal is told with its reason; applying again changes nothing."""
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        g = await b.gift(s, cost=2, stock=1)
        other = await b.gift(s, cost=2, stock=5, name="台历")
        vs = [await f.visit(s, t, st, START + timedelta(days=d)) for d in range(3)]
    await visit_credit(sessions, [v.id for v in vs])
    async with transaction(sessions) as s:
        r1, r2, r3 = [await b.redemption(s, t, gift) for gift in (g, g, other)]
    ok = await run(sessions, redemption, r1.id, now=AFTER)
    no_stock = await run(sessions, redemption, r2.id, now=AFTER)
    no_balance = await run(sessions, redemption, r3.id, now=AFTER)  # 1 point left, the cost is 2
    assert isinstance(ok, Applied) and [(e.talent_id, e.amount, e.rule) for e in ok.entries] == [(t.id, -2, "G@1")]
    assert [(n.kind, n.audience, n.account_id) for n in ok.notices] == [(NoticeKind.REDEEMED, Audience.TALENT, t.id)]
    assert (no_stock, no_balance) == (Refused(Refusal.STOCK, no_stock.notices),
                                      Refused(Refusal.BALANCE, no_balance.notices))
    assert isinstance(await run(sessions, redemption, r1.id, now=AFTER), Applied)
    assert await run(sessions, redemption, r3.id, now=AFTER) == Refused(Refusal.BALANCE)  # stays refused
    async with sessions() as s:
        reds = {r.id: r for r in (await s.scalars(select(Redemption))).all()}
        pts = await talent_points(s, t.id, now=AFTER)
        stock = (await s.get(Gift, g.id)).stock  # type: ignore[union-attr]
    assert reds[r1.id].status == "applied" and reds[r1.id].pickup_code == ok.notices[0].data["pickup_code"]
    assert (reds[r2.id].reason, reds[r3.id].reason) == ("stock", "balance")
    assert pts["balance"] == 1 and pts["total"] == 3 and stock == 0  # spending: points earned stay
    async with transaction(sessions) as s:
        exact = await b.redemption(s, t, await b.gift(s, cost=1, name="笔"))
    assert isinstance(await run(sessions, redemption, exact.id, now=AFTER), Applied)  # exactly the balance
    async with sessions() as s:
        assert await ledger.talent_balance(s, t.id) == 0


# -- every entry names its rule ------------------------------------------------------------------------
async def test_every_entry_stores_its_rule_tag(sessions: Sessions) -> None:
    st, act = await held_activity(sessions)
    sid = st.id
    async with transaction(sessions) as s:
        t = await f.talent(s)
        v = await f.visit(s, t, st, START)
        await b.media(s, act, "municipal", at=AFTER)
        sv = await b.survey(s, st, 2026, 5)
        red = await b.redemption(s, t, await b.gift(s, cost=1))
    tags = {}
    for name, fact, fid in [("visit", visit, v.id), ("activity", activity, act.id), ("media", media, act.id),
                            ("survey", survey, sv.id), ("redemption", redemption, red.id)]:
        out = await run(sessions, fact, fid, now=AFTER)
        assert isinstance(out, Applied), name
        tags[name] = {e.rule for e in out.entries}
    out = await run(sessions, void, await void_of(sessions, "visit", v.id), now=AFTER)
    assert isinstance(out, Applied)
    tags["void"] = {e.rule for e in out.entries}
    assert tags == {"visit": {"R3@1"}, "activity": {"R1@1"}, "media": {"R2@1"}, "survey": {"R4@1"},
                    "redemption": {"G@1"}, "void": {"V@1"}}
    assert {r.tag for r in RULES.values()} == {"R1@1", "R2@1", "R3@1", "R4@1", "V@1", "G@1"}
    assert {r.id: r.source for r in RULES.values()} == {"R1": "A1.1", "R2": "A1.1", "R3": "A1.2", "R4": "A1.3",
                                                        "V": "A3.3", "G": "A2"}
    async with sessions() as s:
        assert (await station_points(s, sid, now=AFTER))["total"] == 5 + 5 + 5  # R1, R2, R4; the visit voided
