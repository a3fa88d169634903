"""arq's WorkerSettings: the composition root of the worker process.

    arq worker.settings.WorkerSettings        (or `talenthome worker`, which starts the private Redis)

The areas (worker/tasks.py, push.py, calendar.py) are imported by name, with their written-out lists of
functions and cron jobs; a missing one is an ImportError at start, not a silent gap. Policy (tries,
timeouts) sits here. `on_startup` reads the configuration from the environment (scoring.settings.Settings:
DATABASE_URL, WECHAT_*, ...; `.env` too) unless the caller put a Settings in `ctx` (`talenthome worker`,
the tests), and builds the engine, the sessions and the WeChat client into arq's ctx. Redis is REDIS_URL,
read when this module is imported, since arq connects before on_startup (unset: arq's default,
localhost:6379; `talenthome worker` passes its own).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.worker import Worker, create_worker

from scoring.db import make_engine, make_sessionmaker
from scoring.settings import Settings
from worker import calendar, push, tasks

DEFAULT_REDIS: Final = "redis://localhost:6379"


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or Settings()
    ctx["settings"] = settings
    ctx["engine"] = make_engine(settings.database_url)
    ctx["sessions"] = make_sessionmaker(ctx["engine"])
    await tasks.startup(ctx)
    await push.startup(ctx)


async def on_shutdown(ctx: dict[str, Any]) -> None:
    await push.shutdown(ctx)
    await ctx["engine"].dispose()


class WorkerSettings:
    # Written out: each area's tasks and cron jobs (with their timeouts) sit in its own module.
    functions: ClassVar[list[Any]] = [*tasks.FUNCTIONS, *push.FUNCTIONS, *calendar.FUNCTIONS]
    cron_jobs: ClassVar[list[CronJob]] = [*tasks.CRON, *push.CRON, *calendar.CRON]
    on_startup = on_startup
    on_shutdown = on_shutdown
    redis_settings = RedisSettings.from_dsn(os.environ.get("REDIS_URL") or DEFAULT_REDIS)
    max_tries = 10
    job_timeout = 60
    keep_result = 60
    max_jobs = 50
    # A SIGKILLed worker's picked jobs stay "in progress" (longest timeout + 10 s) at the head of the
    # queue; read far enough past them that new jobs are never hidden (arq's default is 5 x max_jobs).
    queue_read_limit = 5000
    retry_jobs = True
    handle_signals = True
    timezone = ZoneInfo("Asia/Shanghai")  # cron hours are local (SPEC 3, "Time")


def create(redis_url: str, settings: Settings | None = None, **overrides: Any) -> Worker:
    """A Worker with these settings on this Redis (`talenthome worker`, the tests, the benchmarks)."""
    return create_worker(WorkerSettings, redis_settings=RedisSettings.from_dsn(redis_url),
                         ctx={"settings": settings} if settings is not None else {}, **overrides)
