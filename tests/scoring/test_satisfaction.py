"""scoring.satisfaction and scoring.gifts: answers once, low scores alert in the same transaction; gift requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import gifts, invitations, satisfaction
from scoring.clock import unix, utcnow
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts import visit
from scoring.models import Notification, Redemption, Satisfaction, Staff
from scoring.satisfaction import Recorded, SatisfactionRefusal
from tests import factories as f
from tests.scoring.builders import activity, attend, gift, local

NOW = local(2026, 11, 2, 18, 0)
ALERT = "{station}|{title}|{score}|{comment}|{name}"


@pytest.fixture
async def lite(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(sqlite_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.mark.parametrize(("text", "parsed"), [
    ("5", (5, "")), (" 4 很好", (4, "很好")), ("2分，太吵了", (2, "太吵了")), ("３", (3, "")),
    ("1星!", (1, "")), ("5,讲得好", (5, "讲得好")),
    # the comment keeps the talent's own characters: full-width punctuation, digits and letters
    ("2，太吵了，听不清", (2, "太吵了，听不清")), ("２分：音响（麦克风）太吵！", (2, "音响（麦克风）太吵！")),
    ("4　ＰＰＴ第３页看不清", (4, "ＰＰＴ第３页看不清")), ("5 ﬁne", (5, "ﬁne")),
    ("6", None), ("0", None), ("12", None), ("3个人", None), ("好", None), ("", None),
])
def test_parse_answer(text, parsed):
    assert satisfaction.parse_answer(text) == parsed


async def _setup(sessions, operators=("oOp1", "oOp2")):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1", name="鲤城人才之家")
        act = await activity(s, st, starts_at=NOW)
        t = await f.talent(s, openid="oT", name="张三")
        await attend(s, act, t)
        s.add_all([Staff(openid=o, role="operator", station_id=st.id) for o in operators])
        s.add(Staff(openid="oAdmin", role="admin"))
    return act, t


async def record(sessions, act, t, score, comment=""):
    async with transaction(sessions) as s:
        return await satisfaction.record(s, talent_id=t.id, activity_id=act.id, score=score, comment=comment,
                                         now=NOW, alert_text=ALERT)


async def outbox(sessions) -> list[Notification]:
    async with sessions() as s:
        return list((await s.scalars(select(Notification).order_by(Notification.id))).all())


async def test_low_score_alerts_each_operator_once(lite):
    sessions = lite
    act, t = await _setup(sessions)
    out = await record(sessions, act, t, 2, "太吵")
    assert isinstance(out, Recorded) and out.alerted == 2
    again = await record(sessions, act, t, 5)
    assert again.reason is SatisfactionRefusal.ALREADY
    rows = await outbox(sessions)
    assert [(n.key, n.openid) for n in rows] == [
        (f"lowscore:{act.id}:{t.id}:oOp1", "oOp1"), (f"lowscore:{act.id}:{t.id}:oOp2", "oOp2")]
    assert json.loads(rows[0].payload)["text"] == "鲤城人才之家|沙龙|2|太吵|"  # the station is not told who
    assert "talent_id" not in json.loads(rows[0].payload)
    async with sessions() as s:
        assert [(x.score, x.comment) for x in (await s.scalars(select(Satisfaction))).all()] == [(2, "太吵")]


async def test_good_score_alerts_nobody_and_no_operator_means_admins(lite):
    act, t = await _setup(lite, operators=())
    assert (await record(lite, act, t, 4)).alerted == 0
    assert await outbox(lite) == []
    async with transaction(lite) as s:
        other = await f.talent(s, openid="oT2")
        await attend(s, act, other)
    assert (await record(lite, act, other, 1)).alerted == 1
    assert [n.openid for n in await outbox(lite)] == ["oAdmin"]
    async with lite() as s:
        assert await satisfaction.rate(s, act.id) == (2, 0.5)


async def test_alert_rolls_back_with_the_answer(lite):
    act, t = await _setup(lite)
    with pytest.raises(RuntimeError):
        async with transaction(lite) as s:
            await satisfaction.record(s, talent_id=t.id, activity_id=act.id, score=1, comment="",
                                      now=NOW, alert_text=ALERT)
            raise RuntimeError("crash before commit")
    assert await outbox(lite) == []
    assert isinstance(await record(lite, act, t, 1), Recorded)


async def test_only_attendees_answer(lite):
    act, _ = await _setup(lite)
    async with transaction(lite) as s:
        stranger = await f.talent(s, openid="oX")
    assert (await record(lite, act, stranger, 5)).reason is SatisfactionRefusal.NOT_ATTENDED


async def test_gift_requests(lite):
    async with transaction(lite) as s:
        st = await f.station(s, "ST1")
        t = await f.talent(s, openid="oT")
        made = [await f.visit(s, t, st, local(2026, 11, d, 9)) for d in (1, 2, 3)]
        tea = await gift(s, cost=2, name="茶叶")
        empty = await gift(s, cost=1, stock=0, name="书")
    async with transaction(lite) as s:
        await visit.credit(s, [v.id for v in made])  # balance 3

    async def ask(gift_id: int):
        async with transaction(lite) as s:
            return await gifts.request_redemption(s, talent_id=t.id, gift_id=gift_id)

    first = await ask(tea.id)
    assert isinstance(first, gifts.Requested) and first.job.id == f"redemption:{first.redemption.id}"
    second = await ask(tea.id)  # 3 - 2 pending = 1 < 2
    assert isinstance(second, gifts.RedeemRefused) and (second.reason, second.available) == ("balance", 1)
    assert (await ask(empty.id)).reason is gifts.RedeemRefusal.STOCK
    assert (await ask(999)).reason is gifts.RedeemRefusal.NOT_FOUND
    async with lite() as s:
        assert [(r.status, r.gift_id) for r in (await s.scalars(select(Redemption))).all()] == [("pending", tea.id)]
        assert [g.name for g in await gifts.catalogue(s)] == ["书", "茶叶"]


async def test_answer_goes_to_the_earliest_open_invitation(lite, redis):
    """scoring.satisfaction.answer picks the invitation: earliest deadline first, answered ones skipped,
    stale ones (not an attendee) closed on the way; `more` counts the rest; nothing pending: NOT_INVITED.
    Redis expires invitations on its own clock, so this test runs at the real time (relative times only)."""
    now = utcnow()
    async with transaction(lite) as s:
        st = await f.station(s, "ST1")
        t = await f.talent(s, openid="oT")
        early, late, stale = [await activity(s, st, starts_at=now - timedelta(hours=h)) for h in (30, 20, 40)]
        await attend(s, early, t)
        await attend(s, late, t)
    deadline = unix(now) + 3600
    await invitations.invite(redis, "oT", late.id, deadline + 200)
    await invitations.invite(redis, "oT", early.id, deadline + 100)
    await invitations.invite(redis, "oT", stale.id, deadline)  # soonest, but the talent did not attend

    async def answer(score: int, comment: str = ""):
        async with transaction(lite) as s:
            return await satisfaction.answer(s, redis, openid="oT", talent_id=t.id, score=score, comment=comment,
                                             now=now, alert_text=ALERT)

    first = await answer(5, "很好")
    assert isinstance(first, Recorded) and first.activity.id == early.id and first.more == 1
    assert await invitations.pending(redis, "oT", unix(now)) == [early.id, late.id]  # the stale one closed
    second = await answer(4)
    assert isinstance(second, Recorded) and second.activity.id == late.id and second.more == 0
    third = await answer(3)
    assert third.reason is SatisfactionRefusal.ALREADY and third.activity.id == late.id
    async with transaction(lite) as s:
        nobody = await satisfaction.answer(s, redis, openid="oX", talent_id=t.id, score=3, comment="", now=now,
                                           alert_text=ALERT)
    assert nobody == satisfaction.SatisfactionRefused(SatisfactionRefusal.NOT_INVITED)
    async with lite() as s:
        rows = (await s.execute(select(Satisfaction.activity_id, Satisfaction.score, Satisfaction.comment)
                                .order_by(Satisfaction.id))).all()
    assert [tuple(r) for r in rows] == [(early.id, 5, "很好"), (late.id, 4, "")]
