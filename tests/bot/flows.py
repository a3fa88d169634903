"""Seeding and reading helpers for the talent-flow tests (through the bot's own database)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select

from scoring import periods
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.facts.common import APPLY
from scoring.models import Activity, Staff, Station, Talent, Visit
from scoring.tokens import activity_scene, station_scene
from tests import factories as f
from tests.bot.conftest import Bot

T = TypeVar("T")


async def station(bot: Bot, code: str = "ST1", **kw: Any) -> Station:
    async with transaction(bot.sessions) as s:
        return await f.station(s, code, **kw)


async def talent(bot: Bot, cert_no: str = "QZ001", *, openid: str | None = None, name: str = "张三") -> Talent:
    async with transaction(bot.sessions) as s:
        return await f.talent(s, cert_no, openid=openid, name=name)


async def operator(bot: Bot, openid: str, station_id: int) -> Staff:
    async with transaction(bot.sessions) as s:
        staff = Staff(openid=openid, role="operator", station_id=station_id)
        s.add(staff)
        await s.flush()
        return staff


async def activity(bot: Bot, st: Station, *, starts_in: timedelta, hours: float = 2, capacity: int | None = None,
                   title: str = "人才沙龙") -> Activity:
    now = utcnow()
    async with transaction(bot.sessions) as s:
        act = Activity(station_id=st.id, title=title, starts_at=now + starts_in,
                       ends_at=now + starts_in + timedelta(hours=hours), capacity=capacity,
                       published_at=now - timedelta(days=3))
        s.add(act)
        await s.flush()
        return act


def scene(bot: Bot, code: str, at: float | None = None) -> str:
    return station_scene(bot.settings.scene_key, code, time.time() if at is None else at,
                         bot.settings.station_code_rotation_s)


def act_scene(bot: Bot, activity_id: int) -> str:
    return activity_scene(bot.settings.scene_key, activity_id, time.time())


async def visits(bot: Bot) -> list[Visit]:
    async with bot.sessions() as s:
        return list((await s.scalars(select(Visit).order_by(Visit.id))).all())


async def jobs(bot: Bot, kind: str | None = None) -> list[str]:
    """Ids of the queued jobs: all, or the worker's apply of this kind of fact."""
    return sorted(j.job_id for j in await bot.queued_jobs()
                  if kind is None or (j.function == APPLY and j.args[0] == kind))


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], within: float = 5.0) -> T:
    """Poll `probe` until `ok(value)` or the deadline (no sleeping as synchronisation)."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if ok(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


def local_day(at: datetime) -> str:
    return periods.local_day(at).isoformat()
