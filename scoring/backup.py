"""Backups and restores of the SQL database, the one source of truth (issue 13).

Promises
- `take(url, dest)` writes a consistent copy of the database while the bot and the worker keep running:
  SQLite through its online backup API (`sqlite3.Connection.backup`, one step: one read snapshot; WAL lets
  writers go on), PostgreSQL with `pg_dump -Fc` (one repeatable-read snapshot). The copy is written under a
  temporary name beside `dest` and renamed at the end, so `dest` is either the previous file or a whole
  backup, never half of one.
- `restore(url, src)` refuses a file that is not a backup of the configured kind (a SQLite file holding the
  ledger's tables for SQLite, a `pg_dump` custom-format archive holding them for PostgreSQL) and a database
  that holds any row, unless forced; then it replaces the database with the backup. Bringing the schema to
  head (migrations), holding the outbox and resetting Redis follow (`hold_outbox`, `reset_derived`), so a
  backup taken at an older schema restores too.
- Nothing already sent is sent again: rows sent before the backup stay `sent`. Rows still `pending` in the
  backup may have been sent between the backup and the loss, and WeChat's send APIs take no idempotency key,
  so a resend could tell a talent the same thing twice; `hold_outbox` marks them `held` (the worker sends
  only `pending` rows) with the reason, and an admin releases (`release_held`) or drops (`drop_held`) them.
  The same choice as the outbox's own: at most once, and what was not sent is visible.
- Redis is derived state: `reset_derived` empties the configured Redis database (queue, intents, the boards'
  per-entry markers, de-duplication; all of them describe the lost timeline, and fact ids after the backup
  will be reused) and rebuilds the boards from the restored ledger.

This module runs `pg_dump`/`pg_restore` as child processes; the caller finds them (talenthome/commands/backup.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from redis.asyncio import Redis
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import live
from scoring.clock import utcnow
from scoring.db import make_engine
from scoring.models import Notification

Kind = Literal["sqlite", "postgresql"]
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
PG_MAGIC: Final = b"PGDMP"
MARK_TABLE: Final = "entries"  # a backup of ours holds the ledger
SEEDED: Final = frozenset({"alembic_version", "service_items"})  # rows a fresh `talenthome migrate` writes
HELD: Final = "held"
HELD_REASON: Final = ("restored from a backup: pending when the backup was taken, so it may have been sent "
                      "before the loss; held for an admin (release or drop)")
DROPPED: Final = "held after a restore (may have been sent before the loss); dropped by an admin, not sent"


class BackupError(Exception):
    """An expected refusal or failure, said in one line (the CLI prints it as is)."""


@dataclass(frozen=True)
class Taken:
    path: str
    kind: Kind
    size: int
    seconds: float


def kind_of(url: str) -> Kind:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return "sqlite"
    if backend == "postgresql":
        return "postgresql"
    raise BackupError(f"cannot back up a {backend} database: DATABASE_URL must be SQLite or PostgreSQL")


def sqlite_file(url: str) -> str:
    path = make_url(url).database
    if not path or path == ":memory:":
        raise BackupError("DATABASE_URL names an in-memory SQLite database: there is nothing to back up")
    return os.path.abspath(path)


def _temporary(dest: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(dest)) or ".",
                        f".{os.path.basename(dest)}.partial-{os.getpid()}")


def _publish(tmp: str, dest: str) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


# -- PostgreSQL's client programs -------------------------------------------------------------------------


def pg_env(url: str) -> dict[str, str]:
    """libpq's environment for the database of `url` (the password stays out of the command line)."""
    u = make_url(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for name, value in (("PGHOST", u.host), ("PGPORT", u.port), ("PGUSER", u.username),
                        ("PGPASSWORD", u.password), ("PGDATABASE", u.database)):
        if value is not None:
            env[name] = str(value)
    for key, raw in u.query.items():  # ?sslmode=require and the like
        if key in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
            env[f"PG{key.upper()}"] = raw if isinstance(raw, str) else ",".join(raw)
    return env


def _run(argv: list[str], env: Mapping[str, str], what: str) -> str:
    done = subprocess.run(argv, env=dict(env), capture_output=True, text=True)
    if done.returncode != 0:
        first = next((line for line in done.stderr.splitlines() if line.strip()), f"exit {done.returncode}")
        raise BackupError(f"{what} failed: {first.strip()}")
    return done.stdout


# -- take ---------------------------------------------------------------------------------------------------


def take(url: str, dest: str, *, pg_dump: str | None = None) -> Taken:
    """A consistent online backup of the database of `url` into the file `dest` (see the module's promises)."""
    kind = kind_of(url)
    started = time.monotonic()
    tmp = _temporary(dest)
    try:
        if kind == "sqlite":
            source = sqlite_file(url)
            if os.path.abspath(dest) == source:
                raise BackupError("the backup would overwrite the database itself: choose another PATH")
            if not os.path.exists(source):
                raise BackupError(f"the SQLite database {source} does not exist: check DATABASE_URL")
            src = sqlite3.connect(source, timeout=30)
            try:
                dst = sqlite3.connect(tmp)
                try:
                    src.backup(dst)  # pages=-1: every page in one step, under one read snapshot
                finally:
                    dst.close()
            finally:
                src.close()
        else:
            if pg_dump is None:
                raise BackupError("pg_dump not found: install PostgreSQL's client programs (postgresql-client)")
            _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--file={tmp}"],
                 pg_env(url), "pg_dump")
        _publish(tmp, dest)
    except BaseException:
        _discard(tmp)
        raise
    return Taken(dest, kind, os.path.getsize(dest), time.monotonic() - started)


# -- restore ------------------------------------------------------------------------------------------------


def check_file(kind: Kind, src: str, *, pg_restore: str | None = None) -> None:
    """Refuse a file that is not a backup of this kind of database, in one line."""
    if not os.path.isfile(src):
        raise BackupError(f"{src}: no such file")
    with open(src, "rb") as f:
        head = f.read(16)
    if kind == "sqlite":
        if head != SQLITE_MAGIC:
            what = "a PostgreSQL backup (pg_dump)" if head.startswith(PG_MAGIC) else "not a SQLite file"
            raise BackupError(f"{src} is {what}, not a backup of the configured SQLite database")
        conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (MARK_TABLE,)).fetchone()
        except sqlite3.DatabaseError as err:
            raise BackupError(f"{src} is not a readable SQLite database ({err})") from err
        finally:
            conn.close()
        if not found:
            raise BackupError(f"{src} is a SQLite file but holds no ledger: not a talenthome backup")
        return
    if not head.startswith(PG_MAGIC):
        what = "a SQLite file" if head == SQLITE_MAGIC else "not a pg_dump custom-format archive"
        raise BackupError(f"{src} is {what}, not a backup of the configured PostgreSQL database")
    if pg_restore is None:
        raise BackupError("pg_restore not found: install PostgreSQL's client programs (postgresql-client)")
    listing = _run([pg_restore, "--list", src], os.environ, "pg_restore --list")
    wanted = ["TABLE", "public", MARK_TABLE]  # a TOC line: `215; 1259 16390 TABLE public entries owner`
    if not any(line.split()[i:i + 3] == wanted for line in listing.splitlines() for i in range(len(line.split()))):
        raise BackupError(f"{src} is a pg_dump archive but holds no ledger: not a talenthome backup")


async def rows_in(url: str) -> dict[str, int]:
    """Tables of the database with at least one row: what a restore would throw away. Alembic's table and the
    common service list (seeded by migration 0007, so a freshly migrated database has it) do not count."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            out: dict[str, int] = {}
            for name in names:
                if name in SEEDED:
                    continue
                count = await conn.scalar(text(f'SELECT count(*) FROM (SELECT 1 FROM "{name}" LIMIT 1) AS t'))
                if count:
                    out[name] = int(count)
            return out
    finally:
        await engine.dispose()


async def _drop_tables(url: str) -> None:
    """PostgreSQL: drop every table of the public schema (their sequences go with them), for pg_restore."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            if names:
                await conn.execute(text("DROP TABLE " + ", ".join(f'"{n}"' for n in names) + " CASCADE"))
    finally:
        await engine.dispose()


def restore_sqlite(url: str, src: str) -> None:
    """Copy the backup's pages over the database file (the backup API: the target's own locking applies)."""
    target = sqlite_file(url)
    if os.path.abspath(src) == target:
        raise BackupError("the backup is the database itself: nothing to restore")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target, timeout=30)
        try:
            source.backup(dst)
        finally:
            dst.close()
    finally:
        source.close()


async def restore_postgres(url: str, src: str, *, pg_restore: str) -> None:
    await _drop_tables(url)
    _run([pg_restore, "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
          f"--dbname={make_url(url).database}", src], pg_env(url), "pg_restore")


async def hold_outbox(session: AsyncSession, restored_from: str, now: datetime | None = None) -> int:
    """Mark the rows that were pending at the backup `held` (see the module's promises); how many."""
    result = await session.execute(
        update(Notification).where(Notification.status == "pending")
        .values(status=HELD, last_error=f"{HELD_REASON} ({os.path.basename(restored_from)}, "
                                        f"restored {(now or utcnow()):%Y-%m-%d %H:%M} UTC)"))
    return int(getattr(result, "rowcount", 0) or 0)


async def held(session: AsyncSession) -> list[Notification]:
    return list((await session.scalars(select(Notification).where(Notification.status == HELD)
                                       .order_by(Notification.id))).all())


async def release_held(session: AsyncSession, ids: list[int] | None) -> int:
    """Send these held rows (all when `ids` is None): back to pending, due at once (since they were queued);
    how many."""
    stmt = update(Notification).where(Notification.status == HELD)
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(ids))
    result = await session.execute(stmt.values(status="pending", next_attempt_at=Notification.created_at,
                                               last_error=None))
    return int(getattr(result, "rowcount", 0) or 0)


async def drop_held(session: AsyncSession, ids: list[int] | None) -> int:
    """Never send these held rows (all when `ids` is None): given up, with the reason; how many."""
    stmt = update(Notification).where(Notification.status == HELD)
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(ids))
    result = await session.execute(stmt.values(status="given_up", last_error=DROPPED))
    return int(getattr(result, "rowcount", 0) or 0)


async def count_held(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Notification)
                                    .where(Notification.status == HELD)) or 0)


async def reset_derived(sessions: async_sessionmaker[AsyncSession], redis: Redis) -> live.Rebuilt | None:
    """Empty the configured Redis database (derived state of the lost timeline) and rebuild the boards from
    the restored ledger."""
    await redis.flushdb()
    return await live.rebuild(sessions, redis)
