"""The per-openid flood limit (bot/ratelimit.py) through the real server: a flood from one openid does not
starve the others, the flooder gets one polite reply and nothing else is done, retries count once, staff are
never locked out, and two bot processes share one limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from bot import ratelimit, texts
from scoring.models import Visit
from tests.bot import flows
from tests.bot.conftest import Bot, start_bot
from tests.wx import WeChatSim

LIMIT = 10
BUDGET_S = 4.0  # the handler budget (inside WeChat's 5 s)


@pytest.fixture
async def limited(sqlite_url: str, redis_url: str) -> AsyncIterator[Bot]:
    async for b in start_bot(sqlite_url, redis_url, rate_limit_messages=LIMIT, rate_limit_window_s=600):
        yield b


async def visits_of(bot: Bot, talent_id: int) -> int:
    async with bot.sessions() as s:
        return int(await s.scalar(select(func.count(Visit.id)).where(Visit.talent_id == talent_id)) or 0)


async def test_flood_of_1000_from_one_openid_does_not_starve_the_others(limited: Bot, redis: aioredis.Redis
                                                                        ) -> None:
    bot = limited
    st = await flows.station(bot, "ST1", name="鲤城人才之家")
    flooder = await flows.talent(bot, "QZ900", openid="oFlood")
    others = [await flows.talent(bot, f"QZ{i:03d}", openid=f"oOther{i}") for i in range(5)]
    await flows.operator(bot, "oOperator1", st.id)
    scene = flows.scene(bot, "ST1")
    base = int(time.time())
    # The flood: 1,000 distinct signed scans (distinct CreateTime: not retries), all in flight at once.
    flood_wx = WeChatSim(bot.url, bot.wx.token, bot.wx.appid,
                         session=aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=250)))
    try:
        flood = [asyncio.ensure_future(flood_wx.scan("oFlood", scene, create_time=base - i)) for i in range(1000)]
        await asyncio.sleep(0)  # the flood is under way before the others start (not synchronisation)

        async def steady(openid: str, n: int) -> list[tuple[float, str]]:
            out = []
            for k in range(n):
                t0 = time.monotonic()
                reply = await (bot.wx.scan(openid, scene, create_time=base + k) if k == 0
                               else bot.wx.text(openid, "帮助"))
                out.append((time.monotonic() - t0, reply.text))
                await asyncio.sleep(0.05)  # a steady pace, not synchronisation
            return out

        steady_all = [steady(t.openid or "", 4) for t in others]
        staff_replies = [steady("oOperator1", 3), steady("oAdminEnv", 3)]
        results = await asyncio.gather(*steady_all, *staff_replies)
        flood_replies = await asyncio.gather(*flood)
    finally:
        await flood_wx.close()

    # Everyone else was answered within the handler budget, with their own answer.
    for res in results[:5]:
        assert res[0][1] == texts.VISIT_OK.format(station="鲤城人才之家", points=1)
        assert [text for _, text in res[1:]] == [texts.HELP] * 3
    for res in results:
        assert all(latency < BUDGET_S for latency, _ in res), res
    for res in results[5:]:  # the operator and the admin: answered, not limited
        assert all(text and not text.startswith(texts.RATE_LIMITED[:10]) for _, text in res), res
    # The flooder: LIMIT scans handled, one polite reply, the rest acknowledged silently; every answer a 200.
    assert {r.status for r in flood_replies} == {200}
    polite = [r.text for r in flood_replies if r.text.startswith(texts.RATE_LIMITED[:10])]
    handled = [r.text for r in flood_replies if r.text and not r.text.startswith(texts.RATE_LIMITED[:10])]
    assert len(polite) == 1 and len(handled) == LIMIT
    assert sum(1 for r in flood_replies if r.text == "") == 1000 - LIMIT - 1
    # State changed only for the allowed messages: LIMIT visit rows for the flooder, one for each other.
    assert await visits_of(bot, flooder.id) == LIMIT
    assert [await visits_of(bot, t.id) for t in others] == [1] * 5
    assert int(await redis.get(ratelimit.counter_key("oFlood")) or 0) == 1000


async def test_retries_count_once_and_the_polite_reply_comes_once(limited: Bot, redis: aioredis.Redis) -> None:
    ids = [limited.wx.next_msg_id() for _ in range(LIMIT)]
    for msg_id in ids:  # each message delivered twice (WeChat's retry: the same MsgId)
        first = await limited.wx.text("oT1", "帮助", msg_id=msg_id)
        again = await limited.wx.text("oT1", "帮助", msg_id=msg_id)
        assert first.text == again.text == texts.HELP
    assert int(await redis.get(ratelimit.counter_key("oT1")) or 0) == LIMIT
    over = await limited.wx.text("oT1", "帮助")
    assert over.status == 200 and over.text.startswith(texts.RATE_LIMITED[:10])
    left = int(over.text.split("请在")[1].split("秒")[0])
    assert 590 <= left <= 600
    later = [await limited.wx.text("oT1", "帮助") for _ in range(3)]
    assert [(r.status, r.body) for r in later] == [(200, "success")] * 3
    # Another openid is untouched.
    assert (await limited.wx.text("oT2", "帮助")).text == texts.HELP


async def test_events_the_bot_ignores_are_not_counted(limited: Bot, redis: aioredis.Redis) -> None:
    for i in range(LIMIT + 5):
        reply = await limited.wx.event("oT1", "TEMPLATESENDJOBFINISH", create_time=int(time.time()) - i,
                                       Status="success")
        assert reply.body == "success"
    assert await redis.get(ratelimit.counter_key("oT1")) is None
    assert (await limited.wx.text("oT1", "帮助")).text == texts.HELP


async def test_staff_at_a_busy_desk_are_not_locked_out(limited: Bot, redis: aioredis.Redis) -> None:
    st = await flows.station(limited, "ST1")
    await flows.operator(limited, "oOperator1", st.id)
    replies = [await limited.wx.text("oOperator1", "帮助") for _ in range(LIMIT + 5)]
    assert all(r.text == texts.HELP for r in replies)
    assert await redis.exists(ratelimit.exempt_key("oOperator1")) == 1
    # ADMIN_OPENIDS are not counted at all.
    replies = [await limited.wx.text("oAdminEnv", "帮助") for _ in range(LIMIT + 5)]
    assert all(r.text == texts.HELP for r in replies)
    assert await redis.get(ratelimit.counter_key("oAdminEnv")) is None


async def test_two_bot_processes_share_one_limit(sqlite_url: str, redis_url: str) -> None:
    bots = [start_bot(sqlite_url, redis_url, rate_limit_messages=LIMIT) for _ in range(2)]
    a, b = [await anext(g) for g in bots]
    try:
        for i in range(LIMIT):
            assert (await (a if i % 2 else b).wx.text("oT1", "帮助")).text == texts.HELP
        assert (await b.wx.text("oT1", "帮助")).text.startswith(texts.RATE_LIMITED[:10])
        assert (await a.wx.text("oT1", "帮助")).body == "success"
    finally:
        for g in bots:
            await g.aclose()


async def test_zero_turns_the_limit_off(sqlite_url: str, redis_url: str, redis: aioredis.Redis) -> None:
    async for bot in start_bot(sqlite_url, redis_url, rate_limit_messages=0):
        replies = [await bot.wx.text("oT1", "帮助") for _ in range(5)]
        assert all(r.text == texts.HELP for r in replies)
        assert await redis.get(ratelimit.counter_key("oT1")) is None
