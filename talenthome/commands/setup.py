"""`talenthome migrate`."""

from __future__ import annotations

import argparse

from scoring.migrate import upgrade
from scoring.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("migrate", help="create or upgrade the database schema (Alembic)")
    p.set_defaults(func=migrate)


def migrate(args: argparse.Namespace) -> int:
    settings = Settings()
    upgrade(settings.database_url)
    print("database is up to date")
    return 0
