"""The gift catalogue through the real bot: admin words (safe mode), audit rows, refusals that change
nothing, and what talents see of station gifts."""

from __future__ import annotations

from sqlalchemy import func, select

from bot import texts
from scoring import gifts
from scoring.db import transaction
from scoring.models import AuditLog, Gift, Staff
from tests import factories as f
from tests.bot.conftest import Bot

ADMIN = "oAdminEnv"


async def ask(bot: Bot, text: str, who: str = ADMIN) -> str:
    return (await bot.wx.text(who, text)).text


async def stored(bot: Bot) -> list[tuple[object, ...]]:
    async with bot.sessions() as s:
        rows = (await s.execute(select(Gift.id, Gift.name, Gift.cost, Gift.stock, Gift.station_id, Gift.active,
                                       Gift.description).order_by(Gift.id))).all()
    return [tuple(r) for r in rows]


async def audit(bot: Bot) -> list[tuple[str, str, str, str]]:
    async with bot.sessions() as s:
        rows = (await s.execute(select(AuditLog.actor, AuditLog.role, AuditLog.command, AuditLog.outcome)
                                .order_by(AuditLog.id))).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_add_city_wide_and_station_gifts(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        st = await f.station(s, "ST1", name="鲤城人才之家")
    reply = await ask(safe_bot, "礼品 新增 保温杯 20 5")
    [(cup, *_)] = await stored(safe_bot)
    assert reply == texts.AD_GIFT_ADDED.format(id=cup, name="保温杯", cost=20, stock=5, where="全市通用")
    reply = await ask(safe_bot, "/gift add 茶叶 １０ 3 ST1")  # full-width digits too
    assert "鲤城人才之家（ST1）" in reply and "10 分" in reply
    assert [r[1:6] for r in await stored(safe_bot)] == [("保温杯", 20, 5, None, True), ("茶叶", 10, 3, st.id, True)]
    trail = await audit(safe_bot)
    assert [(a, r, c) for a, r, c, _ in trail] == [(ADMIN, "admin", "礼品 新增 保温杯 20 5"),
                                                    (ADMIN, "admin", "/gift add 茶叶 １０ 3 ST1")]
    assert trail[0][3] == texts.AD_GIFT_ADDED.format(id=cup, name="保温杯", cost=20, stock=5, where="全市通用")


async def test_add_refusals_change_nothing(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        await f.station(s, "ST1")
    assert "已上架" in await ask(safe_bot, "礼品 新增 茶叶 10 3 ST1")
    before = await stored(safe_bot)
    assert await ask(safe_bot, "礼品 新增 书 0 3") == texts.AD_GIFT_REFUSED["bad_cost"]
    assert await ask(safe_bot, "礼品 新增 书 -5 3") == texts.AD_GIFT_REFUSED["bad_cost"]
    assert await ask(safe_bot, "礼品 新增 书 5 -1") == texts.AD_GIFT_REFUSED["bad_stock"]
    assert await ask(safe_bot, "/gift add 书 5 3 NOPE") == texts.AD_NO_STATION.format(code="NOPE")
    for broken in ("礼品 新增 书 五 3", "礼品 新增 书 5", "/gift add", "礼品 新增 书 5 3 ST1 多余"):
        assert await ask(safe_bot, broken) == texts.AD_BAD_ARGS.format(usage=_usage("gift add")), broken
    exists = await ask(safe_bot, "礼品 新增 茶叶 12 1 ST1")
    assert "已有礼品「茶叶」" in exists and f"#{before[0][0]}" in exists
    assert await stored(safe_bot) == before
    assert len(await audit(safe_bot)) == 10  # refusals are audited too


def _usage(key: str) -> str:
    from bot.handlers.admin import USAGE

    return USAGE[key]


async def test_edit_restock_retire_restore(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        st = await f.station(s, "ST1", name="鲤城人才之家")
        g = await gifts.add_gift(s, name="茶叶", cost=10, stock=3)
        assert isinstance(g, Gift)
    gid = g.id
    assert await ask(safe_bot, f"礼品 修改 {gid} 积分 12") == texts.AD_GIFT_EDITED.format(
        id=gid, name="茶叶", changes="积分 10 → 12")
    assert await ask(safe_bot, f"/gift edit #{gid} name 铁观音 礼盒") == texts.AD_GIFT_EDITED.format(
        id=gid, name="铁观音 礼盒", changes="名称 茶叶 → 铁观音 礼盒")
    assert "站点 全市通用 → 鲤城人才之家（ST1）" in await ask(safe_bot, f"礼品 修改 {gid} 站点 ST1")
    assert "说明 （空） → 安溪产" in await ask(safe_bot, f"礼品 修改 {gid} 说明 安溪产")
    assert await ask(safe_bot, f"礼品 修改 {gid} 库存 3") == texts.AD_GIFT_UNCHANGED.format(
        id=gid, name="铁观音 礼盒", field="库存")
    assert await ask(safe_bot, f"礼品 补货 {gid} 7") == texts.AD_GIFT_RESTOCKED.format(
        id=gid, name="铁观音 礼盒", added=7, stock=10)
    assert await stored(safe_bot) == [(gid, "铁观音 礼盒", 12, 10, st.id, True, "安溪产")]
    assert await ask(safe_bot, f"礼品 下架 {gid}") == texts.AD_GIFT_RETIRED.format(id=gid, name="铁观音 礼盒")
    retired = texts.AD_GIFT_REFUSED["retired"].format(id=gid, name="铁观音 礼盒")
    assert await ask(safe_bot, f"/gift retire {gid}") == retired
    assert await ask(safe_bot, f"/gift restock {gid} 1") == retired
    assert await ask(safe_bot, f"/gift edit {gid} cost 1") == retired
    assert await ask(safe_bot, f"/gift restore {gid}") == texts.AD_GIFT_RESTORED.format(
        id=gid, name="铁观音 礼盒", stock=10)
    assert "无需恢复" in await ask(safe_bot, f"礼品 恢复 {gid}")
    assert (await ask(safe_bot, f"礼品 修改 {gid} 站点 全市")).endswith("站点 鲤城人才之家（ST1） → 全市通用。")
    assert await stored(safe_bot) == [(gid, "铁观音 礼盒", 12, 10, None, True, "安溪产")]
    assert len(await audit(safe_bot)) == 13


async def test_edit_and_restock_refusals_change_nothing(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        g = await gifts.add_gift(s, name="茶叶", cost=10, stock=3)
        other = await gifts.add_gift(s, name="书", cost=5, stock=1)
        assert isinstance(g, Gift) and isinstance(other, Gift)
    before = await stored(safe_bot)
    missing = texts.AD_GIFT_REFUSED["no_gift"].format(id=999)
    assert await ask(safe_bot, "礼品 修改 999 积分 3") == missing
    assert await ask(safe_bot, "礼品 补货 999 3") == missing
    assert await ask(safe_bot, "礼品 下架 999") == missing
    assert await ask(safe_bot, "礼品 恢复 999") == missing
    assert await ask(safe_bot, f"礼品 修改 {g.id} 积分 0") == texts.AD_GIFT_REFUSED["bad_cost"]
    assert await ask(safe_bot, f"礼品 修改 {g.id} 库存 -2") == texts.AD_GIFT_REFUSED["bad_stock"]
    assert await ask(safe_bot, f"礼品 补货 {g.id} 0") == texts.AD_GIFT_REFUSED["bad_stock"]
    assert await ask(safe_bot, f"礼品 补货 {g.id} -4") == texts.AD_GIFT_REFUSED["bad_stock"]
    assert await ask(safe_bot, f"礼品 修改 {g.id} 站点 NOPE") == texts.AD_NO_STATION.format(code="NOPE")
    assert "已有礼品「书」" in await ask(safe_bot, f"礼品 修改 {g.id} 名称 书")
    for broken, key in ((f"礼品 修改 {g.id} 颜色 红", "gift edit"), (f"礼品 修改 {g.id} 积分 很多", "gift edit"),
                        ("礼品 修改 茶叶 积分 3", "gift edit"), (f"礼品 补货 {g.id}", "gift restock"),
                        ("礼品 下架", "gift retire"), ("/gift restore x", "gift restore")):
        assert await ask(safe_bot, broken) == texts.AD_BAD_ARGS.format(usage=_usage(key)), broken
    assert await stored(safe_bot) == before


async def test_operator_and_talent_cannot_change_gifts(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        st = await f.station(s, "ST1")
        s.add(Staff(openid="oOp", role="operator", station_id=st.id))
        await f.talent(s, "QZ1", openid="oMe")
        g = await gifts.add_gift(s, name="茶叶", cost=10, stock=3)
        assert isinstance(g, Gift)
    before = await stored(safe_bot)
    for who in ("oOp", "oMe", "oStranger"):
        for command in ("/gift add 书 5 1", "礼品 新增 书 5 1", f"礼品 补货 {g.id} 5", f"/gift retire {g.id}",
                        f"/gift edit {g.id} cost 1", "/gift list"):
            reply = await ask(safe_bot, command, who=who)
            assert "权限" in reply, (who, command, reply)
    assert texts.NOT_ALLOWED.format(word="礼品 新增") == await ask(safe_bot, "礼品 新增 书 5 1", who="oMe")
    assert await stored(safe_bot) == before
    refusals = [r for r in await audit(safe_bot) if r[3] == "refused: role"]
    assert len(refusals) == 16  # the state-changing words (not the list) are audited when refused
    # the talent's own 礼品 still works for them
    assert "可兑换礼品" in await ask(safe_bot, "礼品", who="oMe")


async def test_plain_mode_refuses_gift_changes(bot: Bot) -> None:
    assert await ask(bot, "礼品 新增 书 5 1") == texts.PLAIN_MODE_REFUSED
    assert await stored(bot) == []


async def test_admin_list_and_bare_word(safe_bot: Bot) -> None:
    assert await ask(safe_bot, "礼品 列表") == texts.AD_GIFT_NONE
    async with transaction(safe_bot.sessions) as s:
        st = await f.station(s, "ST1", name="鲤城人才之家")
        t = await f.talent(s, "QZ1", openid="oMe")
        a = await gifts.add_gift(s, name="茶叶", cost=10, stock=3, station_id=st.id)
        b = await gifts.add_gift(s, name="书", cost=5, stock=0)
        assert isinstance(a, Gift) and isinstance(b, Gift)
        from tests.scoring.builders import redemption

        done = await redemption(s, t, a)
        done.status = "applied"
        await redemption(s, t, a)
        await gifts.retire_gift(s, b.id)
    listing = await ask(safe_bot, "/gift list")
    assert listing.splitlines() == [
        texts.AD_GIFT_LINE.format(id=a.id, name="茶叶", cost=10, stock=3, redeemed=1,
                                  pending=texts.AD_GIFT_PENDING.format(pending=1), where="鲤城人才之家（ST1）",
                                  retired=""),
        texts.AD_GIFT_LINE.format(id=b.id, name="书", cost=5, stock=0, redeemed=0, pending="", where="全市通用",
                                  retired=texts.AD_GIFT_RETIRED_MARK)]
    # an admin who is not a bound talent sees the admin list for the bare word; listing is not audited
    assert await ask(safe_bot, "礼品") == listing
    assert await audit(safe_bot) == []


async def test_admin_list_is_capped(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        for i in range(20):
            await gifts.add_gift(s, name=f"礼品{i}", cost=1 + i, stock=1)
    lines = (await ask(safe_bot, "礼品 列表")).splitlines()
    assert len(lines) == 16 and lines[-1] == texts.AD_GIFT_MORE.format(n=20, shown=15)


async def test_talent_catalogue_names_the_station(bot: Bot) -> None:
    async with transaction(bot.sessions) as s:
        st = await f.station(s, "ST1", name="丰泽人才之家")
        await f.talent(s, "QZ1", openid="oMe")
        tea = await gifts.add_gift(s, name="茶叶", cost=10, stock=3, station_id=st.id, description="安溪铁观音")
        book = await gifts.add_gift(s, name="书", cost=30, stock=0)
        gone = await gifts.add_gift(s, name="伞", cost=1, stock=9)
        assert isinstance(tea, Gift) and isinstance(book, Gift) and isinstance(gone, Gift)
        await gifts.retire_gift(s, gone.id)
    lines = (await ask(bot, "礼品", who="oMe")).splitlines()
    assert lines[:4] == [texts.GIFTS_HEAD, f"#{tea.id} 茶叶｜10 分｜库存 3｜在丰泽人才之家领取", "  安溪铁观音",
                         f"#{book.id} 书｜30 分｜已兑完"]
    assert "伞" not in "\n".join(lines)


async def test_shell_gift_word_is_audited_as_cli(safe_bot: Bot) -> None:
    from tests.cli import run_cli

    env = {"DATABASE_URL": safe_bot.settings.database_url, "REDIS_URL": safe_bot.settings.redis_url or ""}
    out = await run_cli("admin", "--actor", "ops", "/gift add 书 5 2", env=env)
    assert out.returncode == 0 and "已上架" in out.stdout, out.stderr
    async with safe_bot.sessions() as s:
        assert await s.scalar(select(func.count(Gift.id))) == 1
    assert [(a, r) for a, r, _, _ in await audit(safe_bot)] == [("cli:ops", "admin")]
