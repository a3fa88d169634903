"""The mini program's JSON API under /api/v1 (SPEC 5, issue 11)."""

from __future__ import annotations

from aiohttp import web

from web.deps import DepsOf


def setup(app: web.Application, deps_of: DepsOf) -> None:
    return None
