"""Group commit for check-ins, and enqueueing many arq jobs in one round trip.

One SQLite commit per callback caps the bot near 0.8k check-ins/s (SPEC 7). `VisitBatcher` collects the
scans of concurrent callbacks, writes them with `scoring.visits.record_visits` in ONE transaction, then
enqueues all their `apply_visit` jobs in ONE Redis round trip, and only then answers each waiting
callback: every reply still follows its own durable visit row and its queued job.

- A batch is whatever arrived while the previous one was being written (up to `max_batch`), after an
  optional `linger_s`. Under light load a scan is written alone at once; under heavy load batches grow
  by themselves, so there is no fixed delay to tune.
- One bad scan does not fail its batch: when the batch transaction fails, its scans are retried one
  transaction each and only the failing one gets the error.
- If Redis refuses the jobs after the commit, the visits stay recorded and the worker's sweeper
  re-enqueues unapplied visits (SPEC 4); the talent's reply is unchanged.
- Several bot processes may each run a batcher: the database's UNIQUE credit key decides between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from arq.constants import default_queue_name, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring.db import transaction
from scoring.visits import Accepted, Outcome, Scan, record_visits

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


class VisitBatcher:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], arq: Any, *, max_batch: int = 256,
                 linger_s: float = 0.0):
        self.sessions = sessions
        self.arq = arq
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._pending: list[tuple[Scan, asyncio.Future[Outcome]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # statistics for the benchmark and the logs
        self.scans = 0

    async def record(self, scan: Scan) -> Outcome:
        """Record one scan with the next batch; returns when it is committed and its job enqueued."""
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((scan, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Write what is pending, then stop."""
        if self._task is not None:
            while self._pending:
                await self._flush(self._take())
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _take(self) -> list[tuple[Scan, asyncio.Future[Outcome]]]:
        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        return batch

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # A design delay, not synchronisation: let callbacks already on their way join this batch.
            await asyncio.sleep(self.linger_s)
            while self._pending:
                await self._flush(self._take())

    async def _flush(self, batch: list[tuple[Scan, asyncio.Future[Outcome]]]) -> None:
        try:
            async with transaction(self.sessions) as session:
                outcomes: list[Outcome | BaseException] = list(
                    await record_visits(session, [scan for scan, _ in batch]))
        except Exception as err:
            if len(batch) == 1:
                log.exception("recording a scan failed: openid=%s", batch[0][0].openid)
                outcomes = [err]
            else:
                log.exception("a batch of %d scans failed; writing them one by one", len(batch))
                outcomes = [await self._one(scan) for scan, _ in batch]
        jobs = [("apply_visit", (o.visit.id,), o.job_id) for o in outcomes if isinstance(o, Accepted)]
        try:
            await enqueue_many(self.arq, jobs)
        except Exception:
            log.exception("could not enqueue %d apply_visit jobs; the sweeper will", len(jobs))
        self.batches += 1
        self.scans += len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _one(self, scan: Scan) -> Outcome | BaseException:
        try:
            async with transaction(self.sessions) as session:
                return (await record_visits(session, [scan]))[0]
        except Exception as err:
            log.exception("recording a scan failed: openid=%s", scan.openid)
            return err
