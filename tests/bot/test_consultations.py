"""Consultations (咨询) with first-responder ownership (首问责任) through the real webhook and the worker."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from bot import texts
from scoring import consultations
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.models import Consultation, ConsultationEvent, Notification, Staff
from tests import factories as f
from tests.bot import flows
from tests.bot.conftest import Bot
from worker.calendar import cron_services


async def inbox(bot: Bot, openid: str) -> list[tuple[str, str]]:
    async with bot.sessions() as s:
        rows = (await s.execute(select(Notification.channel, Notification.payload).where(
            Notification.openid == openid).order_by(Notification.id))).all()
    return [(ch, json.loads(p)["text"]) for ch, p in rows]


async def consultation(bot: Bot, cid: int) -> Consultation:
    async with bot.sessions() as s:
        c = await s.get(Consultation, cid)
        assert c is not None
        return c


async def staff_id(bot: Bot, openid: str) -> int:
    async with bot.sessions() as s:
        return int(await s.scalar(select(Staff.id).where(Staff.openid == openid)) or 0)


async def setup(bot: Bot) -> tuple[int, int]:
    a = await flows.station(bot, "QZ001", name="鲤城人才之家")
    b = await flows.station(bot, "QZ002", name="丰泽人才之家")
    for openid, st in (("oA1", a), ("oA2", a), ("oB1", b)):
        await flows.operator(bot, openid, st.id)
    talent = await flows.talent(bot, "QZ1", openid="oT", name="王五")
    async with transaction(bot.sessions) as s:
        await f.visit(s, talent, a, utcnow() - timedelta(hours=1))
    return a.id, b.id


@pytest.mark.usefixtures("quiet_clock")
async def test_first_responder_owns_transfers_and_closes(safe_bot: Bot) -> None:
    await setup(safe_bot)
    wx = safe_bot.wx
    asked = (await wx.text("oT", "咨询 请问高层次人才购房补贴如何申请？")).text
    cid = 1
    assert asked == texts.ASK_OK.format(id=cid, station="鲤城人才之家")
    c = await consultation(safe_bot, cid)
    assert c.question == "请问高层次人才购房补贴如何申请？" and c.owner_openid is None
    for openid in ("oA1", "oA2"):  # every staff member of the station, with the question and its id
        assert [t for _, t in await inbox(safe_bot, openid)] == [texts.STAFF_ASKED.format(
            id=cid, station="鲤城人才之家", question=c.question)]
    assert await inbox(safe_bot, "oB1") == []
    # Station B sees nothing of station A's question.
    assert (await wx.text("oB1", "待办")).text == texts.TODO_NONE
    assert (await wx.text("oB1", f"答复 #{cid} 我来")).text == texts.CONSULT_REFUSED["not_found"].format(id=cid)
    assert (await wx.text("oB1", f"接单 #{cid}")).text == texts.CONSULT_REFUSED["not_found"].format(id=cid)
    todo = (await wx.text("oA2", "待办")).text
    assert f"#{cid} [{texts.TODO_UNOWNED}]" in todo and "购房补贴" in todo
    # The first to claim owns it; the other is told who.
    assert (await wx.text("oA1", f"接单 #{cid}")).text == texts.CLAIM_OK.format(id=cid)
    a1 = await staff_id(safe_bot, "oA1")
    owned = texts.CONSULT_REFUSED["owned"].format(id=cid, owner=texts.OWNER_STAFF.format(id=a1))
    assert (await wx.text("oA2", f"答复 #{cid} 我也来答")).text == owned
    assert (await wx.text("oA2", f"结单 #{cid}")).text == owned
    assert (await wx.text("oA1", f"答复 #{cid} 请携带人才证到住建局窗口办理。")).text == \
        texts.ANSWER_OK.format(id=cid, claimed="")
    channel, text = (await inbox(safe_bot, "oT"))[-1]
    assert (channel, text) == ("custom", texts.TALENT_ANSWER.format(id=cid, answer="请携带人才证到住建局窗口办理。"))
    # The talent adds to the question: its owner is told; someone else's question is not found.
    assert (await wx.text("oT", f"咨询 #{cid} 需要带户口本吗？")).text == texts.FOLLOW_UP_OK.format(id=cid)
    assert (await inbox(safe_bot, "oA1"))[-1][1] == texts.STAFF_FOLLOW_UP.format(id=cid, text="需要带户口本吗？")
    assert len(await inbox(safe_bot, "oA2")) == 1
    await flows.talent(safe_bot, "QZ2", openid="oT2")
    assert (await wx.text("oT2", f"咨询 #{cid} 插话")).text == texts.FOLLOW_UP_REFUSED["not_found"].format(id=cid)
    # Transfer: to a colleague of the station only; recorded; the new owner is told.
    a2 = await staff_id(safe_bot, "oA2")
    b1 = await staff_id(safe_bot, "oB1")
    assert (await wx.text("oA1", f"转交 #{cid} {b1}")).text.startswith("转交对象须为本站")
    assert (await wx.text("oA1", f"转交 #{cid} #{a2}")).text == texts.TRANSFER_OK.format(id=cid, to=a2)
    assert (await inbox(safe_bot, "oA2"))[-1][1] == texts.STAFF_TRANSFERRED.format(id=cid, question=c.question)
    assert (await wx.text("oA1", f"答复 #{cid} 补充")).text == texts.CONSULT_REFUSED["owned"].format(
        id=cid, owner=texts.OWNER_STAFF.format(id=a2))
    assert f"[{texts.TODO_MINE}]" in (await wx.text("oA2", "todo")).text
    assert (await wx.text("oA2", f"结单 #{cid}")).text == texts.CLOSE_OK.format(id=cid)
    assert (await wx.text("oA2", f"答复 #{cid} 还有")).text == texts.CONSULT_REFUSED["closed"].format(id=cid)
    assert (await wx.text("oT", f"咨询 #{cid} 再问")).text == texts.FOLLOW_UP_REFUSED["closed"].format(id=cid)
    # The talent rates the answer once; it counts in the station's figures.
    assert (await wx.text("oT", f"评价咨询 #{cid} 5")).text == texts.RATE_OK.format(id=cid, score=5)
    assert (await wx.text("oT", f"评价咨询 {cid} 4")).text == texts.RATE_REFUSED["rated"].format(id=cid)
    assert (await wx.text("oT", f"评价咨询 {cid} 9")).text == texts.RATE_USAGE
    c = await consultation(safe_bot, cid)
    assert (c.status, c.first_owner_openid, c.owner_openid, c.rating) == ("closed", "oA1", "oA2", 5)
    async with safe_bot.sessions() as s:
        kinds = (await s.scalars(select(ConsultationEvent.kind).order_by(ConsultationEvent.id))).all()
        figs = await consultations.figures(s)
    assert kinds == ["asked", "claimed", "answered", "followup", "transferred", "closed", "rated"]
    assert [(g.questions, g.answered, g.ratings, g.satisfied) for g in figs] == [(1, 1, 1, 1)]


@pytest.mark.usefixtures("quiet_clock")
async def test_targets_limits_and_refusals(safe_bot: Bot) -> None:
    await flows.station(safe_bot, "QZ001", name="鲤城人才之家")
    await flows.station(safe_bot, "QZ009", name="旧站", status="delisted")
    await flows.talent(safe_bot, "QZ1", openid="oT")
    wx = safe_bot.wx
    # Never visited: the city; the admins hear of it.
    assert (await wx.text("oT", "咨询 人才卡怎么办理？")).text == texts.ASK_OK.format(id=1, station=texts.CITY_NAME)
    assert next(t for _, t in await inbox(safe_bot, "oAdminEnv")).startswith("【新咨询 #1】市级")
    assert (await wx.text("oT", "ask QZ001 站点几点开门？")).text == texts.ASK_OK.format(id=2, station="鲤城人才之家")
    assert (await consultation(safe_bot, 2)).question == "站点几点开门？"
    assert (await wx.text("oT", "咨询　QZ001　周日开吗？")).text == texts.ASK_OK.format(id=3, station="鲤城人才之家")
    async with transaction(safe_bot.sessions) as s:  # closed by staff: no longer open, out of the limit
        (await s.get(Consultation, 3)).status = "closed"  # type: ignore[union-attr]
    assert (await wx.text("oT", "咨询 旧站 还开吗")).text == texts.ASK_REFUSED["delisted"].format(station="旧站")
    assert (await wx.text("oT", "咨询 " + "长" * 501)).text == texts.ASK_REFUSED["too_long"].format(max=500)
    assert (await wx.text("oT", "咨询")).text == texts.ASK_USAGE
    assert (await wx.text("oT", "咨询 全市 第三个问题")).text.startswith("您的咨询已提交（编号 #4）")
    assert (await wx.text("oT", "咨询 第四个")).text == texts.ASK_REFUSED["too_many"].format(limit=3)
    assert (await wx.text("oT", "评价咨询 2 5")).text == texts.RATE_REFUSED["not_answered"].format(id=2)
    assert (await wx.text("oX", "咨询 你好")).text == texts.NEED_BIND
    # An admin answers a city question; a talent may not use staff words.
    assert (await wx.text("oAdminEnv", "答复 #1 请到市人才服务中心办理。")).text == \
        texts.ANSWER_OK.format(id=1, claimed=texts.ANSWER_CLAIMED)
    assert "没有使用" in (await wx.text("oT", "答复 #1 自问自答")).text
    async with safe_bot.sessions() as s:
        assert len((await s.scalars(select(Consultation))).all()) == 4


async def test_many_operators_answer_at_once_one_owner(safe_bot: Bot) -> None:
    st = await flows.station(safe_bot, "QZ001")
    for i in range(12):
        await flows.operator(safe_bot, f"oOp{i}", st.id)
    talent = await flows.talent(safe_bot, "QZ1", openid="oT")
    async with transaction(safe_bot.sessions) as s:
        await f.visit(s, talent, st, utcnow() - timedelta(hours=1))
    assert "已提交" in (await safe_bot.wx.text("oT", "咨询 停车场在哪里？")).text
    replies = await asyncio.gather(*[safe_bot.wx.text(f"oOp{i}", f"答复 #1 答案{i}") for i in range(12)])
    won = [i for i, r in enumerate(replies) if r.text.startswith("已答复")]
    assert len(won) == 1
    owner = (await consultation(safe_bot, 1)).owner_openid
    assert owner == f"oOp{won[0]}"
    assert sum("已由工作人员" in r.text for r in replies) == 11
    assert [t for _, t in await inbox(safe_bot, "oT")] == [texts.TALENT_ANSWER.format(id=1, answer=f"答案{won[0]}")]


async def test_unanswered_questions_escalate_in_working_hours(safe_bot: Bot) -> None:
    st = await flows.station(safe_bot, "QZ001", name="鲤城人才之家")
    await flows.operator(safe_bot, "oOp", st.id)
    talent = await flows.talent(safe_bot, "QZ1", openid="oT")
    ctx = {"sessions": safe_bot.sessions, "settings": safe_bot.settings}
    asked_at = datetime.fromisoformat("2026-11-20T17:00:00+08:00")  # a Friday, one working hour left
    with time_machine.travel(asked_at, tick=True):
        async with transaction(safe_bot.sessions) as s:
            await f.visit(s, talent, st, utcnow() - timedelta(hours=1))
        assert "已提交" in (await safe_bot.wx.text("oT", "咨询 周末能来吗？")).text

    async def at(local: str) -> tuple[int, list[str], list[str]]:
        with time_machine.travel(datetime.fromisoformat(local + "+08:00"), tick=False):
            await cron_services(ctx)
        c = await consultation(safe_bot, 1)
        return c.escalation_level, [t for _, t in await inbox(safe_bot, "oOp")], \
            [t for _, t in await inbox(safe_bot, "oAdminEnv")]

    level, op, admin = await at("2026-11-22T20:00:00")  # Sunday: still one working hour spent
    assert (level, len(op), admin) == (0, 1, [])
    level, op, admin = await at("2026-11-23T11:59:00")  # Monday: 3h59m
    assert (level, len(op)) == (0, 1)
    level, op, admin = await at("2026-11-23T12:01:00")  # four working hours: the staff again
    assert (level, len(op), admin) == (1, 2, []) and op[-1].startswith("【咨询待处理】咨询 #1")
    level, op, admin = await at("2026-11-23T15:59:00")
    assert (level, admin) == (1, [])
    level, op, admin = await at("2026-11-23T16:01:00")  # eight: the admins
    assert level == 2 and len(admin) == 1 and "鲤城人才之家的咨询 #1" in admin[0]
    level, op, admin = await at("2026-11-24T16:00:00")  # once each
    assert (level, len(op), len(admin)) == (2, 2, 1)
