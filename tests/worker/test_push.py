"""Outbox delivery and station QR codes: real Redis, both databases, the fake WeChat API on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import kiosk, outbox
from scoring.clock import utcnow
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import Notification
from scoring.settings import Settings
from scoring.tokens import station_scene
from tests import factories as f
from tests.fake_wechat import FakeWeChat, Reply
from worker import push
from worker.wechat_api import SHOW_QR_URL, WeChatClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def settings(fake_wechat: FakeWeChat) -> Settings:
    return Settings(_env_file=None, wechat_api_base=fake_wechat.base_url, wechat_appid=fake_wechat.appid,
                    wechat_secret=fake_wechat.secret, wechat_templates={"rank": "TMPL-RANK"},
                    wechat_template_notice="")


@pytest.fixture
async def make_client(redis: aioredis.Redis, settings: Settings) -> AsyncIterator[Callable[..., WeChatClient]]:
    clients: list[WeChatClient] = []

    def make(**kwargs: Any) -> WeChatClient:
        opts: dict[str, Any] = {"timeout": 0.3, "connect_timeout": 0.3, "backoff": 0.01, "backoff_cap": 0.05}
        opts.update(kwargs)
        client = WeChatClient.from_settings(settings, redis, **opts)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: Callable[..., WeChatClient]) -> WeChatClient:
    return make_client()


@pytest.fixture
async def arq_redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    yield pool
    await pool.aclose()


@pytest.fixture
async def sqlite_sessions(sqlite_url: str) -> AsyncIterator[Sessions]:
    engine = make_engine(sqlite_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def add(sessions: Sessions, key: str, openid: str = "o1", channel: str = "template", **payload: Any) -> int:
    async with transaction(sessions) as s:
        assert await outbox.add(s, key, openid, payload or {"text": f"消息 {key}"}, channel=channel)
        return int(await s.scalar(select(Notification.id).where(Notification.key == key)))


async def row(sessions: Sessions, nid: int) -> Notification:
    async with sessions() as s:
        n = await s.get(Notification, nid)
        assert n is not None
        return n


async def make_due(sessions: Sessions, nid: int) -> None:
    """Let the clock pass: the row's next attempt is due now."""
    async with transaction(sessions) as s:
        await s.execute(update(Notification).where(Notification.id == nid)
                        .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


async def run_worker(redis_url: str, sessions: Sessions, settings: Settings) -> Worker:
    """An arq worker in burst mode with the push area (startup creates the client, shutdown closes it)."""
    worker = Worker(functions=push.FUNCTIONS, redis_settings=RedisSettings.from_dsn(redis_url), burst=True,
                    handle_signals=False, poll_delay=0.05, on_startup=push.startup, on_shutdown=push.shutdown,
                    ctx={"settings": settings, "sessions": sessions})
    await asyncio.wait_for(worker.main(), 20)
    with warnings.catch_warnings():  # arq 0.28 closes its pool with redis' deprecated close()
        warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
        await worker.close()
    return worker


# -- delivery ----------------------------------------------------------------------------------------


async def test_template_message_is_sent_once(sessions, client, settings, fake_wechat):
    nid = await add(sessions, "rank:S1:2026-11:top3", "op1", template="rank", text="进入前三",
                    data={"keyword1": "第2名"}, url="https://example.org/board")
    assert await push.deliver(sessions, client, settings, nid) == "sent"
    assert await push.deliver(sessions, client, settings, nid) == "skipped"
    (req,) = fake_wechat.calls("template")
    assert req.json == {"touser": "op1", "template_id": "TMPL-RANK", "url": "https://example.org/board",
                        "data": {"keyword1": {"value": "第2名"}}}
    n = await row(sessions, nid)
    assert (n.status, n.attempts, n.last_error) == ("sent", 1, None) and n.sent_at is not None


async def test_template_without_its_own_id_uses_the_notice_template(sqlite_sessions, client, settings, fake_wechat):
    settings = settings.model_copy(update={"wechat_template_notice": "TMPL-NOTICE"})
    nid = await add(sqlite_sessions, "month:S1:2026-11", "op1", template="month_report", text="十一月报告")
    assert await push.deliver(sqlite_sessions, client, settings, nid) == "sent"
    (req,) = fake_wechat.calls("template")
    assert req.json["template_id"] == "TMPL-NOTICE" and req.json["data"] == {"content": {"value": "十一月报告"}}


async def test_no_template_configured_falls_back_to_customer_service_text(sqlite_sessions, client, settings,
                                                                          fake_wechat):
    fake_wechat.silent.add("o-quiet")
    inside = await add(sqlite_sessions, "plan:S1:2026-12", "o-active", template="plan", text="请发布下月活动")
    outside = await add(sqlite_sessions, "plan:S2:2026-12", "o-quiet", template="plan", text="请发布下月活动")
    assert await push.deliver(sqlite_sessions, client, settings, inside) == "sent"
    assert await push.deliver(sqlite_sessions, client, settings, outside) == "given_up"
    assert [r.json["touser"] for r in fake_wechat.delivered("custom")] == ["o-active"]
    n = await row(sqlite_sessions, outside)
    assert n.status == "given_up"
    assert "no template configured for 'plan'" in n.last_error and "45015" in n.last_error


async def test_failures_then_recovery_deliver_each_notification_exactly_once(sqlite_sessions, client, settings,
                                                                             fake_wechat):
    sessions = sqlite_sessions
    fake_wechat.script("template", 45009, Reply(status=500), Reply(delay=0.6), 40001)
    fake_wechat.script("custom", Reply(status=502), 45009, Reply(delay=0.6))
    ids = [await add(sessions, f"t{i}", f"o{i}", template="rank", text="t", data={"k": i}) for i in range(3)]
    ids += [await add(sessions, f"c{i}", f"o{i + 3}", channel="custom", text="请评分") for i in range(3)]
    results = await asyncio.gather(*(push.deliver(sessions, client, settings, nid) for nid in ids))
    assert results == ["sent"] * 6
    assert sorted(r.json["touser"] for r in fake_wechat.delivered()) == [f"o{i}" for i in range(6)]
    assert fake_wechat.tokens_issued == 2  # the first token, one refresh after the 40001
    assert {(n.status, n.attempts) for n in [await row(sessions, nid) for nid in ids]} == {("sent", 1)}


async def test_retry_is_rescheduled_then_swept_and_delivered(sessions, make_client, settings, fake_wechat,
                                                             arq_redis, redis_url):
    fake_wechat.script("template", Reply(status=500))
    nid = await add(sessions, "k1", "op1", template="rank", text="t")
    now = utcnow()
    assert await push.deliver(sessions, make_client(retries=0), settings, nid, now=now) == "retry"
    n = await row(sessions, nid)
    assert (n.status, n.attempts) == ("pending", 1) and "HTTP 500" in n.last_error
    assert n.next_attempt_at >= now + timedelta(seconds=push.RETRY_BASE_S)
    assert await push.due(sessions, utcnow()) == []
    assert await push.deliver(sessions, make_client(), settings, nid) == "skipped"  # not due yet

    await make_due(sessions, nid)
    assert await push.sweep_outbox({"redis": arq_redis, "sessions": sessions}) == 1
    assert await push.sweep_outbox({"redis": arq_redis, "sessions": sessions}) == 0  # same attempt: one job
    await run_worker(redis_url, sessions, settings)
    n = await row(sessions, nid)
    assert (n.status, n.attempts) == ("sent", 2)
    assert len(fake_wechat.delivered("template")) == 1


async def test_permanent_refusals_are_given_up_with_a_reason(sessions, client, settings, fake_wechat):
    cases = [("template", 43004), ("custom", 45015), ("custom", 45047)]
    ids = []
    for i, (channel, errcode) in enumerate(cases):
        fake_wechat.script(channel, errcode)
        ids.append(await add(sessions, f"k{i}", f"o{i}", channel=channel, template="rank", text="t"))
        assert await push.deliver(sessions, client, settings, ids[-1]) == "given_up"
    for nid, (_, errcode) in zip(ids, cases, strict=True):
        await make_due(sessions, nid)
        assert await push.deliver(sessions, client, settings, nid) == "skipped"
        n = await row(sessions, nid)
        assert n.status == "given_up" and f"({errcode})" in n.last_error and n.attempts == 1
    assert await push.due(sessions, utcnow()) == []
    assert len(fake_wechat.calls("template")) == 1 and len(fake_wechat.calls("custom")) == 2
    assert fake_wechat.delivered() == []


async def test_unreachable_api_reschedules_delivery(sqlite_sessions, settings, redis):
    dead = settings.model_copy(update={"wechat_api_base": "http://127.0.0.1:9/"})
    client = WeChatClient.from_settings(dead, redis)
    try:
        nid = await add(sqlite_sessions, "k1", "o1", template="rank", text="t")
        started = time.monotonic()
        assert await push.deliver(sqlite_sessions, client, dead, nid) == "retry"
        assert time.monotonic() - started < 2
    finally:
        await client.close()
    n = await row(sqlite_sessions, nid)
    assert (n.status, n.attempts) == ("pending", 1) and "cannot connect" in n.last_error


async def test_gives_up_after_max_attempts(sqlite_sessions, make_client, settings, fake_wechat):
    fake_wechat.script("template", Reply(status=500))
    nid = await add(sqlite_sessions, "k1", "o1", template="rank", text="t")
    async with transaction(sqlite_sessions) as s:
        await s.execute(update(Notification).values(attempts=push.MAX_ATTEMPTS - 1))
    assert await push.deliver(sqlite_sessions, make_client(retries=0), settings, nid) == "given_up"
    n = await row(sqlite_sessions, nid)
    assert n.status == "given_up" and n.last_error.startswith(f"gave up after {push.MAX_ATTEMPTS} attempts: HTTP 500")


async def test_concurrent_deliveries_of_one_notification_send_once(sessions, make_client, settings, fake_wechat):
    fake_wechat.script("template", Reply(delay=0.2))
    nid = await add(sessions, "k1", "o1", template="rank", text="t")
    clients = [make_client(), make_client()]
    results = await asyncio.gather(*(push.deliver(sessions, clients[i % 2], settings, nid) for i in range(6)))
    assert sorted(results) == ["sent"] + ["skipped"] * 5
    assert len(fake_wechat.calls("template")) == 1


async def test_interrupted_attempt_is_given_up_not_resent(sessions, client, settings, fake_wechat):
    nid = await add(sessions, "k1", "o1", template="rank", text="t")
    now = utcnow()
    claim = await push.claim(sessions, nid, now)  # ... and the worker dies before it records anything
    assert isinstance(claim, push.Claim)
    assert await push.deliver(sessions, client, settings, nid, now=now) == "skipped"  # leased
    later = now + push.LEASE + timedelta(seconds=1)
    assert [i for i, _ in await push.due(sessions, later)] == [nid]
    assert await push.deliver(sessions, client, settings, nid, now=later) == "given_up"
    n = await row(sessions, nid)
    assert n.status == "given_up" and n.last_error.startswith("outcome unknown, not resent")
    assert fake_wechat.calls("template") == [] and fake_wechat.calls("custom") == []  # (a token: before claims)
    # A worker that was only slow, not dead, still records that its message went out.
    assert await push.record(sessions, claim, push.Sent({}), later) == "sent"
    assert (await row(sessions, nid)).status == "sent"


async def test_kick_and_sweep_enqueue_and_a_worker_delivers(sessions, settings, fake_wechat, arq_redis, redis_url):
    ids = [await add(sessions, f"k{i}", f"o{i}", template="rank", text="t") for i in range(3)]
    await push.kick({"redis": arq_redis}, ids[:1])
    await push.kick(arq_redis, ids[:1])  # the same job id: not queued twice
    assert await arq_redis.zcard("arq:queue") == 1
    assert await push.sweep_outbox({"redis": arq_redis, "sessions": sessions}) == 3
    await run_worker(redis_url, sessions, settings)
    assert sorted(r.json["touser"] for r in fake_wechat.delivered()) == ["o0", "o1", "o2"]
    assert {(await row(sessions, nid)).status for nid in ids} == {"sent"}
    assert await push.due(sessions, utcnow()) == []


def test_cron_schedule():
    sweep, qr = push.CRON
    assert sweep.second == {0, 10, 20, 30, 40, 50} and sweep.minute is None
    assert qr.second == {15} and qr.minute is None
    assert [fn.__name__ for fn in push.FUNCTIONS] == ["deliver_notification", "deliver_notifications",
                                                      "issue_station_qr"]


CHILD = """
import asyncio, json, sys
from arq.connections import RedisSettings
from arq.worker import Worker
from scoring.db import make_engine, make_sessionmaker
from scoring.settings import Settings
from worker import push

redis_url, db_url, base, appid, secret = sys.argv[1:6]

async def startup(ctx):
    ctx["settings"] = Settings(wechat_api_base=base, wechat_appid=appid, wechat_secret=secret,
                               wechat_templates={"rank": "TMPL-RANK"})
    ctx["engine"] = make_engine(db_url)
    ctx["sessions"] = make_sessionmaker(ctx["engine"])
    await push.startup(ctx)
    await ctx["redis"].incr("test:ready")
    deadline = asyncio.get_running_loop().time() + 30
    while not await ctx["redis"].get("test:go"):  # both workers start on a full queue together
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)

async def shutdown(ctx):
    await push.shutdown(ctx)
    await ctx["engine"].dispose()

async def main():
    w = Worker(functions=push.FUNCTIONS, redis_settings=RedisSettings.from_dsn(redis_url), burst=True,
               handle_signals=False, poll_delay=0.05, max_jobs=10, on_startup=startup, on_shutdown=shutdown)
    await w.main()
    await w.close()
    print(json.dumps({"complete": w.jobs_complete, "failed": w.jobs_failed}))

asyncio.run(main())
"""


async def test_two_worker_processes_push_each_notification_once(pg_url, fake_wechat, arq_redis, redis_url):
    """Two real arq worker processes on one queue and one PostgreSQL database (the multi-process setup):
    every notification is pushed once, and the two share one access token."""
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    fake_wechat.script("token", Reply(delay=0.2))
    fake_wechat.script("template", *[Reply(delay=0.05)] * 20)
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, redis_url, pg_url, fake_wechat.base_url, fake_wechat.appid, fake_wechat.secret,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE) for _ in range(2)]
    try:
        ids = [await add(sessions, f"k{i}", f"o{i}", template="rank", text="t") for i in range(20)]
        for i in range(0, 20, 5):  # four batch jobs, as four rank checks kick them
            await push.kick(arq_redis, ids[i:i + 5])
        assert await push.sweep_outbox({"redis": arq_redis, "sessions": sessions}) == 20  # a fifth: all again
        deadline = time.monotonic() + 30
        while int(await arq_redis.get("test:ready") or 0) < 2:
            assert time.monotonic() < deadline, "the worker processes did not start"
            await asyncio.sleep(0.02)
        await arq_redis.set("test:go", 1)
        outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 40)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    assert [p.returncode for p in procs] == [0, 0]
    stats = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outs]
    assert sum(s["complete"] for s in stats) == 5 and all(s["failed"] == 0 for s in stats)
    assert sorted(r.json["touser"] for r in fake_wechat.delivered()) == sorted(f"o{i}" for i in range(20))
    assert fake_wechat.tokens_issued == 1 and len(fake_wechat.calls("token")) == 1
    assert {(await row(sessions, nid)).status for nid in ids} == {"sent"}
    await engine.dispose()


# -- station QR codes --------------------------------------------------------------------------------


async def stations(sessions: Sessions, *codes: str, delisted: tuple[str, ...] = ()) -> None:
    async with transaction(sessions) as s:
        for code in codes:
            await f.station(s, code)
        for code in delisted:
            await f.station(s, code, status="delisted")


async def open_kiosks(redis, *codes: str, at: float | None = None) -> None:
    for code in codes:
        await kiosk.ask(redis, code, at)


async def test_qr_codes_only_for_open_kiosks_and_asked_stations(sqlite_sessions, redis, client, settings,
                                                               fake_wechat):
    """10,000 stations x 288 windows a day is beyond WeChat's quota: tickets only where a kiosk is open."""
    await stations(sqlite_sessions, "KA", "KB", "KC", "KD")
    now = time.time()
    assert await push.issue_qrs(redis, sqlite_sessions, client, settings, now=now) == {"issued": 0, "skipped": 0,
                                                                                     "failed": 0}
    await open_kiosks(redis, "KA", at=now - 5)  # its kiosk page polled just now
    await open_kiosks(redis, "KB", at=now - kiosk.OPEN_FOR_S - 1)  # a kiosk closed long ago
    assert await push.issue_qrs(redis, sqlite_sessions, client, settings, now=now) == {"issued": 2, "skipped": 0,
                                                                                     "failed": 0}
    assert {r.json["action_info"]["scene"]["scene_str"].split(":")[1] for r in fake_wechat.calls("qr")} == {"KA"}
    assert await push.current_qr(redis, "KB", now=now) is None
    assert await kiosk.open_codes(redis, now) == {"KA"}  # the stale mark is gone
    # An explicit ask (talenthome qr station, the kiosk's first poll's job) issues that one station.
    assert (await push.issue_station_qr({"redis": redis, "sessions": sqlite_sessions, "wechat": client,
                                         "settings": settings}, "KC"))["issued"] == 2
    assert (await push.current_qr(redis, "KC"))["scene"].startswith("st:KC:")
    assert await push.current_qr(redis, "KD") is None


async def test_qr_codes_issued_per_active_station_per_window_once(sqlite_sessions, redis, client, settings,
                                                                  fake_wechat):
    sessions = sqlite_sessions
    await stations(sessions, "QA", "QB", delisted=("QX",))
    await open_kiosks(redis, "QA", "QB", "QX")
    rot = settings.station_code_rotation_s
    now = time.time()
    w = int(now) // rot
    assert await push.issue_qrs(redis, sessions, client, settings, now=now) == {"issued": 4, "skipped": 0,
                                                                              "failed": 0}
    sent = fake_wechat.calls("qr")
    assert {r.json["action_info"]["scene"]["scene_str"] for r in sent} == {
        station_scene(settings.scene_key, code, win * rot, rot) for code in ("QA", "QB") for win in (w, w + 1)}
    assert {r.json["expire_seconds"] for r in sent} == {2 * rot}

    qa = await push.current_qr(redis, "QA", now=now)
    assert qa is not None and qa["window"] == w and qa["scene"] == station_scene(settings.scene_key, "QA", now, rot)
    assert qa["url"].startswith(SHOW_QR_URL) and qa["ticket"] and qa["valid_until"] == (w + 1) * rot
    assert await push.current_qr(redis, "QX", now=now) is None
    assert await push.current_qr(redis, "NOPE", now=now) is None

    # Again in the same window: nothing new.
    assert await push.issue_qrs(redis, sessions, client, settings, now=now) == {"issued": 0, "skipped": 4,
                                                                              "failed": 0}
    assert len(fake_wechat.calls("qr")) == 4

    # The next window: already issued ahead, readable before the cron promotes it; only w + 2 is new.
    nxt = now + rot
    assert (await push.current_qr(redis, "QA", now=nxt))["window"] == w + 1
    assert await push.issue_qrs(redis, sessions, client, settings, now=nxt) == {"issued": 2, "skipped": 2,
                                                                              "failed": 0}
    assert json.loads(await redis.get("th:qr:QA"))["window"] == w + 1
    assert (await push.current_qr(redis, "QB", now=nxt))["scene"] == station_scene(settings.scene_key, "QB", nxt, rot)
    assert len(fake_wechat.calls("qr")) == 6


async def test_qr_failures_are_retried_next_run(sqlite_sessions, redis, client, settings, fake_wechat):
    await stations(sqlite_sessions, "QA", "QB")
    await open_kiosks(redis, "QA", "QB")
    fake_wechat.script("qr", 45009, Reply(status=500))
    now = time.time()
    first = await push.issue_qrs(redis, sqlite_sessions, client, settings, now=now, concurrency=1)
    assert first == {"issued": 2, "skipped": 0, "failed": 2}
    assert await push.issue_qrs(redis, sqlite_sessions, client, settings, now=now) == {"issued": 2, "skipped": 2,
                                                                                     "failed": 0}
    for code in ("QA", "QB"):
        assert (await push.current_qr(redis, code, now=now))["window"] == int(now) // settings.station_code_rotation_s


async def test_qr_issuing_respects_the_concurrency_cap(sqlite_sessions, redis, client, settings, fake_wechat):
    codes = [f"Q{i:03d}" for i in range(30)]
    await stations(sqlite_sessions, *codes)
    await open_kiosks(redis, *codes)
    fake_wechat.script("qr", *[Reply(delay=0.02)] * 60)
    result = await push.issue_qrs(redis, sqlite_sessions, client, settings, concurrency=4)
    assert result == {"issued": 60, "skipped": 0, "failed": 0}
    assert fake_wechat.max_inflight["/cgi-bin/qrcode/create"] == 4


async def test_qr_cron_fails_soft_when_wechat_is_unreachable(sqlite_sessions, redis, settings, caplog, monkeypatch):
    monkeypatch.setattr(push, "_throttled", push._Throttled())
    await stations(sqlite_sessions, *[f"Q{i:03d}" for i in range(100)])
    await open_kiosks(redis, *[f"Q{i:03d}" for i in range(100)])
    dead = settings.model_copy(update={"wechat_api_base": "http://127.0.0.1:9/"})
    ctx = {"redis": redis, "sessions": sqlite_sessions, "settings": dead}
    await push.startup(ctx)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="worker.push"):
            first = await push.issue_station_qrs(ctx)
            second = await push.issue_station_qrs(ctx)
    finally:
        await push.shutdown(ctx)
    assert time.monotonic() - started < 10
    assert first["issued"] == 0 and 0 < first["failed"] < 200  # the run stopped early
    assert second["issued"] == 0
    assert len([r for r in caplog.records if r.name == "worker.push"]) == 1
    assert "wechat" not in ctx


async def test_database_down_delivery_logs_one_line(client: WeChatClient, settings: Settings, arq_redis: ArqRedis,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A delivery (one row or a batch) or a sweep while the database cannot be reached (a PostgreSQL
    restart) is one warning, not a traceback per job: the rows stay due and a later sweep sends them (found
    by bench/soak.py)."""
    from talenthome.servers import free_port

    monkeypatch.setattr(push, "_throttled", push._Throttled())
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone")
    ctx = {"sessions": make_sessionmaker(engine), "wechat": client, "settings": settings, "redis": arq_redis}
    try:
        with caplog.at_level(logging.WARNING, logger="worker.push"):
            assert await push.deliver_notification(ctx, 1) == "unavailable"
            assert await push.deliver_notifications(ctx, [2, 3, 4]) == {"unavailable": 3}
            assert await push.sweep_outbox(ctx) == 0
    finally:
        await engine.dispose()
    ours = [rec.getMessage() for rec in caplog.records if rec.name == "worker.push"]
    assert len(ours) == 2 and all("unavailable" in m for m in ours)  # one delivery line (throttled), one sweep line
    assert "notification 1:" in ours[0] and "sweep" in ours[1]
    assert not any(rec.exc_info for rec in caplog.records)
