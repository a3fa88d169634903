"""A whole year (2025) walked through the bot (safe mode) and the worker, against the fake WeChat API:
12 stations of mixed types and certification years, visits, an activity with publicity and media reports
of two levels, a survey, a fraud hold voided, an extension, a month close, the rating confirmed. The
resulting boards, stars, delisting, subsidy list and audit trail equal the hand-computed expectation below.

Hand computation (2025 points): station Ei (i = 1..10) is visited by 11 - i talents on its own day in March.
Then talent T9 checks in at E1, E2, E3 within 20 minutes: the third is held and voided (E1 +1, E2 +1).
E1 holds an activity (published 4 days ahead): one attendee (+1 visit), publicity (R1 +5), county media (+3),
then provincial (+7 more). E2 gets a survey result of +20. E3 gets a 10-day extension of 2025 and a visit on
2026-01-05 that counts toward 2025 (+1).
    E1 10+1+1+5+10 = 27   E2 9+1+20 = 30   E3 8+0+1 = 9   E4 7  E5 6  E6 5  E7 4  E8 3  E9 2  E10 1
N = 10 eligible stations (N1, N2 were certified in 2025): top = ranks <= 2 (E2, E1: 4 stars, 50,000 each);
bottom = ranks > 9 (E10: demoted; it was demoted in 2024 too, so it is delisted). New stations: N1 (home)
50,000, N2 (community) 100,000.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import time_machine
from sqlalchemy import func, select

from scoring import periods
from scoring.boards import station_board
from scoring.exports import build
from scoring.models import AuditLog, Entry, Flag, MonthClose, Rating, Station, Talent, Visit
from scoring.periods import Period
from scoring.tokens import activity_scene, station_scene
from tests.bot.conftest import Bot
from tests.worker.test_tasks import make_settings, ready, run_burst

ADMIN, OP = "oAdminEnv", "oOpE1"
TYPES = ["comprehensive", "industry", "professional", "service"]


def at(*args: int) -> time_machine.travel:
    return time_machine.travel(datetime(*args, tzinfo=periods.TZ), tick=True)


async def test_a_whole_year(safe_bot: Bot, redis: Any, fake_wechat: Any) -> None:
    wx, sessions = safe_bot.wx, safe_bot.sessions
    settings = make_settings(safe_bot.settings.database_url, safe_bot.settings.redis_url or "", fake_wechat.base_url)
    key = safe_bot.settings.scene_key
    staff_commands: list[str] = []

    async def admin(text: str, who: str = ADMIN) -> str:
        staff_commands.append(text)
        return (await wx.text(who, text)).text

    async def work() -> None:
        await run_burst(settings.redis_url or "", settings)

    async def scan(openid: str, code: str) -> str:
        return (await wx.scan(openid, station_scene(key, code, datetime.now().timestamp()))).text

    with at(2025, 1, 6, 10, 0):
        for i in range(1, 11):
            reply = await admin(f"/station add E{i} 站点{i} home {TYPES[i % 4]} 鲤城区 2023-0{1 + i % 9}-15")
            assert "已新增" in reply
        assert "已新增" in await admin("站点 新增 N1 新站一 home service 晋江市 2025-01-02")
        assert "已新增" in await admin("站点 新增 N2 新社区 community industry 石狮市 2025-01-03")
        assert "运营人员" in await admin(f"人员 新增 {OP} operator E1")
        async with sessions() as s, s.begin():  # E10 was demoted in the 2024 rating (before this system)
            e10 = await s.scalar(select(Station).where(Station.code == "E10"))
            assert e10 is not None
            e10.demotion_streak = 1
            s.add_all([Talent(cert_no=f"T{n}", name=f"人才{n}") for n in range(1, 11)])
        await ready(sessions, redis)
        for n in range(1, 11):
            bound = (await wx.text(f"oT{n}", f"绑定 T{n} 人才{n}")).text
            assert "成功" in bound, bound

    for i in range(1, 11):  # March: E_i visited by talents T1..T(11-i), each station on its own day
        with at(2025, 3, i, 10, 0):
            for n in range(1, 12 - i):
                assert "打卡成功" in await scan(f"oT{n}", f"E{i}")
    with at(2025, 3, 31, 10, 0):
        await work()

    with at(2025, 4, 1, 10, 0):  # T9 at three stations within 20 minutes: the third is held
        assert "打卡成功" in await scan("oT9", "E1")
    with at(2025, 4, 1, 10, 10):
        assert "打卡成功" in await scan("oT9", "E2")
    with at(2025, 4, 1, 10, 20):
        assert "打卡成功" in await scan("oT9", "E3")
        await work()
        async with sessions() as s:
            (flag,) = (await s.scalars(select(Flag).where(Flag.hold.is_(True)))).all()
        assert f"打卡 {flag.visit_id}" in (await wx.text(ADMIN, "/flags")).text  # reads only: no audit row
        assert "作废申请" in await admin(f"/void visit {flag.visit_id} 代打卡")
        await work()

    with at(2025, 5, 1, 9, 0):
        reply = await admin("发布活动 人才沙龙 | 2025-05-05 14:00 | 2025-05-05 16:00 | 20 | 数字经济", who=OP)
        assert "已发布" in reply
        act_id = int(reply.split("#")[1].split()[0])
    with at(2025, 5, 5, 14, 30):
        attend = await wx.scan("oT10", activity_scene(key, act_id, datetime.now().timestamp()))
        assert "活动" in attend.text
    with at(2025, 5, 6, 9, 0):
        assert "已收到" in await admin(f"宣传 #{act_id} https://news.example.com/salon", who=OP)
        assert "县级" in await admin(f"报道 #{act_id} 县 晋江新闻 https://news.example.com/a", who=OP)
        await work()
        assert "省级" in await admin(f"报道 #{act_id} 省 福建日报 https://news.example.com/b", who=OP)
        await work()

    with at(2025, 6, 1, 9, 0):
        assert "已登记" in await admin("调查 E2 2025 +20 知晓率满意度测评")
        await work()
    with at(2025, 6, 2, 9, 0):
        closed = await admin("月结 2025-05")
        assert "E1" in closed and "2025-06 首屏轮播" in closed

    with at(2025, 12, 20, 9, 0):
        assert "延长 10 天" in await admin("延期 E3 2025 10 台风影响停业")
    with at(2026, 1, 5, 10, 0):
        assert "打卡成功" in await scan("oT1", "E3")
        await work()
        assert "暂不能评星" in await admin("评星 2025")  # E3's window is still open

    with at(2026, 1, 12, 9, 0):
        preview = await admin("评星 2025")
        assert "晋升 2 家" in preview and "降星 1 家" in preview and "摘牌 1 家" in preview
        assert "已确认" in await admin("/rate 2025 confirm")
        assert "此前已确认" in await admin("评星 2025 确认")
        now = datetime.now()
        async with sessions() as s:
            year = await station_board(s, Period("year", "2025"), now=periods.to_utc_naive(now))
            stations = {st.code: st for st in (await s.scalars(select(Station))).all()}
            subsidies = dict((await s.execute(select(Station.code, Rating.subsidy_cny)
                                              .join(Rating, Rating.station_id == Station.id)
                                              .where(Rating.year == 2025, Rating.subsidy_cny > 0))).all())
            featured = (await s.get(MonthClose, "2025-05"))
            held = await s.scalar(select(func.count(Entry.id)).where(
                Entry.fact_kind == "visit", Entry.fact_id == flag.visit_id))
            audit = (await s.scalars(select(AuditLog.command).order_by(AuditLog.id))).all()
            rejected = await s.scalar(select(func.count(Visit.id)).where(Visit.status == "rejected"))
            wb, _ = await build(s, "rating", "2025")

    assert [(r.code, r.points) for r in year] == [("E2", 30), ("E1", 27), ("E3", 9), ("E4", 7), ("E5", 6),
                                                  ("E6", 5), ("E7", 4), ("E8", 3), ("E9", 2)]
    assert {c: (st.stars, st.status) for c, st in stations.items()} == {
        "E1": (4, "active"), "E2": (4, "active"), "E3": (3, "active"), "E4": (3, "active"),
        "E5": (3, "active"), "E6": (3, "active"), "E7": (3, "active"), "E8": (3, "active"),
        "E9": (3, "active"), "E10": (2, "delisted"), "N1": (3, "active"), "N2": (3, "active")}
    assert subsidies == {"E1": 50_000, "E2": 50_000, "N1": 50_000, "N2": 100_000}
    assert featured is not None and stations["E1"].id == featured.featured_station_id
    assert held == 0 and rejected == 0
    # Every state-changing staff command, in order, exactly once (the confirmation included).
    assert list(audit) == staff_commands
    rows = [list(r) for r in wb.active.iter_rows(values_only=True)]  # type: ignore[union-attr]
    by_code = {r[1]: r for r in rows[2:]}
    assert by_code["E10"][6:10] == [2, "降低一星", "是", 0] and by_code["N2"][9] == 100_000
    assert isinstance(by_code["E2"][4], int) and by_code["E2"][4] == 30
