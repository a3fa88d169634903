"""An activity's code credits talents all through it, so its length is bounded: an operator publishes at
most ACTIVITY_MAX_HOURS (default 12); longer takes an admin (代发活动)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import texts
from scoring import periods
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.models import Activity, Staff
from tests import factories as f
from tests.bot.conftest import Bot, start_bot

OP = "oOperator1"
ADMIN = "oAdminEnv"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


async def seed(bot: Bot) -> int:
    async with transaction(bot.sessions) as s:
        st = await f.station(s, "ST1")
        s.add(Staff(openid=OP, role="operator", station_id=st.id))
    return st.id


def span(hours: float, days_ahead: int = 3) -> str:
    """`start | end` in local time, `hours` long, starting `days_ahead` days from now at 09:00 local."""
    start = periods.to_local(utcnow()).replace(hour=9, minute=0, second=0, microsecond=0) + \
        timedelta(days=days_ahead)
    end = start + timedelta(hours=hours)
    return f"{start:%Y-%m-%d %H:%M} | {end:%Y-%m-%d %H:%M}"


async def activities(bot: Bot) -> list[tuple[int, str]]:
    async with bot.sessions() as s:
        return [tuple(r) for r in (await s.execute(select(Activity.station_id, Activity.published_by)))]


async def test_operator_publishes_up_to_the_limit_and_no_longer(safe_bot: Bot) -> None:
    station = await seed(safe_bot)
    refused = await safe_bot.wx.text(OP, f"发布活动 人才服务周 | {span(12.5)} | 0 | 政策")
    assert refused.text == texts.OP_TOO_LONG.format(hours=12)
    assert await activities(safe_bot) == [] and await safe_bot.queued_jobs() == []
    day = await safe_bot.wx.text(OP, f"发布活动 人才沙龙 | {span(12)} | 30 | 数字经济")
    assert "已发布" in day.text
    assert await activities(safe_bot) == [(station, OP)]


async def test_admin_publishes_a_long_activity_for_a_station(safe_bot: Bot) -> None:
    station = await seed(safe_bot)
    reply = await safe_bot.wx.text(ADMIN, f"代发活动 ST1 人才服务周 | {span(56)} | 0 | 政策宣讲")
    assert "已发布" in reply.text
    assert await activities(safe_bot) == [(station, ADMIN)]
    assert len(await safe_bot.queued_jobs()) == 1  # R1, decided at its end, as for an operator's
    assert (await safe_bot.wx.text(ADMIN, f"代发活动 NOPE 周 | {span(56)} | 0 | x")).text == \
        texts.AD_NO_STATION.format(code="NOPE")
    assert (await safe_bot.wx.text(ADMIN, "代发活动 ST1")).text == texts.AD_PUBLISH_FOR_USAGE
    assert "权限" in (await safe_bot.wx.text(OP, f"代发活动 ST1 周 | {span(56)} | 0 | x")).text
    assert len(await activities(safe_bot)) == 1


@pytest.fixture
async def short_limit_bot(sqlite_url: str, redis_url: str) -> AsyncIterator[Bot]:
    async for b in start_bot(sqlite_url, redis_url, wechat_aes_key=AES_KEY, activity_max_hours=2):
        yield b


async def test_limit_is_configurable(short_limit_bot: Bot) -> None:
    await seed(short_limit_bot)
    assert (await short_limit_bot.wx.text(OP, f"发布活动 沙龙 | {span(3)} | 0 | x")).text == \
        texts.OP_TOO_LONG.format(hours=2)
    assert "已发布" in (await short_limit_bot.wx.text(OP, f"发布活动 沙龙 | {span(2)} | 0 | x")).text
