"""The group-commit batcher and the one-round-trip enqueue, on their own (real SQLite and Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from sqlalchemy import select

import bot.batcher as batcher
from bot.batcher import VisitBatcher, enqueue_many
from bot.redis_pipe import AutoPipeline
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import Visit
from scoring.visits import Accepted, Rejected, Scan
from tests import factories as f

AT = datetime(2026, 11, 2, 2, 0)


@pytest.fixture
async def arq(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    yield pool
    await pool.aclose()


async def test_enqueue_many_keeps_arq_semantics(arq: ArqRedis) -> None:
    assert await enqueue_many(arq, [("apply_visit", (1,), "apply_visit:1"),
                                    ("apply_visit", (2,), "apply_visit:2")]) == 2
    await arq.set("arq:result:apply_visit:3", b"done")  # a job that ran already and kept its result
    assert await enqueue_many(arq, [("apply_visit", (1,), "apply_visit:1"), ("apply_visit", (3,), "apply_visit:3"),
                                    ("apply_visit", (4,), "apply_visit:4")]) == 1
    jobs = {j.job_id: (j.function, j.args) for j in await arq.queued_jobs()}
    assert jobs == {f"apply_visit:{i}": ("apply_visit", (i,)) for i in (1, 2, 4)}
    # through the bot's auto-pipelining wrapper too
    assert await enqueue_many(AutoPipeline(arq), [("apply_redemption", (9,), "apply_redemption:9")]) == 1


async def test_auto_pipeline_keeps_each_command_s_result(arq: ArqRedis) -> None:
    pipe = AutoPipeline(arq)
    results = await asyncio.gather(pipe.set("a", b"1", nx=True), pipe.set("a", b"2", nx=True), pipe.get("a"),
                                   pipe.delete("a"), pipe.exists("a"), return_exceptions=True)
    assert results == [True, None, b"1", 1, 0]
    await arq.hset("hh", "k", "v")
    ok, wrong = await asyncio.gather(pipe.set("h", b"x"), pipe.get("hh"), return_exceptions=True)
    assert ok is True and "WRONGTYPE" in str(wrong)  # one command's error is its own
    assert await pipe.ping()  # everything else goes straight to the client


@pytest.mark.parametrize("threaded", [True, False])
async def test_batches_and_one_bad_scan(sqlite_url: str, arq: ArqRedis, monkeypatch: pytest.MonkeyPatch,
                                        threaded: bool) -> None:
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    async with transaction(sessions) as s:
        await f.station(s, "ST1")
        for i in range(20):
            await f.talent(s, f"QZ{i}", openid=f"o{i}")
    real = batcher.record_visits_sync

    def poisoned(session, scans):  # a scan that makes its transaction fail (a database error, say)
        if any(scan.openid == "o13" for scan in scans):
            raise RuntimeError("boom")
        return real(session, scans)

    monkeypatch.setattr(batcher, "record_visits_sync", poisoned)
    monkeypatch.setattr(batcher, "record_visits", lambda s, scans: s.run_sync(poisoned, scans))
    b = VisitBatcher(sessions, arq, database_url=sqlite_url if threaded else None)
    try:
        results = await asyncio.gather(*[b.record(Scan(f"o{i}", AT, station_code="ST1")) for i in range(20)],
                                       return_exceptions=True)
    finally:
        await b.close()
        await engine.dispose()
    assert isinstance(results[13], RuntimeError)
    assert all(isinstance(r, Accepted) for i, r in enumerate(results) if i != 13)
    assert b.batches < 20 or not threaded
    engine = make_engine(sqlite_url)
    async with make_sessionmaker(engine)() as s:
        stored = (await s.scalars(select(Visit.openid))).all()
    await engine.dispose()
    assert sorted(stored) == sorted(f"o{i}" for i in range(20) if i != 13)
    assert len(await arq.queued_jobs()) == 19


async def test_close_writes_what_is_pending(sqlite_url: str, arq: ArqRedis) -> None:
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    async with transaction(sessions) as s:
        await f.station(s, "ST1")
    b = VisitBatcher(sessions, arq, database_url=sqlite_url)
    pending = asyncio.ensure_future(b.record(Scan("oNobody", AT, station_code="ST1")))
    await asyncio.sleep(0)  # let it queue (not synchronisation: close() must handle either order)
    await b.close()
    outcome = await pending
    await engine.dispose()
    assert isinstance(outcome, Rejected) and outcome.visit is not None


async def test_enqueue_is_retried_when_redis_stumbles(sqlite_url: str, arq: ArqRedis,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    async with transaction(sessions) as s:
        await f.station(s, "ST1")
        await f.talent(s, openid="oT")
    real, calls = batcher.enqueue_many, []

    async def flaky(redis, jobs):
        calls.append(len(jobs))
        if len(calls) == 1:
            raise ConnectionError("Redis went away for a moment")
        return await real(redis, jobs)

    monkeypatch.setattr(batcher, "enqueue_many", flaky)
    b = VisitBatcher(sessions, arq, database_url=sqlite_url)
    try:
        outcome = await b.record(Scan("oT", AT, station_code="ST1"))
    finally:
        await b.close()
        await engine.dispose()
    assert isinstance(outcome, Accepted) and calls == [1, 1]
    assert [(j.function, j.args, j.job_id) for j in await arq.queued_jobs()] == [
        ("apply", outcome.job.args, outcome.job.id)]


async def test_auto_pipeline_sends_scripts_by_sha_and_reloads_them(arq: ArqRedis) -> None:
    """`eval` through the pipeline goes as EVALSHA; after Redis lost its scripts (SCRIPT FLUSH, a restart)
    the same calls still answer (sent again as EVAL, which loads the script), each with its own result."""
    pipe = AutoPipeline(arq)
    script = "return redis.call('incrby', KEYS[1], ARGV[1])"
    assert await asyncio.gather(pipe.eval(script, 1, "n", 2), pipe.eval(script, 1, "n", 3)) == [2, 5]
    await arq.config_resetstat()
    await arq.script_flush()
    results = await asyncio.gather(pipe.eval(script, 1, "n", 10), pipe.get("n"), pipe.eval(script, 1, "n", 100),
                                   pipe.eval("return redis.call('nosuch')", 0), return_exceptions=True)
    # Sent again after the round trip's other commands: the GET saw the value before both scripts ran.
    assert results[:3] == [15, b"5", 115]
    assert "nosuch" in str(results[3]).lower() or "unknown" in str(results[3]).lower()
    assert await pipe.eval(script, 1, "n", 1) == 116
    stats = await arq.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 4  # 3 refused with NOSCRIPT in the round trip, then the last one
    assert stats["cmdstat_eval"]["calls"] == 3  # the refused ones again (one of them an error of its own)


async def test_auto_pipeline_packs_with_hiredis(arq: ArqRedis) -> None:
    """The wrapped client's new connections pack commands with hiredis: the same bytes as redis-py's own
    packing, and the commands (through the pipeline and straight to the client) answer as before."""
    from redis.asyncio.connection import Connection

    from bot.redis_pipe import HiredisPackingConnection, pack_with_hiredis

    pipe = AutoPipeline(arq)
    assert arq.connection_pool.connection_class is HiredisPackingConnection
    assert pack_with_hiredis(arq)  # once is enough; again changes nothing
    args = ("SET", "k", "v" * 300, "EX", 600, "NX", 1.5, b"\x00raw", 7)
    assert b"".join(HiredisPackingConnection().pack_command(*args)) == b"".join(Connection().pack_command(*args))
    await arq.connection_pool.disconnect()  # connections made again pack with hiredis as well
    assert await asyncio.gather(pipe.set("k", "v"), pipe.get("k"), pipe.exists("k")) == [True, b"v", 1]
    assert await arq.get("k") == b"v"
    assert await enqueue_many(pipe, [("apply_visit", (1,), "apply_visit:1")]) == 1
    in_use = [*arq.connection_pool._available_connections, *arq.connection_pool._in_use_connections]
    assert in_use and all(isinstance(c, HiredisPackingConnection) for c in in_use)
