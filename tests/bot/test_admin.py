"""Admin words through the real bot (safe mode): happy paths, refusals, idempotency, audit rows, jobs."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select

from bot import texts
from scoring import ledger
from scoring.db import transaction
from scoring.facts import visit
from scoring.models import (
    AuditLog,
    DeadLetter,
    Extension,
    Flag,
    Notification,
    Staff,
    Station,
    SurveyResult,
    Void,
    Warning,
)
from scoring.texts import admin as admin_texts
from tests import factories as f
from tests.bot import flows
from tests.bot.conftest import Bot
from tests.cli import run_cli

ADMIN = "oAdminEnv"


async def ask(bot: Bot, text: str, who: str = ADMIN) -> str:
    return (await bot.wx.text(who, text)).text


async def count(bot: Bot, model: type) -> int:
    async with bot.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_station_add_delist_reinstate(safe_bot: Bot) -> None:
    reply = await ask(safe_bot, "站点 新增 QZ01 鲤城人才之家 home comprehensive 鲤城区 2026-03-01")
    assert reply == texts.AD_STATION_ADDED.format(code="QZ01", name="鲤城人才之家", eligible="2027-01-01")
    assert await ask(safe_bot, "/station add QZ01 X home service 丰泽区 2026-03-01") == texts.AD_EXISTS.format(
        code="QZ01")
    assert "格式" in await ask(safe_bot, "/station add QZ02 X palace service 丰泽区 2026-03-01")
    assert "格式" in await ask(safe_bot, "/station add QZ02 X home service 丰泽区 2026-13-01")
    assert await ask(safe_bot, "站点 摘牌 QZ01 弄虚作假") == texts.AD_DELISTED.format(code="QZ01")
    assert await ask(safe_bot, "/station delist QZ01 again") == texts.AD_ALREADY_DELISTED.format(code="QZ01")
    assert await ask(safe_bot, "/station delist NOPE x") == texts.AD_NO_STATION.format(code="NOPE")
    async with safe_bot.sessions() as s:
        st = await s.scalar(select(Station).where(Station.code == "QZ01"))
        assert st is not None and st.status == "delisted" and (st.delisted_code, st.delisted_params) == (
            "admin", {"text": "弄虚作假"})
        assert admin_texts.delisting(st.delisted_code, st.delisted_params) == "弄虚作假"
        assert st.eligible_from == datetime(2026, 12, 31, 16, 0) and st.stars == 3
    assert await ask(safe_bot, "/station reinstate QZ01") == texts.AD_REINSTATED.format(code="QZ01")
    assert await count(safe_bot, Station) == 1
    assert await count(safe_bot, AuditLog) == 8


async def test_staff_add_and_remove(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        await f.station(s, "ST9")
    assert "运营人员" in await ask(safe_bot, "人员 新增 oOp9 operator ST9")
    assert "管理员" in await ask(safe_bot, "/staff add oAd2 admin")
    assert await ask(safe_bot, "/staff add oOp8 operator NOPE") == texts.AD_NO_STATION.format(code="NOPE")
    assert "格式" in await ask(safe_bot, "/staff add oOp8 operator")
    assert "格式" in await ask(safe_bot, "/staff add oOp8 king ST9")
    # the new admin can act at once; the removed one cannot
    assert "风险" in await ask(safe_bot, "/flags", who="oAd2") or await ask(safe_bot, "/flags", who="oAd2") == \
        texts.AD_NO_FLAGS
    assert await ask(safe_bot, "/staff remove oAd2") == texts.AD_STAFF_REMOVED.format(openid="oAd2")
    assert "权限" in await ask(safe_bot, "/flags", who="oAd2")
    assert await ask(safe_bot, "/staff remove oAd2") == texts.AD_STAFF_MISSING.format(openid="oAd2")
    async with safe_bot.sessions() as s:
        rows = (await s.execute(select(Staff.openid, Staff.role, Staff.active))).all()
    assert sorted(map(tuple, rows)) == [("oAd2", "admin", False), ("oOp9", "operator", True)]


async def test_operator_cannot_use_admin_words(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        st = await f.station(s, "ST1")
        s.add(Staff(openid="oOp", role="operator", station_id=st.id))
    for command in ("/station delist ST1 x", "/survey ST1 2026 +10 x", "/void visit 1 x", "/flags", "/audit"):
        assert "权限" in await ask(safe_bot, command, who="oOp"), command
    async with safe_bot.sessions() as s:
        assert (await s.get(Station, st.id)).status == "active"  # type: ignore[union-attr]
        assert await s.scalar(select(func.count(SurveyResult.id))) == 0


async def test_void_is_recorded_once_and_enqueued(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        st, t = await f.station(s, "ST1"), await f.talent(s)
        v = await f.visit(s, t, st, datetime(2026, 11, 2, 3, 0))
    reply = await ask(safe_bot, f"作废 visit #{v.id} 代刷打卡")
    assert reply.startswith("作废申请 #") and f"#{v.id}" in reply
    assert await ask(safe_bot, f"/void visit {v.id} again") == texts.AD_VOID_ALREADY.format(kind="打卡", target=v.id)
    assert await ask(safe_bot, "/void visit 999 x") == texts.AD_VOID_MISSING.format(kind="打卡", target=999)
    assert "格式" in await ask(safe_bot, "/void planet 1 x")
    assert "格式" in await ask(safe_bot, f"/void visit {v.id}")
    async with safe_bot.sessions() as s:
        voids = (await s.execute(select(Void.target_kind, Void.target_id, Void.actor, Void.reason))).all()
    assert list(map(tuple, voids)) == [("visit", v.id, ADMIN, "代刷打卡")]
    assert [(j.function, j.args[0]) for j in await safe_bot.queued_jobs()] == [("apply", "void")]


async def test_survey_within_the_cap(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        st = await f.station(s, "ST1")
        s.add(SurveyResult(station_id=st.id, year=2026, amount=40, status="applied", entered_by="x"))
        await s.flush()
        survey_id = await s.scalar(select(SurveyResult.id))
        await ledger.post(s, [ledger.Draft(key=f"survey:{st.id}:2026:{survey_id}", amount=40, rule="R4@1",
                                           fact_kind="survey", fact_id=survey_id, occurred_at=datetime(2026, 6, 1),
                                           station_id=st.id)])
    assert "已登记" in await ask(safe_bot, "调查 ST1 2026 +10 满意度测评")
    assert await ask(safe_bot, "/survey ST1 2026 +1 again") == texts.AD_SURVEY_CAP.format(
        code="ST1", year=2026, total=50)
    assert "已登记" in await ask(safe_bot, "/survey ST1 2026 -100 测评扣分")  # 40 + 10 - 100 = -50
    assert await ask(safe_bot, "/survey ST1 2026 -1 x") == texts.AD_SURVEY_CAP.format(code="ST1", year=2026,
                                                                                     total=-50)
    assert "格式" in await ask(safe_bot, "/survey ST1 2026 10 missing-sign")
    assert await ask(safe_bot, "/survey NOPE 2026 +1 x") == texts.AD_NO_STATION.format(code="NOPE")
    async with safe_bot.sessions() as s:
        pending = (await s.scalars(select(SurveyResult.amount).where(SurveyResult.status == "pending"))).all()
    assert list(pending) == [10, -100]
    assert [(j.function, j.args[0]) for j in await safe_bot.queued_jobs()] == [("apply", "survey")] * 2


async def test_extend_and_warn(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        st = await f.station(s, "ST1")
        s.add(Staff(openid="oOp1", role="operator", station_id=st.id))
    assert "延长 10 天" in await ask(safe_bot, "延期 ST1 2026 10 台风停业")
    assert await ask(safe_bot, "/extend ST1 2026 0 x") == texts.AD_EXTEND_RANGE
    assert await ask(safe_bot, "/extend ST1 2026 400 x") == texts.AD_EXTEND_RANGE
    assert "已记录" in await ask(safe_bot, "提醒 ST1 打卡数据异常，请核查")
    async with safe_bot.sessions() as s:
        assert (await s.scalar(select(Extension.days))) == 10
        assert (await s.scalar(select(Warning.note))) == "打卡数据异常，请核查"
        note = await s.scalar(select(Notification))
    assert note is not None and note.openid == "oOp1" and "打卡数据异常" in note.payload


async def test_flags_release_dead_retry_audit(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        st, t = await f.station(s, "ST1"), await f.talent(s)
        v = await f.visit(s, t, st, datetime(2026, 11, 2, 3, 0))
        s.add(Flag(rule="multi_station", hold=True, station_id=st.id, talent_id=t.id, visit_id=v.id,
                   params={"minutes": 30, "n": 3, "codes": ["ST1", "ST2", "ST3"]}))
        s.add(DeadLetter(task="visit", fact_id=v.id, reason="LedgerConflict"))
    listing = await ask(safe_bot, "风险")
    assert "multi_station（暂扣）" in listing and "ST1" in listing
    assert "30分钟内在3个不同站点打卡：ST1、ST2、ST3" in listing  # rendered from the flag's numbers
    async with safe_bot.sessions() as s:
        flag_id = await s.scalar(select(Flag.id))
        dead_id = await s.scalar(select(DeadLetter.id))
    assert await ask(safe_bot, f"释放 #{flag_id}") == texts.AD_RELEASE_OK.format(id=flag_id)
    assert await ask(safe_bot, "/release 999") == texts.AD_NO_FLAG.format(id=999)
    assert "LedgerConflict" in await ask(safe_bot, "/dead")
    assert await ask(safe_bot, f"/retry {dead_id}") == texts.AD_RETRY_OK.format(id=dead_id)
    assert await ask(safe_bot, f"/retry {dead_id}") == texts.AD_DEAD_MISSING.format(id=dead_id)
    assert await ask(safe_bot, "/dead") == texts.AD_NO_DEAD
    # the release is recorded at once, and the visit's apply queued; so is the retry's
    assert await flows.jobs(safe_bot) == [f"visit:{v.id}:release{flag_id}", f"visit:{v.id}:retry{dead_id}"]
    async with safe_bot.sessions() as s:
        released = await s.get(Flag, flag_id)
    assert released is not None and (released.status, released.resolved_by) == ("released", ADMIN)
    assert await ask(safe_bot, f"释放 #{flag_id}") == texts.AD_NO_FLAG.format(id=flag_id)  # once
    trail = await ask(safe_bot, "/audit 3")
    assert trail.count("\n") == 2 and "/retry" in trail and ADMIN in trail


async def test_admin_from_the_shell(safe_bot: Bot) -> None:
    """`talenthome admin` runs the same command code, as cli:<user>, with the same audit row."""
    env = {"DATABASE_URL": safe_bot.settings.database_url, "REDIS_URL": safe_bot.settings.redis_url or ""}
    out = await run_cli("admin", "--actor", "ops", "/station add CL1 命令行站 community service 南安市 2025-01-02",
                        env=env)
    assert out.returncode == 0, out.stderr
    assert "CL1" in out.stdout and "已新增" in out.stdout
    async with safe_bot.sessions() as s:
        st = await s.scalar(select(Station).where(Station.code == "CL1"))
        audit = (await s.execute(select(AuditLog.actor, AuditLog.role))).all()
    assert st is not None and st.kind == "community" and st.certified_on == date(2025, 1, 2)
    assert list(map(tuple, audit)) == [("cli:ops", "admin")]
    bad = await run_cli("admin", "  ", env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == "talenthome: error: empty command text"


async def test_month_close_and_rating_words(safe_bot: Bot) -> None:
    async with transaction(safe_bot.sessions) as s:
        stations = [await f.station(s, f"R{i}") for i in range(5)]
        talent = await f.talent(s)
        for i, st in enumerate(stations):  # R4 scores most in Oct 2025 (and 2025), R0 least
            for d in range(i + 1):
                v = await f.visit(s, talent, st, datetime(2025, 10, 1 + d, 2, 0))
                await visit.credit(s, [v.id])
    closed = await ask(safe_bot, "月结 2025-10")
    assert "R4" in closed and "2025-11 首屏轮播" in closed
    assert "此前已月结" in await ask(safe_bot, "/month-close 2025-10")
    assert "格式" in await ask(safe_bot, "月结 十月")
    assert "尚未结束" in await ask(safe_bot, "月结 2099-01")
    preview = await ask(safe_bot, "评星 2025")
    assert "晋升 1 家" in preview and "评星 2025 确认" in preview
    async with safe_bot.sessions() as s:
        assert (await s.scalar(select(Station.stars).where(Station.code == "R4"))) == 3  # a preview changes no stars
    assert "已确认" in await ask(safe_bot, "/rate 2025 confirm")
    assert await ask(safe_bot, "评星 2025 确认") == texts.AD_RATE_ALREADY.format(year=2025)
    async with safe_bot.sessions() as s:
        assert (await s.scalar(select(Station.stars).where(Station.code == "R4"))) == 4
    assert "暂不能评星" in await ask(safe_bot, "评星 2099")
    assert "格式" in await ask(safe_bot, "评星 2025 maybe")
    async with safe_bot.sessions() as s:  # exactly one audit row per command, the confirmation included
        audit = (await s.execute(select(AuditLog.actor, AuditLog.role, AuditLog.command).order_by(AuditLog.id))).all()
    assert [tuple(a) for a in audit] == [(ADMIN, "admin", c) for c in (
        "月结 2025-10", "/month-close 2025-10", "月结 十月", "月结 2099-01", "评星 2025", "/rate 2025 confirm",
        "评星 2025 确认", "评星 2099", "评星 2025 maybe")]
