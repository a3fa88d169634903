"""`talenthome admin "<command text>"`: any admin word from the shell, through the bot's own command code,
as actor `cli:<user>`, with the same audit row. (`talenthome export` lives here too.)"""

from __future__ import annotations

import argparse
import asyncio
import getpass

from scoring.settings import Settings
from talenthome.progress import progress
from talenthome.runtime import CliError, PrivateRedis, redis_url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("admin", help='run an admin command as the bot would, e.g. talenthome admin "/flags"')
    p.add_argument("text", help='the command text, e.g. "/survey ST001 2026 +10 知晓率测评"')
    p.add_argument("--actor", help="who you are (default: your login name)")
    p.set_defaults(func=admin)
    p = sub.add_parser("export", help="export a report as an Excel workbook (openpyxl)")
    p.add_argument("kind", help="month-board, year-board, rating, activities, audit or gifts (the catalogue now)")
    p.add_argument("--period", help="2026-11 (month-board, activities, audit) or 2026 (year-board, rating, audit); "
                                    "gifts takes none")
    p.add_argument("-o", "--output", help="the .xlsx file to write (default: KIND-PERIOD.xlsx)")
    p.set_defaults(func=export)


def export(args: argparse.Namespace) -> int:
    from scoring.exports import KINDS, ExportError, build
    from talenthome.runtime import database

    if args.kind not in KINDS:
        raise CliError(f"unknown export {args.kind!r}; one of: {', '.join(KINDS)}")
    if args.output and not args.output.endswith(".xlsx"):
        raise CliError("the output file must end with .xlsx")

    async def go() -> str:
        async with database(Settings()) as sessions, sessions() as s:
            try:
                wb, period = await build(s, args.kind, args.period)
            except ExportError as err:
                raise CliError(str(err)) from None
        path = args.output or f"{args.kind}-{period}.xlsx"
        try:
            wb.save(path)
        except OSError as err:
            raise CliError(f"cannot write {path}: {err.strerror}") from None
        return path

    with progress(f"导出 {args.kind}"):
        path = asyncio.run(go())
    print(path)
    return 0


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
