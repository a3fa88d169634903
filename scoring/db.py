"""Engine and sessions. SQLite (WAL, foreign keys, immediate write transactions) or PostgreSQL (asyncpg).

Also the two statements whose form depends on the dialect, written once: `insert` (for ON CONFLICT) and
`lock` (a row lock on PostgreSQL; SQLite's write transactions hold the database's lock from BEGIN).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar, overload

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


@overload
def make_engine(url: str | URL, *, sync: Literal[False] = False, snapshot: bool = False,
                **kwargs: Any) -> AsyncEngine: ...


@overload
def make_engine(url: str | URL, *, sync: Literal[True], snapshot: bool = False, **kwargs: Any) -> Engine: ...


def make_engine(url: str | URL, *, sync: bool = False, snapshot: bool = False, **kwargs: Any) -> AsyncEngine | Engine:
    """The one engine factory. On SQLite it creates the file's folder and sets the pragmas (WAL, foreign
    keys, synchronous NORMAL, a 30 s busy timeout) and makes every transaction BEGIN IMMEDIATE.

    - `snapshot`: for reads that must see one snapshot without taking the write lock (scoring.live): no
      pool, and transactions are begun by the caller (a deferred BEGIN on SQLite).
    - `sync`: a synchronous (pysqlite) engine on the same SQLite file, for code that runs on a thread of its
      own (the bot's group commit) and for scripts (bench/); SQLite only.
    """
    u = make_url(url)
    sqlite = u.get_backend_name() == "sqlite"
    if sync:
        if not sqlite:
            raise ValueError(f"a synchronous engine is for SQLite only, not {u.get_backend_name()}")
        u = u.set(drivername="sqlite")
    if snapshot:
        kwargs.setdefault("poolclass", NullPool)
    if not sqlite:
        if "poolclass" not in kwargs:
            kwargs.setdefault("pool_size", 10)
            kwargs.setdefault("max_overflow", 20)
        return create_async_engine(u, **kwargs)
    if u.database and u.database != ":memory:":
        folder = os.path.dirname(os.path.abspath(u.database))
        os.makedirs(folder, exist_ok=True)
    kwargs.setdefault("connect_args", {"timeout": 30})
    if sync:
        engine = create_engine(u, **kwargs)
        _sqlite_pragmas(engine, immediate=not snapshot)
        return engine
    async_engine = create_async_engine(u, **kwargs)
    _sqlite_pragmas(async_engine.sync_engine, immediate=not snapshot)
    return async_engine


def _sqlite_pragmas(sync_engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself (pysqlite's own handling defers it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    if not immediate:
        return

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Every transaction takes the write lock up front: a read-then-write (a redemption checking
        # the balance) can never interleave with another writer, and never fails on lock upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any exception."""
    async with sessions() as session, session.begin():
        yield session


# -- the dialect's own statements ------------------------------------------------------------------------
Bindable = AsyncSession | Session | Connection | AsyncConnection


def dialect_name(on: Bindable) -> str:
    bind = on if isinstance(on, Connection | AsyncConnection) else on.get_bind()
    return bind.dialect.name


def insert(on: Bindable | str, table: Any) -> Any:
    """INSERT into `table` (a model or a Table) in the dialect of `on` (a session, a connection, or a dialect
    name), so that `.on_conflict_do_nothing(...)` / `.on_conflict_do_update(...)` are there: PostgreSQL's or
    SQLite's, which spell ON CONFLICT alike."""
    name = on if isinstance(on, str) else dialect_name(on)
    return postgresql.insert(table) if name == "postgresql" else sqlite.insert(table)


Row = TypeVar("Row")


async def lock(session: AsyncSession, model: type[Row], id_: int) -> Row | None:
    """The row `id_` of `model`, read afresh and locked until the transaction ends.

    PostgreSQL: SELECT .. FOR NO KEY UPDATE. It serialises every read-then-write step that locks the same
    row first (a redemption's balance, a survey's cap, a media report's difference, the seats of an
    activity, a visit being applied or voided) but not the plain inserts of rows that refer to it, whose
    foreign-key checks take only KEY SHARE. SQLite: every write transaction began IMMEDIATE (make_engine)
    and holds the database's write lock already; the row is just read."""
    pg = dialect_name(session) == "postgresql"
    return await session.get(model, id_, populate_existing=True, with_for_update={"key_share": True} if pg else None)
