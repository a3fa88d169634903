"""What every command needs: settings, the database, Redis (the private one when REDIS_URL is unset)."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring.db import make_engine, make_sessionmaker
from scoring.settings import Settings
from talenthome.servers import RedisServer


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings.database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def _alive(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


class PrivateRedis:
    """The private redis-server under ./var/redis, shared by every `talenthome` process of this folder.

    The first process that needs it starts it and writes its port to var/redis/port; later ones reuse it.
    Only the process that started it stops it (`make run` on exit)."""

    def __init__(self, var_dir: str):
        self.folder = os.path.join(var_dir, "redis")
        self.port_file = os.path.join(self.folder, "port")
        self.server: RedisServer | None = None

    def running_url(self) -> str | None:
        with suppress(OSError, ValueError):
            with open(self.port_file) as f:
                port = int(f.read().strip())
            if _alive(port):
                return f"redis://127.0.0.1:{port}/0"
        return None

    def ensure(self) -> str:
        url = self.running_url()
        if url:
            return url
        self.server = RedisServer(self.folder).start(persist=True)
        with open(self.port_file, "w") as f:
            f.write(str(self.server.port))
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            with suppress(OSError):
                os.unlink(self.port_file)
            self.server = None


def require_schema(settings: Settings) -> None:
    """Refuse to start a server on a database that `talenthome migrate` has not brought up to date."""
    import asyncio

    from scoring.migrate import head_revision, schema_state

    has_tables, revision = asyncio.run(schema_state(settings.database_url))
    if not has_tables:
        raise CliError("the database has no tables yet: run `talenthome migrate` first")
    if revision is not None and revision != head_revision():
        raise CliError(f"the database schema is at revision {revision}, not {head_revision()}: "
                       "run `talenthome migrate` first")


def redis_url(settings: Settings, private: PrivateRedis | None = None) -> str:
    """REDIS_URL, else the private server (started here when none runs; `private` keeps the handle)."""
    if settings.redis_url:
        return settings.redis_url
    return (private or PrivateRedis(settings.var_dir)).ensure()
