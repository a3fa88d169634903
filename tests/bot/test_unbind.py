"""Unbinding through the real bot: the talent's own `解绑`, an admin's `解绑 <人才证号>`, audit rows, and
what an unbound WeChat account gets afterwards."""

from __future__ import annotations

from sqlalchemy import select

from bot import texts
from scoring.db import transaction
from scoring.models import AuditLog, Staff, Talent
from tests import factories as f
from tests.bot.conftest import Bot

ADMIN = "oAdminEnv"


async def ask(bot: Bot, text: str, who: str) -> str:
    return (await bot.wx.text(who, text)).text


async def openids(bot: Bot) -> dict[str, str | None]:
    async with bot.sessions() as s:
        return dict((await s.execute(select(Talent.cert_no, Talent.openid))).all())  # type: ignore[arg-type]


async def audit(bot: Bot) -> list[tuple[str, str, str]]:
    async with bot.sessions() as s:
        rows = (await s.execute(select(AuditLog.actor, AuditLog.role, AuditLog.command).order_by(AuditLog.id))).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_talent_unbinds_themselves(bot: Bot) -> None:
    async with transaction(bot.sessions) as s:
        await f.talent(s, "QZ001", openid="oMe", name="张三")
    assert await ask(bot, "解绑", "oMe") == texts.UNBIND_OK.format(name="张三", cert_no="QZ001")
    assert await openids(bot) == {"QZ001": None}
    # talent words now ask to bind first; unbinding again changes nothing
    assert await ask(bot, "积分", "oMe") == texts.NEED_BIND
    assert await ask(bot, "UNBIND", "oMe") == texts.UNBIND_NOT_BOUND
    assert await audit(bot) == [("oMe", "talent", "解绑"), ("oMe", "talent", "UNBIND")]
    async with bot.sessions() as s:
        outcomes = (await s.scalars(select(AuditLog.outcome).order_by(AuditLog.id))).all()
    assert outcomes[1] == "refused: not_bound"
    # and binding again works
    assert await ask(bot, "绑定 QZ001 张三", "oMe") == texts.BIND_OK.format(name="张三")


async def test_admin_unbinds_a_talent(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        await f.talent(s, "QZ001", openid="oMe", name="张三")
        await f.talent(s, "QZ002", name="李四")
    assert await ask(safe_bot, "解绑 QZ001", ADMIN) == texts.AD_UNBIND_OK.format(cert_no="QZ001", name="张三")
    assert await ask(safe_bot, "/unbind QZ001", ADMIN) == texts.AD_UNBIND_NOT_BOUND.format(cert_no="QZ001",
                                                                                         name="张三")
    assert await ask(safe_bot, "/unbind QZ002", ADMIN) == texts.AD_UNBIND_NOT_BOUND.format(cert_no="QZ002",
                                                                                         name="李四")
    assert await ask(safe_bot, "解绑 QZ404", ADMIN) == texts.AD_UNBIND_NO_TALENT.format(cert_no="QZ404")
    assert "格式" in await ask(safe_bot, "/unbind", ADMIN)
    assert await openids(safe_bot) == {"QZ001": None, "QZ002": None}
    assert await ask(safe_bot, "积分", "oMe") == texts.NEED_BIND
    assert [(a, r) for a, r, _ in await audit(safe_bot)] == [(ADMIN, "admin")] * 5


async def test_only_admins_unbind_others(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        st = await f.station(s, "ST1")
        s.add(Staff(openid="oOp", role="operator", station_id=st.id))
        await f.talent(s, "QZ001", openid="oMe")
        await f.talent(s, "QZ002", openid="oYou")
    for who in ("oOp", "oYou"):
        assert await ask(safe_bot, "解绑 QZ001", who) == texts.NOT_ALLOWED.format(word="解绑")
        assert await ask(safe_bot, "/unbind QZ001", who) == texts.NOT_ALLOWED.format(word="/unbind")
    assert await openids(safe_bot) == {"QZ001": "oMe", "QZ002": "oYou"}
    assert len(await audit(safe_bot)) == 4  # refusals audited
    # the bare word is everyone's own: the operator is bound to no talent
    assert await ask(safe_bot, "解绑", "oOp") == texts.UNBIND_NOT_BOUND
