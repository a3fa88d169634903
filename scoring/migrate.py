"""Run the Alembic migrations (migrations/) against a database URL."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config

import migrations


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", os.path.dirname(os.path.abspath(migrations.__file__)))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    return str(head)


async def schema_state(url: str) -> tuple[bool, str | None]:
    """(has the ledger's tables, Alembic revision or None). Test databases are made from the models without
    Alembic: tables and no revision."""
    from sqlalchemy import inspect

    from scoring.db import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
            revision = None
            if "alembic_version" in tables:
                from sqlalchemy import text

                revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        return "entries" in tables, (str(revision) if revision is not None else None)
    finally:
        await engine.dispose()
