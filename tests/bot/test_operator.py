"""Operator words through the real bot (safe mode), with each refusal, the audit row and the jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from bot import texts
from scoring.db import transaction
from scoring.facts import activity as activity_fact
from scoring.facts import media as media_fact
from scoring.models import Activity, AuditLog, MediaReport, PublicityReport, Staff, Station
from scoring.operations import format_local
from scoring.periods import to_utc_naive
from scoring.tokens import Scene, parse_scene
from tests import factories as f
from tests.bot import flows
from tests.bot.conftest import Bot
from tests.scoring import builders as b

OP = "oOperator1"


async def seed(bot: Bot) -> tuple[int, int]:
    async with transaction(bot.sessions) as s:
        mine = await f.station(s, "ST1")
        other = await f.station(s, "ST2")
        s.add(Staff(openid=OP, role="operator", station_id=mine.id))
        s.add(Staff(openid="oOperator2", role="operator", station_id=other.id))
    return mine.id, other.id


def future(days: int, hour: int = 14) -> str:
    at = datetime.now() + timedelta(days=days)
    return at.strftime(f"%Y-%m-%d {hour:02d}:00")


async def publish(bot: Bot, who: str = OP, title: str = "人才沙龙", days: int = 3) -> str:
    reply = await bot.wx.text(who, f"发布活动 {title} | {future(days, 14)} | {future(days, 16)} | 30 | 数字经济")
    return reply.text


async def test_publish_activity(safe_bot: Bot) -> None:
    mine, _ = await seed(safe_bot)
    text = await publish(safe_bot)
    async with safe_bot.sessions() as s:
        act = await s.scalar(select(Activity))
    assert act is not None and act.station_id == mine and act.capacity == 30 and act.published_by == OP
    assert text.startswith(f"活动 #{act.id} 已发布")
    assert format_local(act.starts_at) == future(3, 14)
    jobs = await safe_bot.queued_jobs()
    assert [(j.function, j.args, j.job_id) for j in jobs] == [("apply", ("activity", act.id), f"activity:{act.id}:end")]
    async with safe_bot.sessions() as s:
        audit = (await s.execute(select(AuditLog.actor, AuditLog.role, AuditLog.outcome))).all()
    assert [(a, r) for a, r, _ in audit] == [(OP, "operator")] and audit[0][2] == text


async def test_publishing_with_too_little_lead_warns_at_once(safe_bot: Bot, quiet_clock: datetime) -> None:
    """Published less than `activity_lead_hours` (24) before it starts: still published, with its job, but the
    reply says at once that R1 will not be paid, why, and the rule; 3 days ahead: the usual reply."""
    await seed(safe_bot)
    soon = quiet_clock + timedelta(hours=2)  # 12:00 local the same day
    late = (await safe_bot.wx.text(OP, f"发布活动 临时沙龙 | {soon:%Y-%m-%d %H:%M} | {soon:%Y-%m-%d} 14:00 | 0 | x")
            ).text
    ahead = quiet_clock + timedelta(days=3)
    early = (await safe_bot.wx.text(OP, f"发布活动 沙龙 | {ahead:%Y-%m-%d} 14:00 | {ahead:%Y-%m-%d} 16:00 | 0 | x")
             ).text
    async with safe_bot.sessions() as s:
        first, second = (await s.scalars(select(Activity).order_by(Activity.id))).all()
        outcomes = (await s.scalars(select(AuditLog.outcome).order_by(AuditLog.id))).all()
    assert late == texts.OP_PUBLISHED_SHORT_LEAD.format(
        id=first.id, title="临时沙龙", start=f"{soon:%Y-%m-%d %H:%M}", end=f"{soon:%Y-%m-%d} 14:00", hours=24, points=5)
    assert "不足 24 小时" in late and "不计站点活动积分" in late and "至少提前 24 小时" in late
    assert early == texts.OP_PUBLISHED.format(id=second.id, title="沙龙", start=f"{ahead:%Y-%m-%d} 14:00",
                                              end=f"{ahead:%Y-%m-%d} 16:00")
    assert list(outcomes) == [late, early]
    assert sorted(j.args for j in await safe_bot.queued_jobs()) == [("activity", first.id), ("activity", second.id)]


async def test_english_alias(safe_bot: Bot) -> None:
    await seed(safe_bot)
    reply = await safe_bot.wx.text(OP, f"/activity new Salon | {future(2)} | {future(2, 16)} | 0 | AI")
    assert "已发布" in reply.text
    async with safe_bot.sessions() as s:
        assert (await s.scalar(select(Activity))).capacity is None  # 0 means no limit


async def test_publish_refusals_change_nothing(safe_bot: Bot) -> None:
    await seed(safe_bot)
    past = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%d %H:00")
    cases = {
        "发布活动 只有标题": texts.OP_PUBLISH_USAGE,
        f"发布活动 A | 明天 | {future(2)} | 10 | x": texts.OP_BAD_TIME,
        f"发布活动 A | {future(2, 16)} | {future(2, 14)} | 10 | x": texts.OP_END_BEFORE_START,
        f"发布活动 A | {past} | {future(2)} | 10 | x": texts.OP_START_IN_PAST,
        f"发布活动 A | {future(2, 14)} | {future(2, 16)} | -3 | x": texts.OP_BAD_CAPACITY,
        f"发布活动  | {future(2, 14)} | {future(2, 16)} | 3 | x": texts.OP_BAD_TITLE,
    }
    for command, expected in cases.items():
        assert (await safe_bot.wx.text(OP, command)).text == expected, command
    async with safe_bot.sessions() as s:
        assert await s.scalar(select(func.count(Activity.id))) == 0
        assert await s.scalar(select(func.count(AuditLog.id))) == len(cases)
    assert await safe_bot.queued_jobs() == []


async def test_talent_and_plain_mode_are_refused(safe_bot: Bot, bot: Bot) -> None:
    await seed(safe_bot)  # both bots share the test's database and Redis
    refused = await safe_bot.wx.text("oTalent", f"发布活动 A | {future(2)} | {future(2, 16)} | 0 | x")
    assert "权限" in refused.text
    plain = await bot.wx.text(OP, f"发布活动 A | {future(2)} | {future(2, 16)} | 0 | x")
    assert plain.text == texts.PLAIN_MODE_REFUSED
    async with bot.sessions() as s:
        assert await s.scalar(select(func.count(Activity.id))) == 0


async def test_publicity_and_media(safe_bot: Bot) -> None:
    await seed(safe_bot)
    await publish(safe_bot)
    async with safe_bot.sessions() as s:
        act_id = await s.scalar(select(Activity.id))
    ok = await safe_bot.wx.text(OP, f"宣传 #{act_id} https://news.example.com/a/1")
    assert ok.text == texts.OP_PUBLICITY_OK.format(id=act_id)
    assert (await safe_bot.wx.text(OP, f"宣传 {act_id} ftp://x")).text == texts.OP_BAD_URL
    assert (await safe_bot.wx.text(OP, "宣传 #999 https://news.example.com/a/1")).text == \
        texts.OP_NOT_FOUND.format(id=999)
    media = await safe_bot.wx.text(OP, f"报道 #{act_id} 市 泉州 晚报 https://news.example.com/b")
    assert "市级" in media.text and "泉州 晚报" in media.text
    assert (await safe_bot.wx.text(OP, f"/media {act_id} galactic X https://news.example.com/c")).text == \
        texts.OP_BAD_LEVEL
    async with safe_bot.sessions() as s:
        assert (await s.scalar(select(PublicityReport.url))) == "https://news.example.com/a/1"
        assert (await s.scalar(select(MediaReport.level))) == "municipal"
    assert await flows.jobs(safe_bot) == [f"activity:{act_id}:end", f"activity:{act_id}:pub1", f"media:{act_id}:1"]


async def test_other_stations_activity_is_refused(safe_bot: Bot) -> None:
    await seed(safe_bot)
    await publish(safe_bot, who="oOperator2")
    async with safe_bot.sessions() as s:
        act_id = await s.scalar(select(Activity.id))
    for command in (f"宣传 #{act_id} https://news.example.com/x", f"报道 #{act_id} 县 晋江 https://news.example.com/y",
                    f"活动码 #{act_id}"):
        assert (await safe_bot.wx.text(OP, command)).text == texts.OP_OTHER_STATION.format(id=act_id)
    async with safe_bot.sessions() as s:
        assert await s.scalar(select(func.count(PublicityReport.id))) == 0
        assert await s.scalar(select(func.count(MediaReport.id))) == 0


async def test_activity_code_and_listing_and_station(safe_bot: Bot) -> None:
    await seed(safe_bot)
    await publish(safe_bot, title="读书会")
    async with safe_bot.sessions() as s:
        act_id = await s.scalar(select(Activity.id))
    code = await safe_bot.wx.text(OP, f"活动码 {act_id}")
    scene = code.text.splitlines()[1]
    parsed = parse_scene(safe_bot.settings.scene_key, scene, datetime.now().timestamp())
    assert isinstance(parsed, Scene) and parsed.kind == "activity" and parsed.ref == str(act_id)
    listing = await safe_bot.wx.text(OP, "我的活动")
    assert f"#{act_id} 读书会" in listing.text and "报名0/30" in listing.text and "待结束" in listing.text
    station = await safe_bot.wx.text(OP, "本站")
    assert "ST1" in station.text and "3星" in station.text and "本月积分 0" in station.text
    async with safe_bot.sessions() as s:  # reading words leave no audit row
        assert await s.scalar(select(func.count(AuditLog.id))) == 1


async def test_my_activities_say_scored_only_when_r1_paid(safe_bot: Bot, quiet_clock: datetime) -> None:
    """我的活动: "已计分" is R1's word (the activity counts as held); media points alone (R2) do not make an
    activity that missed R1's lead "已计分"."""
    mine, _ = await seed(safe_bot)
    now = datetime.now()  # naive UTC: the pinned clock
    starts = now - timedelta(days=3)
    async with transaction(safe_bot.sessions) as s:
        st = await s.get(Station, mine)
        t = await f.talent(s)
        held = [await b.activity(s, st, starts_at=starts, published_at=starts - timedelta(hours=hours))
                for hours in (1, 48)]  # the first was published too late for R1
        for act in held:
            await b.attend(s, act, t)
            await b.publicity(s, act)
            await b.media(s, act, "municipal", at=act.ends_at + timedelta(hours=1))
    async with transaction(safe_bot.sessions) as s:
        for act in held:
            await activity_fact.apply(s, act.id, now=now)
            await media_fact.apply(s, act.id, now=now)
    listing = (await safe_bot.wx.text(OP, "我的活动")).text.splitlines()
    late = next(line for line in listing if line.startswith(f"#{held[0].id} "))
    ahead = next(line for line in listing if line.startswith(f"#{held[1].id} "))
    assert "积分5" in late and "已计分" not in late and late.endswith("未达计分条件")
    assert "积分10" in ahead and ahead.endswith("已计分")


async def test_next_month_plan_shown(safe_bot: Bot, quiet_clock: datetime) -> None:
    await seed(safe_bot)
    nxt = datetime(2026, 12, 3)  # local; quiet_clock is in November 2026
    start = nxt.strftime("%Y-%m-%d 10:00")
    await safe_bot.wx.text(OP, f"发布活动 计划内 | {start} | {nxt.strftime('%Y-%m-%d 12:00')} | 0 | x")
    assert "下月计划：已上传" in (await safe_bot.wx.text(OP, "本站")).text
    assert to_utc_naive(nxt) > datetime.now()


async def test_operator_scans_a_talents_personal_code(safe_bot: Bot, bot: Bot) -> None:
    from scoring.models import Visit
    from scoring.tokens import talent_scene

    mine, _ = await seed(safe_bot)
    async with transaction(safe_bot.sessions) as s:
        t = await f.talent(s, openid="oTalentX", name="李四")
        unbound = await f.talent(s)
    key, now = safe_bot.settings.scene_key, datetime.now().timestamp()
    ok = await safe_bot.wx.scancode(OP, talent_scene(key, t.id, now))
    assert ok.text == texts.OP_SCAN_OK.format(name="李四", points=1)
    again = await safe_bot.wx.scancode(OP, talent_scene(key, t.id, now + 1))
    assert again.text == texts.OP_SCAN_REJECTED["already_today"]
    old = await safe_bot.wx.scancode(OP, talent_scene(key, t.id, now - 3600))
    assert old.text == texts.OP_SCAN_REJECTED["expired_code"]
    forged = await safe_bot.wx.scancode(OP, talent_scene(b"not the key", t.id, now))
    assert forged.text == texts.OP_SCAN_REJECTED["forged_code"]
    assert (await safe_bot.wx.scancode(OP, talent_scene(key, unbound.id, now))).text == \
        texts.OP_SCAN_REJECTED["not_bound"]
    talent_tries = await safe_bot.wx.scancode("oTalentX", talent_scene(key, t.id, now))
    assert "权限" in talent_tries.text
    plain = await bot.wx.scancode(OP, talent_scene(key, t.id, now + 2))  # plain mode: refused
    assert plain.text == texts.PLAIN_MODE_REFUSED
    async with safe_bot.sessions() as s:
        rows = (await s.execute(select(Visit.status, Visit.reason, Visit.source, Visit.station_id,
                                       Visit.operator_openid).order_by(Visit.id))).all()
    assert [(r[0], r[1]) for r in rows] == [("accepted", None), ("rejected", "already_today"),
                                            ("rejected", "expired_code"), ("rejected", "forged_code"),
                                            ("rejected", "not_bound")]
    assert {(r[2], r[3], r[4]) for r in rows} == {("operator", mine, OP)}
    assert [(j.function, j.args[0]) for j in await safe_bot.queued_jobs()] == [("apply", "visit")]
