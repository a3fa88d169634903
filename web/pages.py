"""The mobile pages (issue 11): filled in by the pages work. `setup` registers their routes."""

from __future__ import annotations

from aiohttp import web

from web.deps import DepsOf


def setup(app: web.Application, deps: DepsOf) -> None:
    return None
