"""`talenthome run --bots 2 --workers N` (issue 14): two bot processes share one port (SO_REUSEPORT), workers
share one queue, and nothing in memory is shared. Under the kill test's load (a worker SIGKILLed while the
check-ins arrive, a new one started), 60 talents scanning 3 stations through the port end with exactly the
points the rules give, and every push (the operators' rank-change notices) goes out once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import func, select

from scoring import notify
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import Entry, Notification, Staff, Visit
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


async def _until(check, what: str, within: float) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.2)


async def test_two_bots_on_one_port_and_workers_killed_apply_and_push_exactly_once(
        tmp_path: Path, redis_url: str, fake_wechat) -> None:  # type: ignore[no-untyped-def]
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path}/city.db"  # empty: `run` migrates it
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "WECHAT_", "BOT_"))}
    env.update(DATABASE_URL=sqlite_url, REDIS_URL=redis_url, BOT_PORT=str(port), VAR_DIR=str(tmp_path / "var"),
               WECHAT_TEMPLATE_NOTICE="tmpl", WECHAT_API_BASE=fake_wechat.base_url)
    settings = Settings(_env_file=None, database_url=sqlite_url)  # type: ignore[call-arg]
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    redis = Redis.from_url(redis_url)
    proc = await asyncio.create_subprocess_exec(EXE, "run", "--bots", "2", "--workers", "1", cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    extra: list[asyncio.subprocess.Process] = []  # the second worker: killed mid-load, then replaced

    async def second_worker() -> asyncio.subprocess.Process:
        w = await asyncio.create_subprocess_exec(EXE, "worker", cwd=tmp_path, env=env,
                                                 stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.DEVNULL)
        extra.append(w)
        return w

    sim = WeChatSim(f"http://127.0.0.1:{port}/wechat", settings.wechat_token.get_secret_value(), settings.wechat_appid)
    try:
        async def listening() -> bool:
            assert proc.returncode is None, (await proc.stderr.read()).decode() if proc.stderr else ""
            return await _healthy(port) and _listeners(port) == 2

        await _until(listening, "two bots never listened on the port", 60)
        async with transaction(sessions) as s:
            stations = [await f.station(s, f"MP{i}") for i in range(3)]  # 3 in 30 minutes would be held
            talents = [await f.talent(s, f"QZMP{i:03d}", openid=f"oMP{i:03d}") for i in range(60)]
            s.add_all([Staff(openid=f"o-op-{st.code}", role="operator", station_id=st.id) for st in stations])
        await notify.check_ranks(sessions, redis)  # the month's baseline: nobody has points yet
        victim = await second_worker()
        # every talent scans two of the stations twice (the second the same day: no credit); in parallel
        scans = []
        for k, t in enumerate(talents):
            for st in (stations[k % 3], stations[(k + 1 + k // 30) % 3]):
                scene = station_scene(settings.scene_key, st.code, time.time(), settings.station_code_rotation_s)
                scans.append((t.openid or "", scene))
        half = len(scans) // 2
        first = [r for a, b in scans[:half] for r in await asyncio.gather(sim.scan(a, b), sim.scan(a, b))]
        victim.kill()  # SIGKILL while the first half's jobs are being applied
        await victim.wait()
        await second_worker()
        second = await asyncio.gather(*(sim.scan(a, b) for a, b in scans[half:] for _ in range(2)))
        assert all(r.status == 200 for r in first + list(second))
        expected = len(scans) * 2  # R3: +1 talent and +1 station per credit, once a day

        async def applied() -> bool:
            async with sessions() as s:
                return int(await s.scalar(select(func.count(Entry.id))) or 0) >= expected

        await _until(applied, "not every check-in was applied", 120)
        async with sessions() as s:
            # the second scan of a pair is a WeChat retry (same event, same second) or a second scan that day:
            # neither adds a credited visit
            credited = select(func.count(Visit.id)).where(Visit.status == "accepted")
            assert await s.scalar(credited) == len(scans)
            assert await s.scalar(select(func.coalesce(func.sum(Entry.amount), 0))) == expected

        async def told_and_delivered() -> bool:
            await notify.check_ranks(sessions, redis)  # as the cron would, a minute later
            async with sessions() as s:
                told = await s.scalar(select(func.count()).select_from(Notification)) or 0
                pending = await s.scalar(select(func.count()).select_from(Notification).where(
                    Notification.status == "pending"))
            return told > 0 and pending == 0

        await _until(told_and_delivered, "the rank changes were not all told", 90)
        async with sessions() as s:
            sent = (await s.scalars(select(Notification.key).where(Notification.status == "sent"))).all()
        assert sent and all(k.startswith("rank:") for k in sent)
        messages = [(r.json["touser"], str(r.json.get("data") or r.json.get("text")))
                    for r in fake_wechat.delivered("template") + fake_wechat.delivered("custom")]
        assert len(messages) == len(sent) == len(set(messages))  # each push once, whatever ran twice
    finally:
        await sim.close()
        for w in extra:
            if w.returncode is None:
                w.send_signal(signal.SIGINT)
                await w.wait()
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await redis.aclose()
    assert proc.returncode == 0
    async with sessions() as s:  # every process has stopped: whatever ran twice, still exactly the rules' points
        assert await s.scalar(select(func.count(Entry.id))) == expected
    await engine.dispose()
