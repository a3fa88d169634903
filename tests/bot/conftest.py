"""The bot on a real aiohttp server on loopback, with real Redis and a real database, driven by WeChatSim."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import create_app
from scoring.db import make_engine, make_sessionmaker
from scoring.settings import Settings
from tests.wx import WeChatSim

TOKEN = "testtoken"
APPID = "wxtest0000000001"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def make_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(database_url=database_url, redis_url=redis_url, wechat_token=TOKEN,
                                  wechat_appid=APPID, wechat_secret="testsecret", wechat_aes_key=None,
                                  wechat_api_base="http://127.0.0.1:9/", admin_openids="oAdminEnv")
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Bot:
    url: str
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    wx: WeChatSim
    arq: ArqRedis
    app: web.Application

    async def queued_jobs(self) -> list[Any]:
        return list(await self.arq.queued_jobs())


async def start_bot(database_url: str, redis_url: str, **overrides: Any) -> AsyncIterator[Bot]:
    budget = overrides.pop("handler_budget_s", 4.0)
    settings = make_settings(database_url, redis_url, **overrides)
    app = create_app(settings, handler_budget_s=budget)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/wechat"
    engine = make_engine(database_url)
    arq_pool = await create_pool(RedisSettings.from_dsn(redis_url))
    key = settings.wechat_aes_key.get_secret_value() if settings.wechat_aes_key else None
    wx = WeChatSim(url, TOKEN, APPID, key)
    try:
        yield Bot(url, settings, make_sessionmaker(engine), wx, arq_pool, app)
    finally:
        await wx.close()
        await arq_pool.aclose()
        await engine.dispose()
        await runner.cleanup()


@pytest.fixture(params=["plain", "aes"])
async def any_bot(request: pytest.FixtureRequest, sqlite_url: str, redis_url: str) -> AsyncIterator[Bot]:
    """The bot in plain mode and in safe (AES) mode."""
    extra = {"wechat_aes_key": AES_KEY} if request.param == "aes" else {}
    async for b in start_bot(sqlite_url, redis_url, **extra):
        yield b


@pytest.fixture
async def bot(sqlite_url: str, redis_url: str) -> AsyncIterator[Bot]:
    async for b in start_bot(sqlite_url, redis_url):
        yield b


@pytest.fixture
async def safe_bot(sqlite_url: str, redis_url: str) -> AsyncIterator[Bot]:
    async for b in start_bot(sqlite_url, redis_url, wechat_aes_key=AES_KEY):
        yield b
