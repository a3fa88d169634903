"""A low score reaches the rated station without the talent's identity; admins can see who gave it."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from sqlalchemy import select

from bot import texts
from scoring import invitations
from scoring.db import transaction
from scoring.models import Attendance, Notification, Staff
from tests import factories as f
from tests.bot import flows
from tests.bot.conftest import Bot

ADMIN = "oAdminEnv"


async def attended(bot: Bot, *, operator: bool = True) -> int:
    st = await flows.station(bot, "ST1", name="鲤城人才之家")
    act = await flows.activity(bot, st, starts_in=timedelta(hours=-3), hours=1, title="沙龙")
    async with transaction(bot.sessions) as s:
        t = await f.talent(s, "QZ2026777", openid="oA", name="张三丰")
        s.add(Attendance(activity_id=act.id, talent_id=t.id))
        if operator:
            s.add(Staff(openid="oOp", role="operator", station_id=st.id))
        s.add(Staff(openid="oAdm", role="admin"))
    await invitations.invite(bot.arq, "oA", act.id, time.time() + 3600)
    return act.id


async def notes(bot: Bot) -> list[Notification]:
    async with bot.sessions() as s:
        return list((await s.scalars(select(Notification).order_by(Notification.id))).all())


async def test_operators_are_not_told_who(safe_bot: Bot) -> None:
    act = await attended(safe_bot)
    assert (await safe_bot.wx.text("oA", "1 太吵了")).text == texts.SAT_OK_LOW.format(title="沙龙", score=1)
    [n] = await notes(safe_bot)
    assert n.openid == "oOp"
    payload = json.loads(n.payload)
    assert "太吵了" in payload["text"] and "沙龙" in payload["text"] and "1 分" in payload["text"]
    for identity in ("张三丰", "QZ2026777", "oA"):
        assert identity not in n.payload
    assert "talent_id" not in payload
    # the admin word shows who
    listing = (await safe_bot.wx.text(ADMIN, "低分")).text
    assert "张三丰" in listing and "QZ2026777" in listing and f"#{act}" in listing and "太吵了" in listing


async def test_admins_alerted_with_the_name_when_the_station_has_no_operator(safe_bot: Bot) -> None:
    await attended(safe_bot, operator=False)
    await safe_bot.wx.text("oA", "2")
    [n] = await notes(safe_bot)
    assert n.openid == "oAdm" and "张三丰" in n.payload and "QZ2026777" in n.payload


async def test_low_scores_word_is_for_admins_only(safe_bot: Bot) -> None:
    await attended(safe_bot)
    await safe_bot.wx.text("oA", "1")
    for who in ("oOp", "oA"):
        reply = (await safe_bot.wx.text(who, "低分")).text
        assert "权限" in reply and "张三丰" not in reply
    assert (await safe_bot.wx.text(ADMIN, "/lowscores 1")).text.count("\n") == 0


async def test_no_low_scores_yet(safe_bot: Bot) -> None:
    assert (await safe_bot.wx.text(ADMIN, "低分")).text == texts.AD_NO_LOW_SCORES
