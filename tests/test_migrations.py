"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
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


MULTI = "30分钟内在3个不同站点打卡：QZ01、QZ02、QZ03"
DAILY = "2026-11-10打卡22次，超过阈值20（近30日中位数的5倍，至少20次）"
DELISTED = "2026年度评星位列后10%,连续两年降星(摘牌)"


async def _reason_codes_migrate(url: str, dialect: str) -> None:
    """0010 on a database whose flags and delisted stations hold rendered sentences: the sentences the code
    wrote become codes and numbers, other text is kept whole as {"text": ...}; the code then renders the
    same sentences; downgrading gives the sentences back."""
    from alembic import command
    from sqlalchemy import text

    from scoring.migrate import alembic_config
    from scoring.texts.admin import delisting, flag_detail

    await asyncio.to_thread(upgrade, url, "0008")
    engine = make_engine(url)
    now = "'2026-12-01 00:00:00'"
    async with engine.begin() as conn:
        for i, (code, status, reason) in enumerate([("QZ01", "delisted", DELISTED), ("QZ02", "delisted", "弄虚作假"),
                                                    ("QZ03", "active", None)]):
            await conn.execute(text(
                "INSERT INTO stations (id, code, name, kind, type, county, certified_on, eligible_from, stars, status,"
                " demotion_streak, delisted_reason, created_at, updated_at) VALUES (:id, :code, :code, 'home',"
                f" 'service', '鲤城区', '2025-01-01', {now}, 3, :status, 0, :reason, {now}, {now})"),
                {"id": i + 1, "code": code, "status": status, "reason": reason})
        for i, (rule, detail) in enumerate([("multi_station", MULTI), ("daily_volume", DAILY),
                                            ("multi_station", "人工标记：请核实"), ("daily_volume", "")]):
            await conn.execute(text(
                "INSERT INTO flags (id, rule, hold, station_id, detail, status, created_at) VALUES"
                f" (:id, :rule, {'true' if dialect == 'postgresql' else '1'}, 1, :detail, 'open', {now})"),
                {"id": i + 1, "rule": rule, "detail": detail})
    await asyncio.to_thread(upgrade, url, "0010")
    async with engine.connect() as conn:
        flags = (await conn.execute(text("SELECT rule, params FROM flags ORDER BY id"))).all()
        stations = (await conn.execute(text(
            "SELECT delisted_code, delisted_params FROM stations ORDER BY id"))).all()
    params = [json.loads(p) if isinstance(p, str) else p for _, p in flags]
    assert params == [{"minutes": 30, "n": 3, "codes": ["QZ01", "QZ02", "QZ03"]},
                      {"day": "2026-11-10", "count": 22, "limit": 20, "factor": 5, "floor": 20},
                      {"text": "人工标记：请核实"}, {}]
    assert [flag_detail(rule, p) for (rule, _), p in zip(flags, params, strict=True)] == [
        MULTI, DAILY, "人工标记：请核实", ""]
    codes = [(c, json.loads(p) if isinstance(p, str) else p) for c, p in stations]
    assert codes == [("rating", {"year": 2026}), ("admin", {"text": "弄虚作假"}), (None, None)]
    assert [delisting(c, p) for c, p in codes] == [DELISTED, "弄虚作假", ""]
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0008")
    async with engine.connect() as conn:
        details = (await conn.scalars(text("SELECT detail FROM flags ORDER BY id"))).all()
        reasons = (await conn.scalars(text("SELECT delisted_reason FROM stations ORDER BY id"))).all()
    await engine.dispose()
    assert details == [MULTI, DAILY, "人工标记：请核实", ""]
    assert reasons == [DELISTED, "弄虚作假", None]


async def test_reason_codes_migration_reads_old_sentences_back_on_sqlite(tmp_path) -> None:
    await _reason_codes_migrate(f"sqlite+aiosqlite:///{tmp_path}/r.db", "sqlite")


async def test_reason_codes_migration_reads_old_sentences_back_on_postgresql(pg_server) -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=pg_server.port, user="postgres", database="postgres")
    await conn.execute("CREATE DATABASE reason_codes_check")
    await conn.close()
    await _reason_codes_migrate(pg_server.url("reason_codes_check"), "postgresql")
