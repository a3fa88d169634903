"""Mounts the window on an aiohttp application: the JSON API under /api/v1, WeChat login under /auth, and
the pages (web/pages.py). Called by bot/app.py::create_app, so everything is on the bot's one port."""

from __future__ import annotations

from aiohttp import web

from web import api, api_services, auth, pages
from web.deps import DEPS_OF, DepsOf


def setup(app: web.Application, deps: DepsOf) -> None:
    app[DEPS_OF] = deps
    api.setup(app, deps)
    api_services.setup(app)
    auth.setup(app, deps)
    pages.setup(app, deps)
