"""`talenthome backup PATH`, `talenthome restore PATH` and `talenthome held` (issue 13; README, "Recovery
runbook"). The domain part is scoring/backup.py; here: finding PostgreSQL's client programs, the order of
the steps, and what is said.

restore, step by step: refuse a file that is not a backup of the configured kind, refuse a database that
holds any row (unless --force), copy the backup in, bring the schema to head (Alembic), hold the outbox rows
that were pending at the backup, write the audit row, empty Redis and rebuild the boards from the ledger.
Stop the bot and the worker first; start them after.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil

import redis.asyncio as aioredis

from scoring import backup, live
from scoring.db import transaction
from scoring.migrate import head_revision, schema_state, upgrade
from scoring.settings import Settings
from scoring.staff import audit
from talenthome.commands.data import _actor
from talenthome.runtime import CliError, PrivateRedis, database, redis_url
from talenthome.servers import pg_bindir


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="a consistent online backup of the database into PATH (SQLite file or "
                                      "pg_dump custom format)")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--force", action="store_true", help="overwrite PATH when it exists")
    p.set_defaults(func=take_backup)
    p = sub.add_parser("restore", help="replace the database with the backup PATH, migrate it, hold the "
                                       "outbox rows pending at the backup and rebuild the boards")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--force", action="store_true", help="restore over a database that holds data")
    p.set_defaults(func=restore)
    p = sub.add_parser("held", help="outbox messages held by a restore: list, --release or --drop them")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--release", metavar="IDS", help="send these (comma-separated ids, or `all`)")
    g.add_argument("--drop", metavar="IDS", help="never send these (comma-separated ids, or `all`)")
    p.set_defaults(func=held)


def pg_program(name: str) -> str:
    """pg_dump or pg_restore: beside the initdb the project uses (talenthome.servers.pg_bindir: PATH, else
    the newest /usr/lib/postgresql/<v>/bin), else on PATH. A dump must be made by a pg_dump at least as new
    as the server."""
    bindir = pg_bindir()
    if bindir and os.access(os.path.join(bindir, name), os.X_OK):
        return os.path.join(bindir, name)
    debian = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                    key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0, reverse=True)
    found = debian[0] if debian else shutil.which(name)
    if found:
        return found
    raise CliError(f"{name} not found: install PostgreSQL's client programs (postgresql-client) or put "
                   f"{name} on PATH")


def _one_line(err: backup.BackupError) -> CliError:
    return CliError(str(err))


def take_backup(args: argparse.Namespace) -> int:
    settings = Settings()
    path = os.path.abspath(args.path)
    if os.path.isdir(path):
        raise CliError(f"{args.path} is a folder: give the backup's file name, e.g. {args.path}/talenthome.backup")
    if os.path.exists(path) and not args.force:
        raise CliError(f"{args.path} exists: choose a new name, or --force to replace it")
    if not os.path.isdir(os.path.dirname(path)):
        raise CliError(f"the folder {os.path.dirname(path)} does not exist: create it first")
    try:
        kind = backup.kind_of(settings.database_url)
        taken = backup.take(settings.database_url, path,
                            pg_dump=pg_program("pg_dump") if kind == "postgresql" else None)
    except backup.BackupError as err:
        raise _one_line(err) from None
    print(f"backup of the {taken.kind} database written to {taken.path} ({taken.size:,} bytes, "
          f"{taken.seconds:.1f} s)")
    return 0


def restore(args: argparse.Namespace) -> int:
    settings = Settings()
    url = settings.database_url
    src = os.path.abspath(args.path)
    try:
        kind = backup.kind_of(url)
        pg_restore = pg_program("pg_restore") if kind == "postgresql" else None
        backup.check_file(kind, src, pg_restore=pg_restore)
        if kind == "sqlite" and not os.path.exists(backup.sqlite_file(url)):
            holding: dict[str, int] = {}
        else:
            holding = asyncio.run(backup.rows_in(url))
        if holding and not args.force:
            shown = ", ".join(sorted(holding)[:4]) + (", ..." if len(holding) > 4 else "")
            raise CliError(f"the database holds data ({shown}): restore only into an empty database, or "
                           "--force to replace it (stop the bot and the worker first)")
        if kind == "sqlite":
            backup.restore_sqlite(url, src)
        else:
            assert pg_restore is not None
            asyncio.run(backup.restore_postgres(url, src, pg_restore=pg_restore))
    except backup.BackupError as err:
        raise _one_line(err) from None
    _, before = asyncio.run(schema_state(url))
    if before is not None and before != head_revision():
        upgrade(url)  # a backup taken at an older schema: Alembic brings it to head (sync: env.py runs a loop)
    migrated = (f"schema migrated from {before} to {head_revision()}" if before not in (None, head_revision())
                else "schema at head" if before else "schema made from the models (no Alembic revision)")
    private = PrivateRedis(settings.var_dir)
    try:
        held_rows, rebuilt = asyncio.run(_after(settings, redis_url(settings, private), src, migrated))
    finally:
        private.stop()
    print(f"restored {args.path} into the {kind} database; {migrated}")
    print(f"{held_rows} outbox messages that were pending at the backup are held (they may have been sent "
          "before the loss): `talenthome held` lists them, --release or --drop decides")
    if rebuilt is None:
        print("Redis emptied; the boards were being rebuilt by another process: run `talenthome rebuild-boards`")
    else:
        print(f"Redis emptied (queue, markers, de-duplication: derived state); boards rebuilt from the ledger "
              f"({rebuilt.boards} boards, {rebuilt.entries} entries). Start the bot and the worker now.")
    return 0


async def _after(settings: Settings, url: str, src: str, migrated: str) -> tuple[int, live.Rebuilt | None]:
    async with database(settings) as sessions:
        async with transaction(sessions) as s:
            n = await backup.hold_outbox(s, src)
            await audit(s, _actor(), "admin", f"restore {os.path.basename(src)}",
                        f"{migrated}; {n} outbox messages held")
        client = aioredis.from_url(url)  # type: ignore[no-untyped-call]
        try:
            rebuilt = await backup.reset_derived(sessions, client)
        finally:
            await client.aclose()
    return n, rebuilt


def _ids(raw: str) -> list[int] | None:
    if raw.strip().lower() == "all":
        return None
    try:
        return [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"bad ids {raw!r}: give comma-separated numbers (see `talenthome held`) or `all`") from None


def held(args: argparse.Namespace) -> int:
    settings = Settings()
    action = "release" if args.release else "drop" if args.drop else None
    ids = _ids(args.release or args.drop) if action else None

    async def body() -> tuple[int, list[tuple[int, str, str, str]]]:
        async with database(settings) as sessions:
            if action is None:
                async with sessions() as s:
                    rows = await backup.held(s)
                return 0, [(r.id, r.openid, r.key, r.created_at.strftime("%Y-%m-%d %H:%M")) for r in rows]
            async with transaction(sessions) as s:
                if action == "release":
                    n = await backup.release_held(s, ids)
                else:
                    n = await backup.drop_held(s, ids)
                await audit(s, _actor(), "admin", f"held --{action} {args.release or args.drop}",
                            f"{n} messages {'released' if action == 'release' else 'dropped'}")
            return n, []

    n, rows = asyncio.run(body())
    if action is None:
        for row in rows:
            print("\t".join(str(x) for x in row))
        print(f"{len(rows)} held messages (id, openid, key, queued at UTC)")
    elif action == "release":
        print(f"{n} held messages released: the worker sends them within seconds")
    else:
        print(f"{n} held messages dropped: they will not be sent")
    return 0
