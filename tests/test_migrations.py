"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from scoring.db import make_engine
from scoring.migrate import upgrade
from scoring.models import Base


def _diff(connection: Any) -> list[Any]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def _schema_diff(url: str) -> list[Any]:
    engine = make_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    await engine.dispose()
    return diff


async def test_migrations_match_models_on_sqlite(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    await asyncio.to_thread(upgrade, url)  # Alembic's env.py runs its own event loop
    assert await _schema_diff(url) == []


async def test_migrations_match_models_on_postgresql(pg_server) -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=pg_server.port, user="postgres", database="postgres")
    await conn.execute("CREATE DATABASE migrations_check")
    await conn.close()
    url = pg_server.url("migrations_check")
    await asyncio.to_thread(upgrade, url)  # Alembic's env.py runs its own event loop
    assert await _schema_diff(url) == []
