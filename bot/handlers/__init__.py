"""One router per area; `root_router()` includes them all. Each area module exposes `router`."""

from __future__ import annotations

import importlib

from bot.router import Router

# Area modules under bot/handlers/, each with a module-level `router` (a Router). Missing ones are skipped.
AREAS = ("general", "account", "visit", "signup", "survey", "operator", "admin")


def root_router() -> Router:
    root = Router("root")
    for name in AREAS:
        try:
            module = importlib.import_module(f"bot.handlers.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"bot.handlers.{name}":
                raise
            continue
        root.include_router(module.router)
    return root
