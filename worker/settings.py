"""arq WorkerSettings: the composition root of the worker process.

Each area module contributes FUNCTIONS (tasks) and CRON (cron jobs); policy (timeouts, tries) sits here.
"""

from __future__ import annotations

import importlib
from typing import Any
from zoneinfo import ZoneInfo

from arq.connections import RedisSettings

from scoring.db import make_engine, make_sessionmaker
from scoring.settings import Settings

# Modules under worker/ that export FUNCTIONS and CRON lists, plus optional startup(ctx)/shutdown(ctx).
AREAS = ("tasks", "push", "calendar")


def _areas() -> list[Any]:
    out = []
    for name in AREAS:
        try:
            out.append(importlib.import_module(f"worker.{name}"))
        except ModuleNotFoundError as err:
            if err.name != f"worker.{name}":
                raise
    return out


async def on_startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or Settings()
    ctx["settings"] = settings
    ctx["engine"] = make_engine(settings.database_url)
    ctx["sessions"] = make_sessionmaker(ctx["engine"])
    for area in _areas():
        if hasattr(area, "startup"):
            await area.startup(ctx)


async def on_shutdown(ctx: dict[str, Any]) -> None:
    for area in reversed(_areas()):
        if hasattr(area, "shutdown"):
            await area.shutdown(ctx)
    await ctx["engine"].dispose()


def worker_settings(redis_url: str, settings: Settings | None = None, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for arq's Worker (also used by tests to run a worker in burst mode)."""
    areas = _areas()
    ctx: dict[str, Any] = {}
    if settings is not None:
        ctx["settings"] = settings
    opts: dict[str, Any] = {
        "functions": [f for a in areas for f in getattr(a, "FUNCTIONS", [])],
        "cron_jobs": [c for a in areas for c in getattr(a, "CRON", [])],
        "redis_settings": RedisSettings.from_dsn(redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "ctx": ctx,
        "max_tries": 10,
        "job_timeout": 60,
        "keep_result": 60,
        "max_jobs": 50,
        # A SIGKILLed worker's picked jobs stay "in progress" (longest timeout + 10 s) at the head of the
        # queue; read far enough past them that new jobs are never hidden (arq's default is 5 x max_jobs).
        "queue_read_limit": 5000,
        "retry_jobs": True,
        "handle_signals": True,
        "timezone": ZoneInfo("Asia/Shanghai"),  # cron hours are local (SPEC 3, "Time")
    }
    opts.update(overrides)
    return opts
