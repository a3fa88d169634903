"""Station scans through the real server: each outcome, retries, the New Year boundary."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta

import time_machine

from bot import texts
from scoring.tokens import parse_scene
from tests.bot import flows
from tests.bot.conftest import Bot

TZ8 = "+08:00"


async def test_bound_talent_scan_is_recorded_and_enqueued(any_bot: Bot) -> None:
    st = await flows.station(any_bot, "ST1", name="鲤城人才之家")
    t = await flows.talent(any_bot, openid="oT1")
    reply = await any_bot.wx.scan("oT1", flows.scene(any_bot, "ST1"))
    assert reply.status == 200
    assert reply.text == texts.VISIT_OK.format(station="鲤城人才之家", points=1)
    [v] = await flows.visits(any_bot)
    assert (v.status, v.talent_id, v.station_id, v.source, v.reason) == ("accepted", t.id, st.id, "station", None)
    assert v.credit_key == f"{t.id}:{st.id}:{v.local_day.isoformat()}"
    assert await flows.jobs(any_bot, "visit") == [f"visit:{v.id}"]
    [job] = await any_bot.queued_jobs()
    assert (job.function, job.args) == ("apply", ("visit", v.id))


async def test_first_follow_with_scene_is_a_follow_and_a_scan(bot: Bot) -> None:
    await flows.station(bot, "ST1", name="丰泽人才之家")
    await flows.talent(bot, openid="oT1")
    reply = await bot.wx.scan("oT1", flows.scene(bot, "ST1"), first_follow=True)
    assert reply.text.startswith(texts.WELCOME)
    assert texts.VISIT_OK.format(station="丰泽人才之家", points=1) in reply.text
    assert [v.status for v in await flows.visits(bot)] == ["accepted"]


async def test_second_scan_same_day_is_stored_as_already_today(bot: Bot) -> None:
    await flows.station(bot, "ST1", name="鲤城人才之家")
    await flows.talent(bot, openid="oT1")
    await bot.wx.scan("oT1", flows.scene(bot, "ST1"))
    reply = await bot.wx.scan("oT1", flows.scene(bot, "ST1"), create_time=int(time.time()) + 1)
    assert reply.text == texts.VISIT_REJECTED["already_today"].format(station="鲤城人才之家")
    first, second = await flows.visits(bot)
    assert (first.status, second.status, second.reason, second.credit_key) == \
        ("accepted", "rejected", "already_today", None)
    assert await flows.jobs(bot) == [f"visit:{first.id}"]


async def test_three_deliveries_of_one_scan_make_one_visit_and_one_job(any_bot: Bot) -> None:
    await flows.station(any_bot, "ST1")
    await flows.talent(any_bot, openid="oT1")
    scene, created = flows.scene(any_bot, "ST1"), int(time.time())
    replies = await asyncio.gather(*[any_bot.wx.scan("oT1", scene, create_time=created) for _ in range(3)])
    assert [r.status for r in replies] == [200, 200, 200]
    assert len({r.text for r in replies}) == 1 and "打卡成功" in replies[0].text
    [v] = await flows.visits(any_bot)
    assert await flows.jobs(any_bot) == [f"visit:{v.id}"]
    # and a late retry, after the first answer was sent, gets the same answer again
    again = await any_bot.wx.scan("oT1", scene, create_time=created)
    assert again.text == replies[0].text and len(await flows.visits(any_bot)) == 1


async def test_unbound_scan_is_stored_with_no_talent(bot: Bot) -> None:
    st = await flows.station(bot, "ST1")
    reply = await bot.wx.scan("oNobody", flows.scene(bot, "ST1"))
    assert reply.text == texts.VISIT_REJECTED["not_bound"]
    [v] = await flows.visits(bot)
    assert (v.status, v.reason, v.talent_id, v.station_id, v.openid) == \
        ("rejected", "not_bound", None, st.id, "oNobody")
    assert await flows.jobs(bot) == []


async def test_unknown_station_code_correctly_signed(bot: Bot) -> None:
    await flows.talent(bot, openid="oT1")
    reply = await bot.wx.scan("oT1", flows.scene(bot, "GONE1"))
    assert reply.text == texts.VISIT_REJECTED["unknown_station"]
    [v] = await flows.visits(bot)
    assert (v.reason, v.station_id) == ("unknown_station", None)


async def test_delisted_station(bot: Bot) -> None:
    await flows.station(bot, "ST1", name="旧站", status="delisted")
    await flows.talent(bot, openid="oT1")
    reply = await bot.wx.scan("oT1", flows.scene(bot, "ST1"))
    assert reply.text == texts.VISIT_REJECTED["station_delisted"].format(station="旧站")
    assert [v.reason for v in await flows.visits(bot)] == ["station_delisted"]
    assert await flows.jobs(bot) == []


async def test_expired_code(bot: Bot) -> None:
    await flows.station(bot, "ST1")
    await flows.talent(bot, openid="oT1")
    old = flows.scene(bot, "ST1", at=time.time() - 3 * bot.settings.station_code_rotation_s)
    reply = await bot.wx.scan("oT1", old)
    assert reply.text == texts.VISIT_REJECTED["expired_code"].format(minutes=5)
    [v] = await flows.visits(bot)
    assert (v.reason, v.station_id is not None) == ("expired_code", True)


async def test_previous_window_is_still_valid(bot: Bot) -> None:
    await flows.station(bot, "ST1")
    await flows.talent(bot, openid="oT1")
    grace = flows.scene(bot, "ST1", at=time.time() - bot.settings.station_code_rotation_s)
    assert "打卡成功" in (await bot.wx.scan("oT1", grace)).text


async def test_forged_and_malformed_codes(bot: Bot) -> None:
    st = await flows.station(bot, "ST1")
    await flows.talent(bot, openid="oT1")
    good = flows.scene(bot, "ST1")
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    other_key = "st:ST1:" + good.split(":")[2].split(".")[0] + ".AAAAAAAAAAAA"
    for i, bad in enumerate([forged, other_key, "st:ST1", "st:ST1:zz", "st:" + "x" * 70]):
        reply = await bot.wx.scan("oT1", bad, create_time=int(time.time()) + i)
        assert reply.text == texts.VISIT_REJECTED["forged_code"], bad
    stored = await flows.visits(bot)
    assert [v.reason for v in stored] == ["forged_code"] * 5
    assert stored[0].station_id == st.id  # a forgery aimed at a known station is traceable
    assert await flows.jobs(bot) == []


async def test_staff_at_own_station_gets_no_points_but_elsewhere_does(bot: Bot) -> None:
    own = await flows.station(bot, "ST1", name="本站")
    await flows.station(bot, "ST2", name="他站")
    await flows.talent(bot, openid="oStaff")
    await flows.operator(bot, "oStaff", own.id)
    reply = await bot.wx.scan("oStaff", flows.scene(bot, "ST1"))
    assert reply.text == texts.VISIT_REJECTED["staff_own_station"].format(station="本站")
    assert "打卡成功" in (await bot.wx.scan("oStaff", flows.scene(bot, "ST2"), create_time=int(time.time()) + 1)).text
    assert [(v.reason, v.status) for v in await flows.visits(bot)] == \
        [("staff_own_station", "rejected"), (None, "accepted")]


async def test_new_year_boundary_gives_two_local_days(bot: Bot) -> None:
    await flows.station(bot, "ST1")
    await flows.talent(bot, openid="oT1")
    before = datetime.fromisoformat("2026-12-31T23:59:59" + TZ8)
    after = datetime.fromisoformat("2027-01-01T00:00:00" + TZ8)
    for at in (before, after):
        with time_machine.travel(at, tick=False):
            reply = await bot.wx.scan("oT1", flows.scene(bot, "ST1"))
            assert "打卡成功" in reply.text
    first, second = await flows.visits(bot)
    assert (first.local_day, second.local_day) == (date(2026, 12, 31), date(2027, 1, 1))
    assert first.scanned_at == datetime(2026, 12, 31, 15, 59, 59)  # naive UTC
    assert second.scanned_at.replace(tzinfo=UTC) == after.astimezone(UTC)
    assert len(await flows.jobs(bot)) == 2


async def test_early_morning_local_is_next_year_though_utc_is_not(bot: Bot) -> None:
    await flows.station(bot, "ST1")
    await flows.talent(bot, openid="oT1")
    with time_machine.travel(datetime.fromisoformat("2027-01-01T07:30:00" + TZ8), tick=False):
        await bot.wx.scan("oT1", flows.scene(bot, "ST1"))
    [v] = await flows.visits(bot)
    assert v.scanned_at.year == 2026 and v.local_day == date(2027, 1, 1)


async def test_many_talents_scanning_at_once_each_get_their_visit(bot: Bot) -> None:
    await flows.station(bot, "ST1")
    for i in range(40):
        await flows.talent(bot, f"QZ{i:03d}", openid=f"oT{i}")
    scene = flows.scene(bot, "ST1")
    replies = await asyncio.gather(*[bot.wx.scan(f"oT{i}", scene) for i in range(40)])
    assert all("打卡成功" in r.text for r in replies)
    stored = await flows.visits(bot)
    assert len(stored) == 40 and {v.status for v in stored} == {"accepted"}
    assert len(await flows.jobs(bot, "visit")) == 40
    assert bot.app  # the batcher wrote them in fewer transactions than scans
    from bot.webhook import DEPS_KEY

    batcher = bot.app[DEPS_KEY].visits
    assert batcher.scans == 40 and batcher.batches < 40


async def test_my_code_gives_a_verifiable_talent_scene(any_bot: Bot) -> None:
    t = await flows.talent(any_bot, openid="oT1")
    reply = await any_bot.wx.text("oT1", "我的码")
    scene = next(line for line in reply.text.splitlines() if line.startswith("tl:"))
    assert len(scene) <= 64
    parsed = parse_scene(any_bot.settings.scene_key, scene, time.time())
    assert not isinstance(parsed, str) and (parsed.kind, parsed.ref) == ("talent", str(t.id))
    assert "扫一扫" in reply.text
    assert (await any_bot.wx.text("oNobody", "mycode")).text == texts.NEED_BIND


async def test_expiry_of_my_code(bot: Bot) -> None:
    await flows.talent(bot, openid="oT1")
    reply = await bot.wx.text("oT1", "MYCODE")
    scene = next(line for line in reply.text.splitlines() if line.startswith("tl:"))
    later = time.time() + timedelta(minutes=11).total_seconds()
    assert parse_scene(bot.settings.scene_key, scene, later) == "expired"
