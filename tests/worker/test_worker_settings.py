"""`arq worker.settings.WorkerSettings` starts a working worker, as arq's users expect: a real `arq` process,
its configuration from the environment (scoring.settings.Settings, read in on_startup), the functions and cron
jobs written out in worker/settings.py. A visit recorded and enqueued as the bot does is applied by it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy import func, select

from scoring import visits
from scoring.clock import utcnow
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts.common import APPLY
from scoring.models import Entry
from scoring.visits import Accepted, Scan, Source
from tests import factories as f
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
ARQ = str(Path(sys.executable).with_name("arq"))


def test_the_settings_class_is_arqs() -> None:
    names = [fn.__name__ for fn in WorkerSettings.functions]
    assert names[0] == "apply" and "deliver_notification" in names and len(names) == len(set(names))
    assert {c.name for c in WorkerSettings.cron_jobs} >= {"tasks:sweep", "tasks:ranks", "push:sweep_outbox",
                                                          "calendar:month_close"}
    assert str(WorkerSettings.timezone) == "Asia/Shanghai"
    assert "ctx" not in vars(WorkerSettings)  # a shared dict would leak one worker's state into the next


async def test_arq_worker_settings_runs_a_real_worker(sqlite_url: str, redis_url: str, tmp_path: Path,
                                                      fake_wechat: Any) -> None:
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    async with transaction(sessions) as s:
        st = await f.station(s, "ARQ1")
        await f.talent(s, "QZARQ", openid="oArq")
        outcome = await visits.record_visit(s, Scan(openid="oArq", at=utcnow(), station_id=st.id,
                                                    source=Source.OPERATOR))
    assert isinstance(outcome, Accepted)
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    await pool.enqueue_job(APPLY, *outcome.job.args, _job_id=outcome.job.id)  # what the bot does
    await pool.aclose()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "WECHAT_"))}
    env.update(DATABASE_URL=sqlite_url, REDIS_URL=redis_url, WECHAT_API_BASE=fake_wechat.base_url,
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    log = tmp_path / "arq.log"
    out = os.open(log, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        proc = await asyncio.create_subprocess_exec(ARQ, "worker.settings.WorkerSettings", cwd=str(tmp_path),
                                                    env=env, stdout=out, stderr=out)
    finally:
        os.close(out)
    try:
        deadline = time.monotonic() + 60
        while True:
            async with sessions() as s:
                entries = await s.scalar(select(func.count()).select_from(Entry).where(
                    Entry.fact_kind == "visit", Entry.fact_id == outcome.visit.id))
            if entries == 2:
                break
            assert proc.returncode is None, log.read_text()
            assert time.monotonic() < deadline, "the visit was not applied: " + log.read_text()
            await asyncio.sleep(0.1)  # polling the database, with a deadline
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await engine.dispose()
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "Starting worker for" in text and "apply" in text and "Traceback" not in text
    assert f"{outcome.job.id}:apply" in text  # arq's own log line of the job
