"""What the window needs from the composition root, as a Protocol (web/ must not import bot/).

`setup(app, deps_of)` receives a function from the application to its dependencies, because the bot builds
them at startup (after the routes are registered); a view asks `deps(request)`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring.settings import Settings


class WebDeps(Protocol):
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: aioredis.Redis

    async def enqueue(self, function: str, *args: Any, job_id: str,
                      defer_until: datetime | None = None) -> None: ...


DepsOf = Callable[[web.Application], WebDeps]
DEPS_OF: web.AppKey[DepsOf] = web.AppKey("web_deps_of")


def deps(request: web.Request) -> WebDeps:
    """The running app's dependencies (the bot's Deps, seen through WebDeps)."""
    return request.app[DEPS_OF](request.app)
