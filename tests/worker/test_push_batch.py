"""Batched outbox delivery (issue 14): a batch is one claim transaction, its sends at once, one record
transaction; at most once survives a worker SIGKILLed mid-batch. Real SQLite/PostgreSQL and Redis, the fake
WeChat API on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine

from scoring.clock import utcnow
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import Notification
from tests.fake_wechat import Reply
from tests.worker import test_push as _push
from tests.worker.test_push import CHILD, ROOT, add, row
from worker import push

# test_push's fixtures: its settings (rank template), WeChat clients and arq pool
settings, make_client, client, arq_redis = _push.settings, _push.make_client, _push.client, _push.arq_redis


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[dict[str, int]]:
    """Count commits and UPDATE statements on the outbox while the block runs."""
    seen = {"commits": 0, "updates": 0}

    def on_commit(_: Any) -> None:
        seen["commits"] += 1

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE NOTIFICATIONS"):
            seen["updates"] += 1

    sync = engine.sync_engine
    event.listen(sync, "commit", on_commit)
    event.listen(sync, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(sync, "commit", on_commit)
        event.remove(sync, "before_cursor_execute", on_execute)


async def test_a_batch_is_one_claim_and_one_record_transaction(engine, sessions, client, settings, fake_wechat):
    fake_wechat.script("template", *[Reply(delay=0.2)] * 10)
    ids = [await add(sessions, f"rank:S{i}", f"op{i}", template="rank", text="名次变化") for i in range(10)]
    with counting(engine) as seen:
        statuses = await push.deliver_many(sessions, client, settings, ids)
    assert statuses == {nid: "sent" for nid in ids}
    assert seen == {"commits": 2, "updates": 3}  # claim (+ the interrupted check), record
    assert fake_wechat.max_inflight["/cgi-bin/message/template/send"] == 10  # all sent at once
    assert sorted(r.json["touser"] for r in fake_wechat.delivered("template")) == sorted(f"op{i}" for i in range(10))
    assert {(n.status, n.attempts) for n in [await row(sessions, nid) for nid in ids]} == {("sent", 1)}
    assert await push.deliver_many(sessions, client, settings, ids) == {nid: "skipped" for nid in ids}
    assert len(fake_wechat.calls("template")) == 10


async def test_a_mix_of_outcomes_is_recorded_right(engine, sessions, make_client, settings, fake_wechat):
    fake_wechat.unfollowed.add("o-gone")
    fake_wechat.silent.add("o-quiet")
    fake_wechat.script("template", Reply(status=500), Reply(status=500))  # the batch's two template rows
    ok = [await add(sessions, f"ok{i}", f"o-ok{i}", channel="custom", text="请评分") for i in range(2)]
    retry = await add(sessions, "retry", "o-r", template="rank", text="t")
    last = await add(sessions, "last", "o-last", template="rank", text="t")
    gone = await add(sessions, "gone", "o-gone", channel="custom", text="t")
    quiet = await add(sessions, "quiet", "o-quiet", channel="custom", text="t")
    bad = await add(sessions, "bad", "o-bad", channel="custom", text="t")
    sent = await add(sessions, "sent", "o-sent", channel="custom", text="t")
    held = await add(sessions, "held", "o-held", channel="custom", text="t")
    later = await add(sessions, "later", "o-later", channel="custom", text="t")
    stuck = await add(sessions, "stuck", "o-stuck", channel="custom", text="t")
    now = utcnow()
    n = Notification
    async with transaction(sessions) as s:
        await s.execute(update(n).where(n.id == bad).values(payload="{not json"))
        await s.execute(update(n).where(n.id == last).values(attempts=push.MAX_ATTEMPTS - 1))
        await s.execute(update(n).where(n.id == sent).values(status="sent"))
        await s.execute(update(n).where(n.id == held).values(status="held"))  # held by a restore
        await s.execute(update(n).where(n.id == later).values(next_attempt_at=now + timedelta(hours=1)))
        await s.execute(update(n).where(n.id == stuck).values(  # a dead worker's attempt, its lease run out
            attempts=1, last_error="in flight since 2026-01-01T00:00:00Z", next_attempt_at=now - timedelta(seconds=1)))
    ids = [*ok, retry, last, gone, quiet, bad, sent, held, later, stuck]
    with counting(engine) as seen:
        statuses = await push.deliver_many(sessions, make_client(retries=0), settings, ids, now=now)
    assert seen["commits"] == 2, (seen, statuses)  # one claim, one record (five distinct outcomes: five UPDATEs)
    assert statuses == {ok[0]: "sent", ok[1]: "sent", retry: "retry", last: "given_up", gone: "given_up",
                        quiet: "given_up", bad: "given_up", sent: "skipped", held: "skipped", later: "skipped",
                        stuck: "given_up"}
    rows = {nid: await row(sessions, nid) for nid in ids}
    for nid in ok:
        assert (rows[nid].status, rows[nid].attempts, rows[nid].last_error) == ("sent", 1, None)
        assert rows[nid].sent_at is not None
    assert (rows[retry].status, rows[retry].attempts) == ("pending", 1) and "HTTP 500" in rows[retry].last_error
    assert rows[retry].next_attempt_at >= now + timedelta(seconds=push.RETRY_BASE_S)
    assert rows[last].status == "given_up"
    assert rows[last].last_error.startswith(f"gave up after {push.MAX_ATTEMPTS} attempts: HTTP 500")
    assert rows[gone].status == rows[quiet].status == rows[bad].status == "given_up"
    assert "(43004)" in rows[gone].last_error and "(45015)" in rows[quiet].last_error
    assert rows[bad].last_error == "payload is not JSON"
    assert rows[stuck].status == "given_up" and rows[stuck].last_error.startswith("outcome unknown, not resent")
    assert (rows[held].status, rows[held].attempts) == ("held", 0)
    assert (rows[later].status, rows[later].attempts) == ("pending", 0)
    touched = {r.json["touser"] for path in ("custom", "template") for r in fake_wechat.calls(path)}
    assert touched == {"o-ok0", "o-ok1", "o-r", "o-last", "o-gone", "o-quiet"}  # never the others


async def test_kick_and_sweep_make_batches(sessions, settings, arq_redis):
    ids = [await add(sessions, f"k{i}", f"o{i}", template="rank", text="t") for i in range(push.DELIVER_BATCH + 3)]
    await push.kick(arq_redis, ids)
    await push.kick(arq_redis, ids)  # the same batches: queued once
    assert await arq_redis.zcard("arq:queue") == 2
    ctx = {"redis": arq_redis, "sessions": sessions}
    assert await push.sweep_outbox(ctx) == len(ids)  # two more jobs (their ids carry the attempts)
    assert await push.sweep_outbox(ctx) == 0
    assert await arq_redis.zcard("arq:queue") == 4


async def test_a_worker_killed_mid_batch_sends_none_twice(sqlite_url, client, settings, fake_wechat, arq_redis,
                                                           redis_url):
    """A real arq worker process claims a batch, its sends reach WeChat, and it is SIGKILLed before it records
    anything: after the lease every row is given up ("outcome unknown"), none is sent again."""
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    fake_wechat.script("template", *[Reply(delay=30)] * 6)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, redis_url, sqlite_url, fake_wechat.base_url, fake_wechat.appid,
        fake_wechat.secret, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        ids = [await add(sessions, f"k{i}", f"o{i}", template="rank", text="t") for i in range(6)]
        await push.kick(arq_redis, ids)
        await arq_redis.set("test:go", 1)
        deadline = time.monotonic() + 30
        while len(fake_wechat.calls("template")) < 6:  # the batch is claimed and all its sends are out
            assert time.monotonic() < deadline and proc.returncode is None, "the batch was not sent"
            await asyncio.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        assert {(await row(sessions, nid)).last_error.split(" since")[0] for nid in ids} == {push.IN_FLIGHT}
        assert await push.deliver_many(sessions, client, settings, ids) == {nid: "skipped" for nid in ids}
        later = utcnow() + push.LEASE + timedelta(seconds=1)
        assert await push.deliver_many(sessions, client, settings, ids, now=later) == {nid: "given_up" for nid in ids}
        assert len(fake_wechat.calls("template")) == 6
        assert {(await row(sessions, nid)).status for nid in ids} == {"given_up"}
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await engine.dispose()


async def test_a_send_that_raises_leaves_its_row_in_flight_and_the_batch_is_recorded(sessions, client, settings,
                                                                                      fake_wechat):
    """A payload the client cannot encode (a lone surrogate from a JSON escape) raises inside its send: the
    other rows of the batch are sent and recorded; that row stays in flight and is given up after the lease."""
    ids = [await add(sessions, f"k{i}", f"o{i}", channel="custom", text="请评分") for i in range(3)]
    async with transaction(sessions) as s:
        await s.execute(update(Notification).where(Notification.id == ids[1])
                        .values(payload='{"text": "\\ud800"}'))
    statuses = await push.deliver_many(sessions, client, settings, ids)
    assert statuses == {ids[0]: "sent", ids[1]: "in flight", ids[2]: "sent"}
    assert sorted(r.json["touser"] for r in fake_wechat.delivered("custom")) == ["o0", "o2"]
    assert (await row(sessions, ids[1])).last_error.startswith(push.IN_FLIGHT)
    later = utcnow() + push.LEASE + timedelta(seconds=1)
    assert await push.deliver_many(sessions, client, settings, ids, now=later) == \
        {ids[0]: "skipped", ids[1]: "given_up", ids[2]: "skipped"}
