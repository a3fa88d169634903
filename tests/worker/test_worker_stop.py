"""`talenthome worker` stopped (SIGTERM, as `talenthome run` and systemd stop it) while a job is running: exit 0,
no traceback. (The narrower race, SIGTERM while arq writes a finished job's result, made arq's close() raise
CancelledError out of `talenthome worker`; seen once in the first-run test; the command now ends on one line.)"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy import select

from scoring import outbox
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import Notification
from tests.cli import EXE
from tests.fake_wechat import Reply
from worker import push


async def test_worker_stopped_mid_job_says_one_line(tmp_path: Path, sqlite_url: str, redis_url: str,
                                                    fake_wechat: Any) -> None:
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    async with transaction(sessions) as s:
        await outbox.add(s, "slow-1", "o1", {"text": "一条消息"}, channel="custom")
    fake_wechat.script("token", Reply(delay=20))  # the delivery hangs on WeChat: the job is running
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "WECHAT_"))}
    env.update(DATABASE_URL=sqlite_url, REDIS_URL=redis_url, WECHAT_API_BASE=fake_wechat.base_url,
               WECHAT_APPID=fake_wechat.appid, WECHAT_SECRET=fake_wechat.secret, VAR_DIR=str(tmp_path / "var"))
    proc = await asyncio.create_subprocess_exec(EXE, "worker", cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        async with sessions() as s:
            ids = list((await s.scalars(select(Notification.id))).all())
        await push.kick(pool, ids)
        deadline = asyncio.get_running_loop().time() + 30
        while not await pool.keys("arq:in-progress:notify:*"):  # the delivery job is running
            assert proc.returncode is None, (await proc.communicate())[1].decode()
            assert asyncio.get_running_loop().time() < deadline, "the delivery job never started"
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await pool.aclose()
        await engine.dispose()
    stderr = err.decode()
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 0
