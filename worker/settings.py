"""arq's WorkerSettings: the composition root of the worker process.

    arq worker.settings.WorkerSettings        (or `talenthome worker`, which starts the private Redis)

The areas (worker/tasks.py, push.py, calendar.py) are imported by name, with their written-out lists of
functions and cron jobs; a missing one is an ImportError at start, not a silent gap. Policy (tries,
timeouts) sits here. `on_startup` reads the configuration from the environment (scoring.settings.Settings:
DATABASE_URL, WECHAT_*, ...; `.env` too) unless the caller put a Settings in `ctx` (`talenthome worker`,
the tests), and builds the engine, the sessions and the WeChat client into arq's ctx. Redis is REDIS_URL,
read when this module is imported, since arq connects before on_startup (unset: arq's default,
localhost:6379; `talenthome worker` passes its own).

Timeouts and the in-progress lease
----------------------------------
arq marks a job it starts with `arq:in-progress:{job id}` and gives that key one expiry for every job:
the longest timeout of any function or cron + 10 s (`Worker.in_progress_timeout_s`). A SIGKILLed worker
leaves the key behind, so its jobs would wait that long (610 s with the calendar's old 600 s crons) before
another worker may take them. Here the key is a lease instead: `on_job_start` shortens it to
IN_PROGRESS_LEASE_S and a heartbeat renews it every HEARTBEAT_S while the job runs (`on_job_end` stops it,
before arq deletes the key or keeps a cron's for 60 s). A killed worker's jobs are taken by another worker
within IN_PROGRESS_LEASE_S (+ one poll), whatever their timeouts; the timeouts only bound how long a job may
run (each cron's is set next to it, with the work it covers: worker/calendar.py, tasks.py, push.py; the
functions share `job_timeout`, which covers an outbox delivery's worst case: a subscription send that
falls back to a template message, each with the client's retries). A job whose worker is alive but whose
event loop stalls longer than the lease (nothing here does: database calls run in threads or sockets) could
be started a second time; every job is safe to run twice (arq promises no more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.cron import CronJob
from arq.worker import Worker, create_worker

from scoring.db import make_engine, make_sessionmaker
from scoring.settings import Settings
from worker import calendar, push, tasks

DEFAULT_REDIS: Final = "redis://localhost:6379"
IN_PROGRESS_LEASE_S: Final = 15.0  # a killed worker's jobs are taken by another worker after at most this
HEARTBEAT_S: Final = 3.0  # the lease is renewed this often while the job runs (5 renewals per lease)
LEASE_TASK: Final = "_in_progress_lease"
log = logging.getLogger(__name__)


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


async def on_job_start(ctx: dict[str, Any]) -> None:
    """Shorten the job's in-progress key to the lease and renew it while the job runs (see the docstring).
    The heartbeat stops with the job's own task, so a job cancelled past on_job_end leaves no beat behind."""
    redis, key = ctx["redis"], in_progress_key_prefix + str(ctx["job_id"])
    job_task = asyncio.current_task()
    lease_ms = int(IN_PROGRESS_LEASE_S * 1000)
    try:
        await redis.pexpire(key, lease_ms)
    except Exception as err:  # never fail the job for its lease: arq's own expiry stays as the fallback
        log.warning("in-progress lease of %s not set (%s)", ctx["job_id"], err)

    async def beat() -> None:
        while job_task is None or not job_task.done():
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await redis.pexpire(key, lease_ms)
            except Exception as err:  # a Redis hiccup: the next beat tries again, well inside the lease
                log.warning("in-progress lease of %s not renewed (%s)", ctx["job_id"], err)

    ctx[LEASE_TASK] = asyncio.ensure_future(beat())


async def on_job_end(ctx: dict[str, Any]) -> None:
    task = ctx.pop(LEASE_TASK, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class WorkerSettings:
    # Written out: each area's tasks and cron jobs (with their timeouts) sit in its own module.
    functions: ClassVar[list[Any]] = [*tasks.FUNCTIONS, *push.FUNCTIONS, *calendar.FUNCTIONS]
    cron_jobs: ClassVar[list[CronJob]] = [*tasks.CRON, *push.CRON, *calendar.CRON]
    on_startup = on_startup
    on_shutdown = on_shutdown
    on_job_start = on_job_start
    on_job_end = on_job_end
    redis_settings = RedisSettings.from_dsn(os.environ.get("REDIS_URL") or DEFAULT_REDIS)
    max_tries = 10
    job_timeout = 60
    keep_result = 60
    max_jobs = 50
    # A SIGKILLed worker's picked jobs stay "in progress" (IN_PROGRESS_LEASE_S) at the head of the queue;
    # read far enough past them that new jobs are never hidden (arq's default is 5 x max_jobs).
    queue_read_limit = 5000
    retry_jobs = True
    handle_signals = True
    timezone = ZoneInfo("Asia/Shanghai")  # cron hours are local (SPEC 3, "Time")


def create(redis_url: str, settings: Settings | None = None, **overrides: Any) -> Worker:
    """A Worker with these settings on this Redis (`talenthome worker`, the tests, the benchmarks)."""
    return create_worker(WorkerSettings, redis_settings=RedisSettings.from_dsn(redis_url),
                         ctx={"settings": settings} if settings is not None else {}, **overrides)
