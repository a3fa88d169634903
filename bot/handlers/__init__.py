"""One router per area; `root_router()` includes them all, written out: a missing or misnamed area module
is an ImportError when the bot starts, never a silently absent router. Each area module exposes `router`."""

from __future__ import annotations

from bot.handlers import account, admin, general, kiosk, operator, services, signup, survey, visit
from bot.router import Router

# No word, event or scene is registered by two areas (tests/test_architecture.py), so the order is free.
ROUTERS = (general.router, account.router, visit.router, signup.router, survey.router, operator.router,
           admin.router, kiosk.router, kiosk.admin_router, services.router, services.staff_router)


def root_router() -> Router:
    root = Router("root")
    for router in ROUTERS:
        root.include_router(router)
    return root
