"""Refused staff words never push real actions out of 审计: actions and refusals are kept apart
(audit_log.kind), the view lists actions and counts the refusals, `审计 拒绝` lists those."""

from __future__ import annotations

from sqlalchemy import select

from bot import texts
from scoring.db import transaction
from scoring.models import AuditLog
from tests import factories as f
from tests.bot.conftest import Bot

ADMIN = "oAdminEnv"


async def ask(bot: Bot, text: str, who: str = ADMIN) -> str:
    return (await bot.wx.text(who, text)).text


async def test_flood_of_refusals_keeps_admin_actions_in_view(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        await f.station(s, "ST1")
    assert "运营人员" in await ask(safe_bot, "人员 新增 oOp1 operator ST1")
    assert await ask(safe_bot, "/station delist ST1 弄虚作假") == texts.AD_DELISTED.format(code="ST1")
    for i in range(60):  # followers typing admin words: each refused
        assert "权限" in await ask(safe_bot, f"/station delist ST{i} x", who=f"oStranger{i % 3}")
    assert "权限" in await ask(safe_bot, "/staff add oMe admin", who="oOp1")  # an operator, refused too
    trail = await ask(safe_bot, "审计")
    lines = trail.split("\n")
    assert "人员 新增 oOp1 operator ST1" in lines[0] and "/station delist ST1 弄虚作假" in lines[1]
    assert lines[2] == texts.AD_AUDIT_REFUSALS.format(n=61) and len(lines) == 3
    assert "oStranger" not in trail
    refused = await ask(safe_bot, "审计 拒绝 5")
    assert refused.count("\n") == 4 and "oOp1" in refused and "refused: role" in refused
    assert "oStranger" in await ask(safe_bot, "/audit refused")
    async with safe_bot.sessions() as s:
        kinds = (await s.execute(select(AuditLog.kind, AuditLog.outcome))).all()
    assert sorted({(k, o.startswith("refused:")) for k, o in kinds}) == [("action", False), ("refusal", True)]


async def test_plain_mode_refusal_is_a_refusal(bot: Bot) -> None:
    assert await ask(bot, "/station delist ST1 x") == texts.PLAIN_MODE_REFUSED
    async with bot.sessions() as s:
        assert (await s.execute(select(AuditLog.kind, AuditLog.outcome))).all() == [
            ("refusal", "refused: plain mode")]


async def test_nothing_yet(safe_bot: Bot) -> None:
    assert await ask(safe_bot, "审计") == texts.AD_NO_AUDIT
    assert await ask(safe_bot, "审计 拒绝") == texts.AD_NO_REFUSALS
    assert "权限" in await ask(safe_bot, "/flags x", who="oNobody")
    assert await ask(safe_bot, "审计") == texts.AD_NO_AUDIT  # /flags changes nothing: not audited at all
