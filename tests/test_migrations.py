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


async def test_gift_catalogue_migration_keeps_existing_gifts(tmp_path) -> None:
    """0002 on a database with gifts: they become city-wide, with an empty description and a creation
    time; and it downgrades cleanly."""
    from alembic import command
    from sqlalchemy import text

    from scoring.migrate import alembic_config

    url = f"sqlite+aiosqlite:///{tmp_path}/g.db"
    await asyncio.to_thread(upgrade, url, "0001")
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO gifts (name, cost, stock, active) VALUES ('茶叶', 10, 3, 1)"))
    await asyncio.to_thread(upgrade, url)
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT name, station_id, description, created_at FROM gifts"))).one()
    assert row[:3] == ("茶叶", None, "") and row[3] is not None
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0001")
    async with engine.connect() as conn:
        cols = [r[1] for r in (await conn.execute(text("PRAGMA table_info(gifts)"))).all()]
    await engine.dispose()
    assert cols == ["id", "name", "cost", "stock", "active"]
