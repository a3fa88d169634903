"""A SIGKILLed worker's job is taken over by another worker within a minute (issue 13, "arq timeouts").

arq marks a started job `arq:in-progress:{id}` for the longest timeout of any function + 10 s; the worker
turns that into a lease of IN_PROGRESS_LEASE_S renewed by a heartbeat (worker/settings.py). Two real
`talenthome worker` processes (forked from test_exactly_once's zygote) on PostgreSQL: a visit's `apply` job
is made slow by a real lock (the test holds `LOCK TABLE entries`), so it is mid-job when its worker is
killed. While its worker lives, the other worker leaves the job alone past the lease (the heartbeat); once
it is killed, the other takes the same job id over (try 2) and applies the visit, exactly once in effect.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.engine import make_url

from scoring import live
from scoring.clock import utcnow
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import Entry, Station, Talent, Visit
from tests import factories as f
from tests.worker.test_exactly_once import Workers, arq_redis, until, workers, zygote  # noqa: F401 (fixtures)
from tests.worker.test_tasks import assert_boards_match
from worker.settings import HEARTBEAT_S, IN_PROGRESS_LEASE_S


def _log(folder: Path, n: int) -> str:
    path = folder / f"worker{n}.log"
    return path.read_text(errors="replace") if path.exists() else ""


async def test_killed_workers_job_is_taken_over_within_a_minute(
        pg_url: str, redis_url: str, redis: Any, arq_redis: ArqRedis,  # noqa: F811
        workers: Callable[[str, str], Workers], tmp_path: Path) -> None:  # noqa: F811
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    pool = workers(pg_url, redis_url)
    u = make_url(pg_url)
    locker = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database=u.database)
    try:
        async with transaction(sessions) as s:
            station = await f.station(s, "LEASE")
            talent = await f.talent(s, "LT1", openid="o-lease")
            vid = (await f.visit(s, talent, station, utcnow())).id  # young: the sweeper leaves it for 60 s
        await live.rebuild(sessions, redis)
        pids = [await pool.start_ready(), await pool.start_ready()]

        # A slow job: the visit's apply waits for the ledger, which the test keeps locked.
        await locker.execute("BEGIN; LOCK TABLE entries IN ACCESS EXCLUSIVE MODE")
        job = f"visit:{vid}"
        key = f"arq:in-progress:{job}"
        await arq_redis.enqueue_job("apply", "visit", vid, _job_id=job)
        started = re.compile(rf"→ {job}:apply\(")

        async def taken() -> bool:
            return any(started.search(_log(tmp_path, n)) for n in (1, 2))

        await until(taken, "a worker started the job", within=30)
        holder = 1 if started.search(_log(tmp_path, 1)) else 2
        standby = 3 - holder
        ttl = await redis.pttl(key)
        assert 0 < ttl <= IN_PROGRESS_LEASE_S * 1000  # arq's own expiry would be the longest timeout + 10 s

        # While the holder lives, its heartbeat keeps the job: past a lease and a beat the other has not
        # started it (a poll over a fixed span: the invariant must hold all along).
        span = time.monotonic() + IN_PROGRESS_LEASE_S + HEARTBEAT_S
        while time.monotonic() < span:
            assert await redis.exists(key), "the lease of a running job expired"
            assert not started.search(_log(tmp_path, standby)), "a running job was started twice"
            await asyncio.sleep(0.25)

        # SIGKILL the holder mid-job; release the ledger. The other worker takes the same job over.
        await pool.kill(pids[holder - 1])
        killed_at = time.monotonic()
        await locker.execute("ROLLBACK")

        retaken = re.compile(rf"→ {job}:apply\(.*try=2")

        async def taken_over() -> bool:
            return bool(retaken.search(_log(tmp_path, standby)))

        await until(taken_over, "the other worker took the job over", within=60)
        took = time.monotonic() - killed_at
        print(f"the killed worker's job was taken over {took:.1f} s after the kill (lease {IN_PROGRESS_LEASE_S:.0f} s)")
        assert took < 60

        async def applied() -> bool:
            async with sessions() as s:
                return (await s.get(Visit, vid, populate_existing=True)).applied_at is not None  # type: ignore[union-attr]

        await until(applied, "the visit applied", within=30)
        done = re.compile(rf"← {job}:apply ● ")
        await until(lambda: _says(tmp_path, standby, done), "the taken-over job finished", within=30)

        # exactly once in effect
        await until(lambda: _no_intents(redis), "the board bump settled", within=30)
        async with sessions() as s:
            keys = sorted((await s.scalars(select(Entry.key))).all())
            assert len(keys) == 2 and all(k.startswith("visit:") for k in keys)
            assert (await s.scalar(select(Station.id).where(Station.code == "LEASE"))) is not None
            assert (await s.scalar(select(Talent.id).where(Talent.cert_no == "LT1"))) is not None
        await assert_boards_match(sessions, redis, utcnow())
    finally:
        await locker.close()
        await engine.dispose()


async def _says(folder: Path, n: int, pattern: re.Pattern[str]) -> bool:
    return bool(pattern.search(_log(folder, n)))


async def _no_intents(redis: Any) -> bool:
    return int(await redis.zcard(live.INTENTS)) == 0
