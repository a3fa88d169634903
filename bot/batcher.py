"""Group commit for check-ins, and enqueueing many arq jobs in one round trip.

One SQLite commit per callback caps the bot near 0.8k check-ins/s (SPEC 7). `VisitBatcher` collects the
scans of concurrent callbacks, writes them with `scoring.visits.record_visits` in ONE transaction, then
enqueues all their visit jobs (`apply`) in ONE Redis round trip, and only then answers each waiting
callback: every reply still follows its own durable visit row and its queued job.

- A batch is whatever arrived while the previous one was being written (up to `max_batch`). Under light
  load a scan is written alone at once; under heavy load batches grow by themselves, so there is no
  fixed delay to tune. Batches are written one at a time (one writer); the enqueue of a written batch
  overlaps with writing the next.
- On SQLite a batch runs in one hop to a dedicated database thread, on a plain (pysqlite) connection to
  the same file with the same pragmas: a dozen statements cost one thread switch instead of two each,
  which is what the async driver would take. On PostgreSQL the batch runs on the app's async engine.
- One bad scan does not fail its batch: when the batch transaction fails, its scans are retried one
  transaction each and only the failing one gets the error.
- If Redis refuses the jobs after the commit (three tries), the visits stay recorded and the worker's
  sweeper re-enqueues unapplied visits (SPEC 4); the talent's reply is unchanged.
- Several bot processes may each run a batcher: the database's UNIQUE credit key decides between them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from arq.constants import default_queue_name, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from bot.webhook import unavailable
from scoring.db import make_engine, transaction
from scoring.facts.common import APPLY
from scoring.visits import Accepted, Outcome, Scan, record_visits, record_visits_sync

log = logging.getLogger(__name__)

# arq's enqueue_job semantics for many jobs at once: a job whose id is queued, running or has a result
# is not enqueued again. KEYS: queue, then (job key, result key) per job; ARGV: expires_ms, score, then
# (job id, payload) per job.
_ENQUEUE_MANY = """
local n = 0
for i = 0, (#KEYS - 1) / 2 - 1 do
  local job_key, result_key = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  if redis.call('exists', job_key, result_key) == 0 then
    redis.call('psetex', job_key, ARGV[1], ARGV[4 + 2 * i])
    redis.call('zadd', KEYS[1], ARGV[2], ARGV[3 + 2 * i])
    n = n + 1
  end
end
return n
"""

Batch = list[tuple[Scan, "asyncio.Future[Outcome]"]]
ENQUEUE_BACKOFF_S = (0.05, 0.2, 0.0)  # three tries; the last one's delay is unused


async def enqueue_many(arq: Any, jobs: Sequence[tuple[str, tuple[Any, ...], str]]) -> int:
    """Enqueue (function, args, job_id) jobs in one round trip; returns how many were new."""
    if not jobs:
        return 0
    now = timestamp_ms()
    keys: list[str] = [getattr(arq, "default_queue_name", default_queue_name)]
    argv: list[Any] = [getattr(arq, "expires_extra_ms", 86_400_000), now]
    serializer = getattr(arq, "job_serializer", None)
    for function, args, job_id in jobs:
        keys += [job_key_prefix + job_id, result_key_prefix + job_id]
        argv += [job_id, serialize_job(function, args, {}, None, now, serializer=serializer)]
    return int(await arq.eval(_ENQUEUE_MANY, len(keys), *keys, *argv))


def sqlite_sync_sessions(database_url: str) -> sessionmaker[Session] | None:
    """A synchronous sessionmaker on the same SQLite file (None for other databases), from the one engine
    factory (scoring.db.make_engine: the same pragmas and BEGIN IMMEDIATE), for the batcher's own thread."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    engine = make_engine(url, sync=True, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=1,
                         max_overflow=0)
    return sessionmaker(engine, expire_on_commit=False)


class VisitBatcher:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], arq: Any, *, database_url: str | None = None,
                 max_batch: int = 256):
        """`arq`: the arq pool, or the bot's AutoPipeline around it (bot/redis_pipe.py), so that the jobs'
        one Lua call shares its round trip with the callbacks' own Redis commands."""
        self.sessions = sessions
        self.arq = arq
        self.max_batch = max_batch
        self._sync = sqlite_sync_sessions(database_url) if database_url else None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="visits-db") if self._sync is not None else None
        self._pending: Batch = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Task[None]] = set()
        self._closing = False
        self.batches = 0  # statistics for the tests, the benchmark and the logs
        self.scans = 0

    async def record(self, scan: Scan) -> Outcome:
        """Record one scan with the next batch; returns when it is committed and its job enqueued."""
        if self._closing:
            raise RuntimeError("the visit batcher is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((scan, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Write what is pending (a batch being written is finished, not cut), finish the enqueues, stop."""
        self._closing = True
        if self._task is not None and not self._task.done():
            self._wakeup.set()
            await self._task
        while self._pending:
            await self._flush(self._take())
        self._task = None
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._sync is not None:
            bind = self._sync.kw.get("bind")
            if bind is not None:
                bind.dispose()

    def _take(self) -> Batch:
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        return batch

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._flush(self._take())
            if self._closing:
                return

    async def _flush(self, batch: Batch) -> None:
        """Write the batch (one transaction); its enqueue and answers go on while the next is written."""
        scans = [scan for scan, _ in batch]
        try:
            outcomes: list[Outcome | BaseException] = list(await self._write(scans))
        except Exception as err:
            if unavailable(err):  # the database is down: one by one would fail alike (the replies say busy)
                log.warning("recording %d scans failed, the database is unavailable: %s", len(batch),
                            type(err).__name__)
                outcomes = [err] * len(batch)
            elif len(batch) == 1:
                log.exception("recording a scan failed: openid=%s", scans[0].openid)
                outcomes = [err]
            else:
                log.exception("a batch of %d scans failed; writing them one by one", len(batch))
                outcomes = [await self._one(scan) for scan in scans]
        self.batches += 1
        self.scans += len(batch)
        task = asyncio.ensure_future(self._finish(batch, outcomes))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _write(self, scans: list[Scan]) -> list[Outcome]:
        if self._thread is not None:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._write_sync, scans)
        async with transaction(self.sessions) as session:
            return await record_visits(session, scans)

    def _write_sync(self, scans: list[Scan]) -> list[Outcome]:
        assert self._sync is not None
        with self._sync() as session, session.begin():
            return record_visits_sync(session, scans)

    async def _one(self, scan: Scan) -> Outcome | BaseException:
        try:
            return (await self._write([scan]))[0]
        except Exception as err:
            if unavailable(err):
                log.warning("recording a scan failed, the database is unavailable: openid=%s: %s", scan.openid,
                            type(err).__name__)
            else:
                log.exception("recording a scan failed: openid=%s", scan.openid)
            return err

    async def _finish(self, batch: Batch, outcomes: list[Outcome | BaseException]) -> None:
        jobs = [(APPLY, o.job.args, o.job.id) for o in outcomes if isinstance(o, Accepted)]
        for attempt, backoff in enumerate(ENQUEUE_BACKOFF_S):
            try:
                await enqueue_many(self.arq, jobs)  # safe to repeat: an enqueued job id is skipped
                break
            except Exception:
                if attempt == len(ENQUEUE_BACKOFF_S) - 1:
                    log.exception("could not enqueue %d visit jobs; the sweeper will", len(jobs))
                else:
                    await asyncio.sleep(backoff)  # a busy or restarting Redis: try again shortly
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
