"""Service lists, duties and activity categories through the real webhook (policy measures 1, 7, 9)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import texts
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.models import Activity, AuditLog, ServiceItem, StationDuties
from tests import factories as f
from tests.bot import flows
from tests.bot.conftest import Bot

pytestmark = pytest.mark.usefixtures("quiet_clock")

COMMON = ("涉才政策咨询", "人才寻访登记", "茶咖休闲交流")


async def seed_common(bot: Bot) -> None:
    """What migration 0007 seeds (the tests' schema comes from the models)."""
    async with transaction(bot.sessions) as s:
        s.add_all([ServiceItem(station_id=None, name=n) for n in COMMON])


async def items(bot: Bot) -> list[ServiceItem]:
    async with bot.sessions() as s:
        return list((await s.scalars(select(ServiceItem).order_by(ServiceItem.id))).all())


async def test_operator_edits_own_list_and_talent_sees_it(safe_bot: Bot) -> None:
    await seed_common(safe_bot)
    mine = await flows.station(safe_bot, "QZ001", name="鲤城人才之家")
    other = await flows.station(safe_bot, "QZ002", name="丰泽人才之家")
    await flows.operator(safe_bot, "oOp", mine.id)
    await flows.operator(safe_bot, "oOther", other.id)
    wx = safe_bot.wx
    reply = await wx.text("oOp", "服务 新增 创业辅导 | 一对一创业咨询 | 每周三下午 | 是 | 3")
    added = (await items(safe_bot))[-1]
    assert reply.text == texts.SVC_ADDED.format(id=added.id, name="创业辅导")
    assert (added.station_id, added.bookable, added.capacity, added.schedule) == (mine.id, True, 3, "每周三下午")
    assert (await wx.text("oOp", "服务 新增 创业辅导 | 重复")).text == texts.SVC_REFUSED["duplicate"]
    assert (await wx.text("oOp", "服务 新增 法律咨询 | 说明 | 周一 | 是")).text == texts.SVC_REFUSED["bad_capacity"]
    assert (await wx.text("oOp", "服务 新增 法律咨询 | 说明 | 周一 | 也许 | 3")).text == texts.SVC_ADD_USAGE
    # Another station's operator cannot touch it, nor anyone the common list.
    assert (await wx.text("oOther", f"服务 修改 {added.id} 改名")).text == texts.SVC_REFUSED["other_station"]
    assert (await wx.text("oOp", "服务 下架 1")).text == texts.SVC_REFUSED["other_station"]
    assert (await wx.text("oOp", f"服务 修改 {added.id} 创业辅导 | 新说明 | 每周四 | 否")).text == \
        texts.SVC_EDITED.format(id=added.id, name="创业辅导")
    assert (await wx.text("oOp", "服务职责 为人才提供政策咨询与创业辅导的“管家”服务。")).text == \
        texts.DUTIES_OK.format(name="鲤城人才之家")
    await flows.talent(safe_bot, "QZ1", openid="oT")
    listing = (await wx.text("oT", "服务 QZ001")).text
    assert listing.splitlines()[0] == texts.SERVICES_HEAD.format(name="鲤城人才之家", code="QZ001")
    assert "服务职责：为人才提供政策咨询与创业辅导的“管家”服务。" in listing
    assert all(n in listing for n in COMMON) and "创业辅导（每周四）：新说明" in listing
    assert listing == (await wx.text("oT", "services 鲤城")).text  # by a part of the name, English alias
    # No visit yet: 服务 alone asks which station; after a check-in it shows the last one visited.
    assert (await wx.text("oT", "服务")).text == texts.SERVICES_WHICH
    async with transaction(safe_bot.sessions) as s:
        talent = await f.talent(s, "QZ9", openid="oV")
        await f.visit(s, talent, mine, utcnow() - timedelta(hours=1))
    assert (await wx.text("oV", "服务")).text == listing
    assert (await wx.text("oT", "服务 不存在的站")).text == texts.SERVICES_NO_STATION.format(text="不存在的站")
    assert (await wx.text("oOp", f"服务 下架 {added.id}")).text == \
        texts.SVC_REMOVED.format(id=added.id, name="创业辅导")
    assert "创业辅导（" not in (await wx.text("oT", "服务 QZ001")).text
    # Every change is audited; a talent's 服务 新增 is refused and changes nothing.
    async with safe_bot.sessions() as s:
        audited = (await s.scalars(select(AuditLog.command).where(AuditLog.actor == "oOp"))).all()
        duties = await s.get(StationDuties, mine.id)
    assert sum("服务" in c for c in audited) == 8 and duties is not None and duties.updated_by == "oOp"
    before = await items(safe_bot)
    assert "没有使用" in (await wx.text("oT", "服务 新增 偷加 | x")).text
    assert len(await items(safe_bot)) == len(before)


async def test_admin_edits_common_list_and_any_station(safe_bot: Bot) -> None:
    await seed_common(safe_bot)
    st = await flows.station(safe_bot, "QZ001", name="泉港人才之家")
    wx = safe_bot.wx
    reply = (await wx.text("oAdminEnv", "服务 新增 全市 人才公寓申请指引 | 说明")).text
    common = (await items(safe_bot))[-1]
    assert reply == texts.SVC_ADDED.format(id=common.id, name="人才公寓申请指引") and common.station_id is None
    assert (await wx.text("oAdminEnv", "服务 新增 QZ001 石化产业对接 | 产才匹配")).text.startswith("已新增")
    assert (await wx.text("oAdminEnv", "服务 新增 NOPE 某服务")).text == texts.SVC_REFUSED["no_station"]
    assert (await wx.text("oAdminEnv", "服务职责 QZ001 聚合行业发展信息，协助产才匹配。")).text == \
        texts.DUTIES_OK.format(name="泉港人才之家")
    assert (await wx.text("oAdminEnv", "服务 修改 1 涉才政策咨询 | 人才政策解读与申报指导")).text.startswith("已修改")
    await flows.talent(safe_bot, "QZ1", openid="oT")
    listing = (await wx.text("oT", "服务 qz001")).text
    assert "人才公寓申请指引" in listing and "石化产业对接：产才匹配" in listing
    assert "涉才政策咨询：人才政策解读与申报指导" in listing
    async with transaction(safe_bot.sessions) as s:
        (await s.get(type(st), st.id)).status = "delisted"  # type: ignore[union-attr]
    assert (await wx.text("oT", "服务 QZ001")).text == texts.SERVICES_DELISTED.format(name="泉港人才之家")


async def test_activity_category_and_filter(safe_bot: Bot) -> None:
    st = await flows.station(safe_bot, "QZ001")
    other = await flows.station(safe_bot, "QZ002")
    lecture = await flows.activity(safe_bot, st, starts_in=timedelta(days=2), title="人工智能讲座")
    salon = await flows.activity(safe_bot, st, starts_in=timedelta(days=3), title="茶叙沙龙")
    theirs = await flows.activity(safe_bot, other, starts_in=timedelta(days=3), title="别站活动")
    await flows.operator(safe_bot, "oOp", st.id)
    wx = safe_bot.wx
    assert (await wx.text("oOp", f"活动分类 {lecture.id} 人才讲堂")).text == \
        texts.CATEGORY_OK.format(id=lecture.id, title="人工智能讲座", category="人才讲堂")
    assert (await wx.text("oOp", f"活动分类 {theirs.id} 人才讲堂")).text == texts.SVC_REFUSED["other_station"]
    assert (await wx.text("oOp", f"活动分类 {salon.id} 相声")).text == texts.CATEGORY_USAGE
    async with safe_bot.sessions() as s:
        assert (await s.get(Activity, theirs.id)).category == "other"  # type: ignore[union-attr]
    await flows.talent(safe_bot, "QZ1", openid="oT")
    only = (await wx.text("oT", "活动 人才讲堂")).text
    assert "人工智能讲座" in only and "茶叙沙龙" not in only and "别站活动" not in only
    assert (await wx.text("oT", "活动 研修班")).text == texts.ACTIVITIES_CATEGORY_NONE.format(category="研修班")
    everything = (await wx.text("oT", "活动")).text
    assert "人工智能讲座" in everything and "茶叙沙龙" in everything
