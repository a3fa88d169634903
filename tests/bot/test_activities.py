"""Activities through the real server: the list, sign-up and cancel, activity scans, satisfaction answers."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import func, select

from bot import texts
from bot.handlers.signup import when
from scoring import invitations
from scoring.db import transaction
from scoring.models import Attendance, Notification, Satisfaction, Signup, Staff
from tests import factories as f
from tests.bot import flows
from tests.bot.conftest import Bot


async def test_list_is_paged_with_ids_and_covers_every_station(bot: Bot) -> None:
    north = await flows.station(bot, "N1", name="北站")
    south = await flows.station(bot, "S1", name="南站")
    made = [await flows.activity(bot, north if i % 2 else south, starts_in=timedelta(days=i + 1),
                                 title=f"活动{i}", capacity=10 if i == 0 else None) for i in range(7)]
    await flows.talent(bot, openid="oT", name="张三")
    first = (await bot.wx.text("oT", "活动")).text
    assert first.splitlines()[0] == texts.ACTIVITIES_HEAD.format(page=1, pages=2, total=7)
    assert f"#{made[0].id} 活动0" in first and "南站" in first and "北站" in first
    assert texts.SEATS_LEFT.format(left=10) in first and texts.SEATS_UNLIMITED in first
    assert texts.ACTIVITIES_NEXT.format(page=2) in first
    second = (await bot.wx.text("oT", "活动 2")).text
    assert f"#{made[5].id} 活动5" in second and f"#{made[6].id}" in second and "活动0" not in second
    assert (await bot.wx.text("oT", "activities #2", create_time=int(time.time()) + 1)).text == second


async def test_no_activities(bot: Bot) -> None:
    assert (await bot.wx.text("oT", "活动")).text == texts.ACTIVITIES_NONE


async def test_signup_cancel_and_signup_again(any_bot: Bot) -> None:
    st = await flows.station(any_bot, "ST1", name="鲤城人才之家")
    act = await flows.activity(any_bot, st, starts_in=timedelta(days=2), capacity=1)
    await flows.talent(any_bot, "QZ1", openid="oA")
    await flows.talent(any_bot, "QZ2", openid="oB")
    wx = any_bot.wx
    ok = await wx.text("oA", f"报名 #{act.id}")
    assert ok.text == texts.SIGNUP_OK.format(title=act.title, when=when(act.starts_at, act.ends_at),
                                             station="鲤城人才之家", id=act.id)
    assert (await wx.text("oA", f"signup {act.id}")).text == texts.SIGNUP_ALREADY.format(title=act.title, id=act.id)
    assert (await wx.text("oB", f"报名 {act.id}")).text == texts.SIGNUP_FULL.format(title=act.title)
    assert "#" + str(act.id) in (await wx.text("oA", "活动")).text.splitlines()[-2]  # "您已报名：#id"
    assert (await wx.text("oA", f"取消 {act.id}")).text == texts.CANCEL_OK.format(title=act.title, id=act.id)
    assert (await wx.text("oA", f"cancel {act.id}")).text == texts.CANCEL_NOT_SIGNED.format(title=act.title)
    assert "报名成功" in (await wx.text("oB", f"报名 ＃{act.id}")).text
    assert (await wx.text("oA", "报名 9999")).text == texts.SIGNUP_NOT_FOUND.format(id=9999)
    assert (await wx.text("oA", "报名 abc")).text == texts.SIGNUP_USAGE
    assert (await wx.text("oA", "取消")).text == texts.CANCEL_USAGE


async def test_signup_closes_at_the_start(bot: Bot) -> None:
    st = await flows.station(bot, "ST1")
    act = await flows.activity(bot, st, starts_in=timedelta(minutes=-1))
    await flows.talent(bot, openid="oA")
    assert (await bot.wx.text("oA", f"报名 {act.id}")).text == texts.SIGNUP_CLOSED.format(title=act.title)


async def test_fifty_concurrent_signups_for_one_seat(bot: Bot) -> None:
    st = await flows.station(bot, "ST1")
    act = await flows.activity(bot, st, starts_in=timedelta(days=1), capacity=1)
    async with transaction(bot.sessions) as s:
        for i in range(50):
            await f.talent(s, f"QZ{i:03d}", openid=f"o{i}")
    replies = await asyncio.gather(*[bot.wx.text(f"o{i}", f"报名 {act.id}") for i in range(50)])
    assert sum("报名成功" in r.text for r in replies) == 1
    assert sum(r.text == texts.SIGNUP_FULL.format(title=act.title) for r in replies) == 49
    async with bot.sessions() as s:
        assert await s.scalar(select(func.count(Signup.id))) == 1


# -- activity scans -----------------------------------------------------------------------------------
async def test_signed_up_talent_scans_the_activity_code(any_bot: Bot) -> None:
    st = await flows.station(any_bot, "ST1")
    act = await flows.activity(any_bot, st, starts_in=timedelta(minutes=10), capacity=1)
    await flows.talent(any_bot, openid="oA")
    await any_bot.wx.text("oA", f"报名 {act.id}")
    reply = await any_bot.wx.scan("oA", flows.act_scene(any_bot, act.id))
    assert reply.text == texts.ATTEND_OK.format(title=act.title, credit=texts.ATTEND_CREDIT.format(points=1))
    [v] = await flows.visits(any_bot)
    assert (v.source, v.activity_id, v.station_id, v.status) == ("activity", act.id, st.id, "accepted")
    assert await flows.jobs(any_bot, "visit") == [f"visit:{v.id}"]
    again = await any_bot.wx.scan("oA", flows.act_scene(any_bot, act.id), create_time=int(time.time()) + 1)
    assert again.text == texts.ATTEND_AGAIN.format(title=act.title, credit=texts.ATTEND_NO_CREDIT)


async def test_attendance_after_a_station_scan_the_same_day(bot: Bot) -> None:
    st = await flows.station(bot, "ST1")
    act = await flows.activity(bot, st, starts_in=timedelta(minutes=-5))
    await flows.talent(bot, openid="oA")
    assert "打卡成功" in (await bot.wx.scan("oA", flows.scene(bot, "ST1"))).text
    reply = await bot.wx.scan("oA", flows.act_scene(bot, act.id), create_time=int(time.time()) + 1)
    assert reply.text == texts.ATTEND_OK.format(title=act.title, credit=texts.ATTEND_NO_CREDIT)
    async with bot.sessions() as s:
        assert await s.scalar(select(func.count(Attendance.id))) == 1
    assert [v.reason for v in await flows.visits(bot)] == [None, "already_today"]
    assert len(await flows.jobs(bot)) == 1


async def test_walk_in_while_seats_remain_then_full(bot: Bot) -> None:
    st = await flows.station(bot, "ST1")
    act = await flows.activity(bot, st, starts_in=timedelta(minutes=20), capacity=1)
    await flows.talent(bot, "QZ1", openid="oA")
    await flows.talent(bot, "QZ2", openid="oB")
    assert "签到成功" in (await bot.wx.scan("oA", flows.act_scene(bot, act.id))).text
    full = await bot.wx.scan("oB", flows.act_scene(bot, act.id))
    assert full.text == texts.VISIT_REJECTED["activity_full"].format(title=act.title)


async def test_activity_scan_refusals(bot: Bot) -> None:
    st = await flows.station(bot, "ST1", name="本站")
    early = await flows.activity(bot, st, starts_in=timedelta(hours=2), title="晚场")
    ended = await flows.activity(bot, st, starts_in=timedelta(hours=-3), hours=1, title="早场")
    running = await flows.activity(bot, st, starts_in=timedelta(minutes=-1), title="正在进行")
    await flows.talent(bot, "QZ1", openid="oA")
    await flows.talent(bot, "QZ2", openid="oStaff")
    async with transaction(bot.sessions) as s:
        s.add(Staff(openid="oStaff", role="operator", station_id=st.id))
    t = int(time.time())
    cases = [
        ("oA", flows.act_scene(bot, early.id),
         texts.VISIT_REJECTED["activity_not_started"].format(title="晚场", start=when(early.starts_at))),
        ("oA", flows.act_scene(bot, ended.id), texts.VISIT_REJECTED["activity_ended"].format(title="早场")),
        ("oA", flows.act_scene(bot, 9999), texts.VISIT_REJECTED["unknown_activity"]),
        ("oA", flows.act_scene(bot, running.id)[:-2] + "xx", texts.VISIT_REJECTED["forged_code"]),
        ("oNobody", flows.act_scene(bot, running.id), texts.VISIT_REJECTED["not_bound"]),
        ("oStaff", flows.act_scene(bot, running.id), texts.VISIT_REJECTED["staff_own_station"].format(station="本站")),
    ]
    for i, (who, scene, expected) in enumerate(cases):
        assert (await bot.wx.scan(who, scene, create_time=t + i)).text == expected
    assert [v.reason for v in await flows.visits(bot)] == [
        "activity_not_started", "activity_ended", "unknown_activity", "forged_code", "not_bound",
        "staff_own_station"]
    assert await flows.jobs(bot) == []


# -- satisfaction ---------------------------------------------------------------------------------------
async def _attended(bot: Bot, n: int = 1) -> tuple[int, list[int]]:
    st = await flows.station(bot, "ST1", name="鲤城人才之家")
    acts = []
    for i in range(n):
        act = await flows.activity(bot, st, starts_in=timedelta(hours=-3 - i), hours=1, title=f"沙龙{i}")
        acts.append(act.id)
    async with transaction(bot.sessions) as s:
        t = await f.talent(s, openid="oA", name="张三")
        s.add_all([Attendance(activity_id=a, talent_id=t.id) for a in acts])
        s.add(Staff(openid="oOp", role="operator", station_id=st.id))
    for i, a in enumerate(acts):
        await invitations.invite(bot.arq, "oA", a, time.time() + 3600 * (10 - i))
    return t.id, acts


async def test_satisfaction_is_recorded_once(any_bot: Bot) -> None:
    _, [act] = await _attended(any_bot)
    reply = await any_bot.wx.text("oA", "5 讲得很好")
    assert reply.text == texts.SAT_OK.format(title="沙龙0", score=5)
    again = await any_bot.wx.text("oA", "4")
    assert again.text == texts.SAT_ALREADY.format(title="沙龙0")
    async with any_bot.sessions() as s:
        assert [(x.activity_id, x.score, x.comment) for x in (await s.scalars(select(Satisfaction))).all()] == \
            [(act, 5, "讲得很好")]
        assert await s.scalar(select(func.count(Notification.id))) == 0


async def test_low_score_alerts_the_operators(bot: Bot) -> None:
    tid, [act] = await _attended(bot)
    reply = await bot.wx.text("oA", "2分，太吵了，听不清")
    assert reply.text == texts.SAT_OK_LOW.format(title="沙龙0", score=2)
    async with bot.sessions() as s:
        [n] = (await s.scalars(select(Notification))).all()
        [answer] = (await s.scalars(select(Satisfaction))).all()
    assert (n.key, n.openid) == (f"lowscore:{act}:{tid}:oOp", "oOp")
    assert "太吵了，听不清" in n.payload and "鲤城人才之家" in n.payload
    assert answer.comment == "太吵了，听不清"  # the talent's own full-width comma, not NFKC's ASCII one


async def test_answers_go_to_the_oldest_pending_invitation_first(bot: Bot) -> None:
    await _attended(bot, 2)
    # the second activity's invitation ends sooner: it is answered first
    assert (await bot.wx.text("oA", "3")).text == "\n".join([
        texts.SAT_OK.format(title="沙龙1", score=3), texts.SAT_MORE.format(n=1)])
    assert (await bot.wx.text("oA", "4")).text == texts.SAT_OK.format(title="沙龙0", score=4)


async def test_outside_the_window_a_polite_note(bot: Bot) -> None:
    await flows.talent(bot, openid="oA")
    assert (await bot.wx.text("oA", "5")).text == texts.SAT_NONE
    assert (await bot.wx.text("oNobody", "5")).text == texts.NEED_BIND
    assert "没有看懂" in (await bot.wx.text("oA", "7")).text


async def test_operators_hear_of_sign_ups_and_a_full_activity(bot: Bot) -> None:
    st = await flows.station(bot, "ST1")
    await flows.operator(bot, "oOpA", st.id)
    act = await flows.activity(bot, st, starts_in=timedelta(days=1), capacity=2)
    async with transaction(bot.sessions) as s:
        for i in range(3):
            await f.talent(s, f"QZ{i:03d}", openid=f"o{i}", name=f"人才{i}")
    for i in range(3):
        await bot.wx.text(f"o{i}", f"报名 {act.id}")
    await bot.wx.text("o0", f"报名 {act.id}")  # already signed up: no second message
    async with bot.sessions() as s:
        notes = (await s.execute(select(Notification.key, Notification.openid, Notification.payload)
                                 .order_by(Notification.id))).all()
    assert [k.split(":")[0] for k, _, _ in notes] == ["signup", "signup", "full"]
    assert {o for _, o, _ in notes} == {"oOpA"}
    assert "人才0" in notes[0][2] and "1/2" in notes[0][2] and "2/2" in notes[1][2] and "已全部报满" in notes[2][2]
