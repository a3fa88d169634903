"""Bind, points, rank, gifts and redeem through the real server."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import texts
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.facts import redemption as redemption_fact
from scoring.facts import visit
from scoring.facts import void as void_fact
from scoring.models import Redemption, Talent, Visit, Void
from tests import factories as f
from tests.bot import flows
from tests.bot.conftest import Bot
from tests.scoring.builders import gift, redemption

# _with_points spreads visits over the last days: pinned mid-month, the month board always separates them.
pytestmark = pytest.mark.usefixtures("quiet_clock")


async def bound_openid(bot: Bot, cert_no: str) -> str | None:
    async with bot.sessions() as s:
        return await s.scalar(select(Talent.openid).where(Talent.cert_no == cert_no))


async def test_bind_then_already_bound(any_bot: Bot) -> None:
    await flows.talent(any_bot, "QZ2026001", name="张三")
    reply = await any_bot.wx.text("oNew", "绑定 QZ2026001 张三")
    assert reply.text == texts.BIND_OK.format(name="张三")
    assert await bound_openid(any_bot, "QZ2026001") == "oNew"
    assert (await any_bot.wx.text("oNew", "bind qz2026001 张 三")).text == texts.BIND_ALREADY.format(name="张三")


async def test_bind_refusals(bot: Bot) -> None:
    await flows.talent(bot, "QZ1", name="张三")
    await flows.talent(bot, "QZ2", name="李四")
    assert (await bot.wx.text("oA", "绑定")).text == texts.BIND_USAGE
    assert (await bot.wx.text("oA", "绑定 QZ1")).text == texts.BIND_USAGE
    assert (await bot.wx.text("oA", "绑定 QZ1 王五")).text == texts.BIND_NO_MATCH.format(left=4)
    assert await bound_openid(bot, "QZ1") is None
    assert (await bot.wx.text("oA", "绑定 QZ1 张三")).text == texts.BIND_OK.format(name="张三")
    assert (await bot.wx.text("oB", "绑定 QZ1 张三")).text == texts.BIND_TALENT_TAKEN
    assert (await bot.wx.text("oA", "绑定 QZ2 李四")).text == texts.BIND_OPENID_TAKEN.format(name="张三")
    assert await bound_openid(bot, "QZ2") is None


async def test_guessing_is_stopped_after_five_tries(bot: Bot) -> None:
    await flows.talent(bot, "QZ1", name="张三")
    for i in range(4):
        assert "未找到" in (await bot.wx.text("oGuess", f"绑定 QZ{i + 2} 张三")).text
    assert (await bot.wx.text("oGuess", "绑定 QZ9 张三")).text == texts.BIND_NO_MATCH_LAST
    assert (await bot.wx.text("oGuess", "绑定 QZ1 张三")).text == texts.BIND_TOO_MANY
    assert await bound_openid(bot, "QZ1") is None


async def test_words_needing_a_binding_say_how(bot: Bot) -> None:
    for word in ("积分", "兑换 1", "报名 1", "取消 1", "我的码"):
        assert (await bot.wx.text("oNobody", word)).text == texts.NEED_BIND, word


async def _with_points(bot: Bot) -> tuple[int, int]:
    """A talent with 3 visits applied (as the worker would) and a redemption of 2."""
    now = utcnow()
    async with transaction(bot.sessions) as s:
        st = await f.station(s, "ST1", name="鲤城人才之家")
        st2 = await f.station(s, "ST2", name="丰泽人才之家")
        me = await f.talent(s, "QZ1", openid="oMe")
        rival = await f.talent(s, "QZ2", openid="oRival")
        made = [await f.visit(s, me, st, now - timedelta(days=d)) for d in (0, 1, 2)]
        made += [await f.visit(s, rival, st2, now - timedelta(days=d)) for d in (0, 1, 2, 3)]
        tea = await gift(s, cost=2, stock=5, name="茶叶")
        await gift(s, cost=100, stock=0, name="字画")
    async with transaction(bot.sessions) as s:
        await visit.credit(s, [v.id for v in made])
    return me.id, tea.id


async def test_points_show_balance_periods_and_reasons(bot: Bot) -> None:
    me, tea = await _with_points(bot)
    async with transaction(bot.sessions) as s:
        red = await redemption(s, me, tea)
    async with transaction(bot.sessions) as s:
        await redemption_fact.apply(s, red.id)  # as the worker would
    reply = (await bot.wx.text("oMe", "积分")).text
    assert reply.startswith("您的可用积分：1 分\n") and "累计 3 分" in reply
    assert reply.count("+1 到鲤城人才之家打卡") == 3 and "-2 兑换礼品「茶叶」" in reply
    empty = await flows.talent(bot, "QZ9", openid="oEmpty")
    assert empty and texts.POINTS_EMPTY in (await bot.wx.text("oEmpty", "POINTS")).text


async def test_points_show_a_balance_owed_after_a_void(bot: Bot) -> None:
    """A void took back points already spent (the decision in scoring/facts/void.py): 积分 shows the balance
    as owed, with what it takes to cover it; gifts are refused until then."""
    me, tea = await _with_points(bot)
    async with transaction(bot.sessions) as s:
        red = await redemption(s, me, tea)
    async with transaction(bot.sessions) as s:
        await redemption_fact.apply(s, red.id)  # balance 1
        visits = (await s.scalars(select(Visit.id).where(Visit.talent_id == me).order_by(Visit.id))).all()
        voids = [Void(target_kind="visit", target_id=v, actor="oAdmin", reason="代打卡") for v in visits[:2]]
        s.add_all(voids)
        await s.flush()
        for row in voids:
            await void_fact.apply(s, row.id)  # as the worker would: balance 1 - 2 = -1
    reply = (await bot.wx.text("oMe", "积分")).text
    assert reply.startswith(texts.POINTS_OWED.format(balance=-1, owed=1, year=1, month=1, total=1))
    assert reply.startswith("当前积分为 -1 分（作废的积分已扣回），再获得 1 分即可补足")
    assert reply.count("-1 撤销：到鲤城人才之家打卡") == 2
    refused = await bot.wx.text("oMe", f"兑换 #{tea}", create_time=int(time.time()) + 1)
    assert refused.text == texts.REDEEM_BALANCE.format(gift="茶叶", cost=2, available=-1)


async def test_rank_shows_top_stations_and_own_year_rank(bot: Bot) -> None:
    await _with_points(bot)
    reply = (await bot.wx.text("oMe", "排名")).text
    lines = reply.splitlines()
    assert lines[0] == texts.RANK_HEAD
    assert "丰泽人才之家" in lines[1] and "第 1 名" in lines[1]
    assert lines[-1] == texts.RANK_MINE.format(rank=2, points=3)
    assert (await bot.wx.text("oNobody", "rank")).text.endswith(texts.NEED_BIND)


async def test_gifts_and_redeem_enqueue_the_worker(bot: Bot) -> None:
    _, tea = await _with_points(bot)
    listing = (await bot.wx.text("oMe", "礼品")).text
    assert f"#{tea} 茶叶｜2 分｜库存 5" in listing and "字画｜100 分｜已兑完" in listing
    assert texts.GIFTS_BALANCE.format(balance=3) in listing
    reply = await bot.wx.text("oMe", f"兑换 #{tea}")
    assert reply.text == texts.REDEEM_OK.format(gift="茶叶", cost=2)
    async with bot.sessions() as s:
        [red] = (await s.scalars(select(Redemption))).all()
    assert red.status == "pending"
    assert await flows.jobs(bot, "redemption") == [f"redemption:{red.id}"]
    # 3 points, 2 pending: another tea is obviously too much
    again = await bot.wx.text("oMe", f"redeem {tea}", create_time=int(time.time()) + 1)
    assert again.text == texts.REDEEM_BALANCE.format(gift="茶叶", cost=2, available=1)
    assert (await bot.wx.text("oMe", "兑换 2")).text == texts.REDEEM_STOCK.format(gift="字画")
    assert (await bot.wx.text("oMe", "兑换 99")).text == texts.REDEEM_NOT_FOUND.format(id=99)
    assert (await bot.wx.text("oMe", "兑换 茶叶")).text == texts.REDEEM_USAGE
    assert len(await flows.jobs(bot, "redemption")) == 1
