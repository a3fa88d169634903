"""scoring.db.make_engine, the one engine factory: the SQLite pragmas for every flavour, BEGIN IMMEDIATE for
the app's and the batcher's engines, a deferred snapshot that never waits for a writer."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import Station
from tests import factories as f


def test_the_sync_engine_has_the_pragmas_and_begins_immediate(sqlite_url):
    engine = make_engine(sqlite_url, sync=True)
    assert isinstance(engine, Engine) and engine.dialect.driver == "pysqlite"
    with engine.begin() as conn:
        pragmas = [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "foreign_keys",
                                                                            "busy_timeout")]
        assert pragmas == ["wal", 1, 30000]
        other = sqlite3.connect(make_url(sqlite_url).database or "", timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):  # the write lock is taken at BEGIN
            other.execute("BEGIN IMMEDIATE")
        other.close()
    engine.dispose()
    with pytest.raises(ValueError, match="SQLite only"):
        make_engine("postgresql+asyncpg://u@127.0.0.1/x", sync=True)


async def test_a_snapshot_reads_while_another_connection_writes(sqlite_url):
    app = make_engine(sqlite_url)
    snap = make_engine(sqlite_url, snapshot=True)
    try:
        async with transaction(make_sessionmaker(app)) as s:
            await f.station(s, "ST1")
        async with transaction(make_sessionmaker(app)) as writer:  # holds SQLite's write lock until the end
            await f.station(writer, "ST2")
            async with snap.connect() as conn:
                await conn.exec_driver_sql("BEGIN")  # deferred: takes no write lock, so it does not wait

                async def read() -> int:
                    return int((await conn.execute(select(func.count(Station.id)))).scalar_one())

                assert await asyncio.wait_for(read(), 5) == 1  # the committed state only
                await conn.exec_driver_sql("ROLLBACK")
        async with snap.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await snap.dispose()
        await app.dispose()
