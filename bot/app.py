"""The bot's composition root: `create_app(settings)` builds the engine, Redis, the arq pool and the
router, and hands them down through `Deps`. No module-level connections anywhere."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from wechatpy.crypto import WeChatCrypto

from bot.batcher import VisitBatcher
from bot.handlers import root_router
from bot.loop import loop_name
from bot.redis_pipe import AutoPipeline
from bot.router import Dispatcher, Router
from bot.webhook import DEPS_KEY, MAX_BODY, WebhookView
from scoring.db import make_engine, make_sessionmaker
from scoring.facts.common import APPLY, Job
from scoring.settings import Settings
from web import app as web_app

log = logging.getLogger(__name__)


@dataclass
class Deps:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis
    arq: ArqRedis
    dispatcher: Dispatcher
    crypto: WeChatCrypto | None
    handler_budget_s: float = 4.0
    background: set[asyncio.Future[Any]] = field(default_factory=set)
    visits: VisitBatcher | None = None  # group commit of check-ins (bot/batcher.py)

    @property
    def token(self) -> str:
        return self.settings.wechat_token.get_secret_value()

    async def enqueue(self, function: str, *args: Any, job_id: str, defer_until: datetime | None = None) -> None:
        """Enqueue an arq job with a deterministic id; a duplicate id is simply not enqueued again. A failure
        is logged, not raised: the fact is in the database and the worker's sweeper enqueues it again."""
        try:
            await self.arq.enqueue_job(function, *args, _job_id=job_id, _defer_until=defer_until)
        except Exception:
            log.exception("could not enqueue %s %s; the sweeper will pick it up", function, job_id)

    async def enqueue_fact(self, job: Job) -> None:
        """Enqueue the worker's apply of a recorded fact (scoring.facts: its kind, id, job id, and when)."""
        defer = job.defer_until.replace(tzinfo=UTC) if job.defer_until is not None else None
        await self.enqueue(APPLY, *job.args, job_id=job.id, defer_until=defer)


def build_router() -> Router:
    return root_router()


async def build_deps(settings: Settings, *, handler_budget_s: float = 4.0) -> Deps:
    """The engine, Redis/arq pool, crypto and router: shared by the web app and `talenthome admin`."""
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL must be set (talenthome serve starts a private Redis when unset)")
    engine = make_engine(settings.database_url)
    arq_pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    crypto = None
    if settings.wechat_aes_key is not None:
        crypto = WeChatCrypto(settings.wechat_token.get_secret_value(),
                              settings.wechat_aes_key.get_secret_value(), settings.wechat_appid)
    deps = Deps(settings=settings, engine=engine, sessions=make_sessionmaker(engine), redis=AutoPipeline(arq_pool),
                arq=arq_pool, dispatcher=Dispatcher(build_router()), crypto=crypto,
                handler_budget_s=handler_budget_s)
    deps.visits = VisitBatcher(deps.sessions, deps.redis, database_url=settings.database_url)
    return deps


async def close_deps(deps: Deps) -> None:
    if deps.background:
        await asyncio.wait(list(deps.background), timeout=10)
    if deps.visits is not None:
        await deps.visits.close()
    await deps.arq.aclose()
    await deps.engine.dispose()


def create_app(settings: Settings, *, handler_budget_s: float = 4.0) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    view = WebhookView(app)
    app.router.add_get("/wechat", view.get)
    app.router.add_post("/wechat", view.post)
    app.router.add_get("/healthz", healthz)
    web_app.setup(app, lambda a: a[DEPS_KEY])  # the API, login and pages (web/), on the same port

    async def startup(app: web.Application) -> None:
        app[DEPS_KEY] = await build_deps(settings, handler_budget_s=handler_budget_s)
        log.info("bot started on the %s event loop", loop_name(asyncio.get_running_loop()))

    async def cleanup(app: web.Application) -> None:
        await close_deps(app[DEPS_KEY])

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app


async def healthz(request: web.Request) -> web.Response:
    deps: Deps = request.app[DEPS_KEY]
    status = {"database": "ok", "redis": "ok"}
    try:
        async with asyncio.timeout(2):
            async with deps.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as err:
        status["database"] = f"down: {type(err).__name__}"
    try:
        async with asyncio.timeout(2):
            await deps.redis.ping()
    except Exception as err:
        status["redis"] = f"down: {type(err).__name__}"
    ok = all(v == "ok" for v in status.values())
    return web.json_response(status, status=200 if ok else 503)
