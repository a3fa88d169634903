"""`talenthome rebuild-boards`: recreate the live boards in Redis from the ledger alone."""

from __future__ import annotations

import argparse
import asyncio

import redis.asyncio as aioredis

from scoring import live
from scoring.settings import Settings
from talenthome.progress import progress
from talenthome.runtime import CliError, PrivateRedis, database, redis_url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rebuild-boards", help="recreate the live boards (Redis) from the ledger alone")
    p.set_defaults(func=rebuild_boards)


def rebuild_boards(args: argparse.Namespace) -> int:
    settings = Settings()
    private = PrivateRedis(settings.var_dir)
    try:  # an unreachable Redis or database propagates to talenthome.cli.main: one line
        url = redis_url(settings, private)
        with progress("从账本重建排行榜"):
            result = asyncio.run(_rebuild(settings, url))
    finally:
        private.stop()
    if result is None:
        raise CliError("another rebuild of the boards is running; try again when it has finished")
    print(f"rebuilt {result.boards} boards ({result.members} lines) from {result.entries} ledger entries "
          f"in {result.seconds:.2f} s (read {result.read_s:.2f} s, write {result.write_s:.2f} s; "
          f"{result.replayed} entries recorded meanwhile added after)")
    return 0


async def _rebuild(settings: Settings, url: str) -> live.Rebuilt | None:
    client = aioredis.from_url(url)
    try:
        async with database(settings) as sessions:
            return await live.rebuild(sessions, client)
    finally:
        await client.aclose()
