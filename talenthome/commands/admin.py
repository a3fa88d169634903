"""`talenthome admin "<command text>"`: any admin word from the shell, through the bot's own command code,
as actor `cli:<user>`, with the same audit row. (`talenthome export` lives here too.)"""

from __future__ import annotations

import argparse
import asyncio
import getpass

from scoring.settings import Settings
from talenthome.runtime import CliError, PrivateRedis, redis_url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("admin", help='run an admin command as the bot would, e.g. talenthome admin "/flags"')
    p.add_argument("text", help='the command text, e.g. "/survey ST001 2026 +10 知晓率测评"')
    p.add_argument("--actor", help="who you are (default: your login name)")
    p.set_defaults(func=admin)


def admin(args: argparse.Namespace) -> int:
    from bot.app import build_deps, close_deps
    from bot.router import Context, Incoming

    text = args.text.strip()
    if not text:
        raise CliError("empty command text")
    settings = Settings()
    private = PrivateRedis(settings.var_dir)
    settings.redis_url = redis_url(settings, private)
    actor = f"cli:{args.actor or getpass.getuser()}"

    async def go() -> str | None:
        deps = await build_deps(settings)
        try:
            ctx = Context(deps=deps, incoming=Incoming(openid=actor, kind="text", text=text, via="cli", safe=True))
            return await deps.dispatcher.dispatch(ctx)
        finally:
            await close_deps(deps)

    try:
        reply = asyncio.run(go())
    finally:
        private.stop()
    print(reply or "")
    return 0
