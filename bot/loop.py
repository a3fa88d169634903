"""The bot's event loop: uvloop when it is installed and BOT_UVLOOP is on (the default), else asyncio's own.

uvloop runs the same asyncio code (aiohttp, redis-py, asyncpg) with the loop, its timers and its socket
transports in C: per callback that is less CPU spent between the handler's own steps (issue 14, webhook
profile). BOT_UVLOOP=0 keeps asyncio's loop; so does a platform without uvloop (it is a dependency only
where it builds).
"""

from __future__ import annotations

import asyncio
import gc
import logging

log = logging.getLogger(__name__)


def new_event_loop(use_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed: running on asyncio's event loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """"uvloop" or "asyncio" (for logs, /healthz and the benchmark)."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


GC_THRESHOLDS = (20_000, 20, 50)


def settle_heap() -> None:
    """For a server process, once its app is built: collect, then freeze what is left (modules, SQLAlchemy's
    mappers and compiled statements, the routes: about 140k objects) out of the cyclic garbage collector's
    sight, and let it run less often (GC_THRESHOLDS: young objects mostly die by reference counting
    before a collection). A full collection scanned every long-lived object of the app (tens of ms, a
    stall of every callback in flight); in the webhook's profile the collections showed up at every
    allocation site of the hot path."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def settle_heap_on_startup(app: object) -> None:
    """`settle_heap` as an aiohttp on_startup handler (after the app's own: `talenthome serve`)."""
    settle_heap()
