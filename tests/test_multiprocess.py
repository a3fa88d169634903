"""`talenthome run --bots 2 --workers 2` (issue 14): two bot processes share one port (SO_REUSEPORT), two arq
workers share one queue, and nothing in memory is shared: 60 talents scanning 2 stations through the port
end with exactly the points the rules give, on the boards as in the ledger."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from sqlalchemy import func, select

from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import Entry, Visit
from scoring.settings import Settings
from scoring.tokens import station_scene
from talenthome.servers import free_port
from tests import factories as f
from tests.cli import EXE
from tests.test_first_run import _healthy
from tests.wx import WeChatSim


def _listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:port (SO_REUSEPORT gives one per bot process)."""
    count = 0
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port:
                count += 1
    return count


async def test_two_bots_on_one_port_and_two_workers_apply_exactly_once(tmp_path: Path, redis_url: str) -> None:
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path}/city.db"  # empty: `run` migrates it
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "WECHAT_", "BOT_"))}
    env.update(DATABASE_URL=sqlite_url, REDIS_URL=redis_url, BOT_PORT=str(port), VAR_DIR=str(tmp_path / "var"),
               WECHAT_TEMPLATE_NOTICE="tmpl")
    settings = Settings(_env_file=None, database_url=sqlite_url)  # type: ignore[call-arg]
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    proc = await asyncio.create_subprocess_exec(EXE, "run", "--bots", "2", "--workers", "2", cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    sim = WeChatSim(f"http://127.0.0.1:{port}/wechat", settings.wechat_token.get_secret_value(), settings.wechat_appid)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not (await _healthy(port) and _listeners(port) == 2):
            assert proc.returncode is None, (await proc.stderr.read()).decode() if proc.stderr else ""
            assert asyncio.get_running_loop().time() < deadline, "two bots never listened on the port"
            await asyncio.sleep(0.1)
        async with transaction(sessions) as s:
            stations = [await f.station(s, f"MP{i}") for i in range(2)]  # 3 in 30 minutes would be held
            talents = [await f.talent(s, f"QZMP{i:03d}", openid=f"oMP{i:03d}") for i in range(60)]
        # every talent scans every station twice (the second the same day: no credit); in parallel
        scans = []
        for t in talents:
            for st in stations:
                scene = station_scene(settings.scene_key, st.code, time.time(), settings.station_code_rotation_s)
                scans += [sim.scan(t.openid or "", scene), sim.scan(t.openid or "", scene)]
        replies = await asyncio.gather(*scans)
        assert all(r.status == 200 for r in replies)
        expected = len(talents) * len(stations) * 2  # R3: +1 talent and +1 station per credit, once a day
        deadline = asyncio.get_running_loop().time() + 90
        while True:
            async with sessions() as s:
                applied = int(await s.scalar(select(func.count(Entry.id))) or 0)
            if applied >= expected:
                break
            assert asyncio.get_running_loop().time() < deadline, f"{applied} of {expected} entries applied"
            await asyncio.sleep(0.2)
        async with sessions() as s:
            # the second scan of a pair is a WeChat retry (same event, same second) or a second scan that day:
            # neither adds a credited visit
            credited = select(func.count(Visit.id)).where(Visit.status == "accepted")
            assert await s.scalar(credited) == len(talents) * len(stations)
            assert await s.scalar(select(func.coalesce(func.sum(Entry.amount), 0))) == expected
    finally:
        await sim.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0
    async with sessions() as s:  # every process has stopped: whatever ran twice, still exactly the rules' points
        assert await s.scalar(select(func.count(Entry.id))) == expected
    await engine.dispose()
