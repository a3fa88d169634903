"""Deadline, crash and retry behaviour of the webhook, with handlers injected into the running bot."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from bot import texts
from bot.router import Context, Dispatcher, Router
from bot.webhook import DEPS_KEY, unavailable
from scoring.models import AuditLog, Notification
from scoring.tokens import station_scene
from talenthome.servers import RedisServer, free_port
from tests.bot import flows
from tests.bot.conftest import Bot, start_bot


@pytest.fixture
async def quick_bot(sqlite_url: str, redis_url: str) -> AsyncIterator[Bot]:
    async for b in start_bot(sqlite_url, redis_url, handler_budget_s=0.3):
        yield b


def install(bot: Bot, router: Router) -> None:
    bot.app[DEPS_KEY].dispatcher = Dispatcher(router)


async def test_over_budget_answers_success_and_the_reply_goes_to_the_outbox_once(quick_bot: Bot) -> None:
    """Past the budget the answer is `success` (which ends WeChat's retries): the reply is queued once as a
    customer-service message (tests/bot/test_late_replies.py follows it to the talent), and retries, during
    the delay and after it, get `success` again and run nothing twice."""
    release = asyncio.Event()
    runs = 0
    r = Router("slow")

    @r.word("慢")
    async def slow(ctx: Context, rest: str) -> str:
        nonlocal runs
        runs += 1
        await release.wait()
        return "终于好了"

    install(quick_bot, r)
    msg_id, created = quick_bot.wx.next_msg_id(), int(time.time())
    started = time.perf_counter()
    first = await quick_bot.wx.text("oU", "慢", msg_id=msg_id, create_time=created)
    assert first.status == 200 and first.body == "success" and time.perf_counter() - started < 2
    during = await quick_bot.wx.text("oU", "慢", msg_id=msg_id, create_time=created)
    assert during.body == "success"
    release.set()

    async def queued() -> list[tuple[str, str, str, str]]:
        async with quick_bot.sessions() as s:
            rows = (await s.execute(select(Notification.key, Notification.openid, Notification.channel,
                                           Notification.payload))).all()
        return [tuple(row) for row in rows]

    [(key, openid, channel, payload)] = await flows.eventually(queued, bool)
    assert (key, openid, channel) == (f"reply:msg:{msg_id}", "oU", "custom")
    assert json.loads(payload)["text"] == "终于好了"
    assert [j.job_id for j in await quick_bot.queued_jobs()] == ["notify:1"]
    after = await quick_bot.wx.text("oU", "慢", msg_id=msg_id, create_time=created)
    assert after.body == "success"
    assert runs == 1 and len(await queued()) == 1


async def test_retry_while_first_attempt_runs_waits_and_runs_once(bot: Bot) -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    runs = 0
    r = Router("gated")

    @r.word("等")
    async def gated(ctx: Context, rest: str) -> str:
        nonlocal runs
        runs += 1
        started.set()
        await gate.wait()
        return "只办一次"

    install(bot, r)
    msg_id, created = bot.wx.next_msg_id(), int(time.time())
    first = asyncio.create_task(bot.wx.text("oU", "等", msg_id=msg_id, create_time=created))
    second = asyncio.create_task(bot.wx.text("oU", "等", msg_id=msg_id, create_time=created))
    await asyncio.wait_for(started.wait(), 5)
    gate.set()
    answers = await asyncio.gather(first, second)
    assert [a.text for a in answers] == ["只办一次", "只办一次"]
    assert runs == 1


async def test_crashing_handler_answers_empty_and_logs(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    r = Router("broken")

    @r.word("坏")
    async def broken(ctx: Context, rest: str) -> str:
        raise RuntimeError("boom")

    install(bot, r)
    with caplog.at_level(logging.ERROR, logger="bot.webhook"):
        reply = await bot.wx.text("oCrash", "坏")
    assert reply.status == 200 and reply.text == "" and "Traceback" not in reply.body
    assert any("handler crashed" in rec.message and "oCrash" in rec.message for rec in caplog.records)


def admin_only(ran: list[str]) -> Router:
    admin = Router("admin-only", roles=frozenset({"admin"}))

    @admin.word("删除", "/delete")
    async def delete(ctx: Context, rest: str) -> str:
        ran.append(rest)
        return "已删除"

    root = Router("root")
    root.include_router(admin)
    return root


async def audit_rows(bot: Bot) -> list[tuple[str, str, str, str]]:
    async with bot.sessions() as s:
        rows = (await s.execute(select(AuditLog.actor, AuditLog.role, AuditLog.command, AuditLog.outcome)
                                .order_by(AuditLog.id))).all()
    return [tuple(r) for r in rows]


async def test_role_filter_and_plain_mode_refuse_and_are_audited(bot: Bot) -> None:
    ran: list[str] = []
    install(bot, admin_only(ran))
    refused = await bot.wx.text("oNobody", "/delete everything")
    assert "权限" in refused.text
    plain = await bot.wx.text("oAdminEnv", "/delete everything")  # an admin by ADMIN_OPENIDS, but plain mode
    assert plain.text == texts.PLAIN_MODE_REFUSED
    assert ran == []
    assert await audit_rows(bot) == [("oNobody", "talent", "/delete everything", "refused: role"),
                                     ("oAdminEnv", "admin", "/delete everything", "refused: plain mode")]


async def test_admin_command_runs_in_safe_mode_and_is_audited(safe_bot: Bot) -> None:
    ran: list[str] = []
    install(safe_bot, admin_only(ran))
    reply = await safe_bot.wx.text("oAdminEnv", "删除 everything")
    assert reply.text == "已删除" and ran == ["everything"]
    assert await audit_rows(safe_bot) == [("oAdminEnv", "admin", "删除 everything", "已删除")]


async def test_plain_staff_commands_allowed_by_setting(sqlite_url: str, redis_url: str) -> None:
    async for b in start_bot(sqlite_url, redis_url, allow_plain_staff_commands=True):
        ran: list[str] = []
        install(b, admin_only(ran))
        assert (await b.wx.text("oAdminEnv", "/delete x")).text == "已删除" and ran == ["x"]


async def test_database_down_answers_busy_without_traceback(redis_url: str, caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    """A callback while the database cannot be reached (nothing listens on its port: what a PostgreSQL
    restart looks like) is answered "try again later" and logged in one line (found by bench/soak.py)."""
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone"
    async for b in start_bot(dead, redis_url):
        with caplog.at_level(logging.WARNING, logger="bot.webhook"):
            reply = await b.wx.text("oDown", "积分")
        assert reply.status == 200 and reply.text == texts.BUSY
        ours = [rec for rec in caplog.records if rec.name == "bot.webhook"]
        assert any("answered busy" in rec.message and "oDown" in rec.message for rec in ours)
        assert not any(rec.exc_info for rec in ours)
        # A station scan goes through the batcher's group commit: the same answer, no traceback either.
        caplog.clear()
        scene = station_scene(b.settings.scene_key, "ST001", time.time(), b.settings.station_code_rotation_s)
        with caplog.at_level(logging.WARNING):
            reply = await b.wx.scan("oDown", scene)
        assert reply.status == 200 and reply.text == texts.BUSY
        assert any(rec.name == "bot.batcher" for rec in caplog.records)
        assert not any(rec.exc_info for rec in caplog.records)


async def test_redis_down_answers_busy_without_traceback(sqlite_url: str, tmp_path: Any,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Redis stopped under a running bot: the de-duplication claim cannot be made, nothing is recorded,
    and the talent is asked to send it again later (not a 500 with a traceback)."""
    server = RedisServer(str(tmp_path / "redis")).start(persist=False)
    try:
        async for b in start_bot(sqlite_url, server.url):
            assert (await b.wx.text("oUp", "帮助")).text
            server.stop()
            with caplog.at_level(logging.WARNING):
                reply = await b.wx.text("oDown", "积分")
            assert reply.status == 200 and reply.text == texts.BUSY
            assert any("answered busy" in rec.message for rec in caplog.records if rec.name == "bot.webhook")
            assert not any(rec.exc_info for rec in caplog.records)
    finally:
        server.stop()


def test_unavailable_knows_an_outage_from_a_bug() -> None:
    import asyncpg
    from sqlalchemy import exc as sa_errors

    shutting_down = asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
    wrapped = sa_errors.DBAPIError("SELECT 1", None, shutting_down)
    assert unavailable(shutting_down) and unavailable(wrapped)
    assert unavailable(ConnectionRefusedError(111, "Connect call failed"))
    assert not unavailable(RuntimeError("boom"))
    assert not unavailable(sa_errors.IntegrityError("INSERT", None, asyncpg.exceptions.UniqueViolationError("dup")))


async def test_redis_down_while_a_retry_waits_answers_empty(sqlite_url: str, tmp_path: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """WeChat's retry waits for the first attempt's cached answer; Redis going away meanwhile is an empty
    answer and one line, not a 500 with a traceback (found by bench/soak.py)."""
    server = RedisServer(str(tmp_path / "redis")).start(persist=False)
    gate, started = asyncio.Event(), asyncio.Event()
    r = Router("gated")

    @r.word("等")
    async def gated(ctx: Context, rest: str) -> str:
        started.set()
        await gate.wait()
        return "好了"

    try:
        async for b in start_bot(sqlite_url, server.url):
            install(b, r)
            deps, polling = b.app[DEPS_KEY], asyncio.Event()
            real_get = deps.redis.get

            async def spy_get(key: str, polling: asyncio.Event = polling, real_get: Any = real_get) -> Any:
                polling.set()  # the retry polls for the first attempt's cached answer
                return await real_get(key)

            deps.redis.get = spy_get
            msg_id, created = b.wx.next_msg_id(), int(time.time())
            first = asyncio.create_task(b.wx.text("oU", "等", msg_id=msg_id, create_time=created))
            await asyncio.wait_for(started.wait(), 5)
            retry = asyncio.create_task(b.wx.text("oU", "等", msg_id=msg_id, create_time=created))
            await asyncio.wait_for(polling.wait(), 5)
            with caplog.at_level(logging.WARNING):
                server.stop()
                answer = await asyncio.wait_for(retry, 10)
            gate.set()
            await first
            assert answer.status == 200 and answer.text == ""
            assert any("answered empty" in rec.message for rec in caplog.records if rec.name == "bot.webhook")
            assert not any(rec.exc_info for rec in caplog.records if rec.name.startswith(("bot", "aiohttp")))
    finally:
        server.stop()


async def test_outage_past_the_budget_answers_success_and_queues_nothing(quick_bot: Bot,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """系统繁忙 only within the budget: a handler that meets an outage after the answer went out as `success`
    queues no late reply (neither BUSY nor anything else) and logs one line without a traceback."""
    release = asyncio.Event()
    r = Router("slow-outage")

    @r.word("慢")
    async def slow(ctx: Context, rest: str) -> str:
        await release.wait()
        raise ConnectionRefusedError(111, "Connect call failed")

    install(quick_bot, r)
    with caplog.at_level(logging.WARNING, logger="bot.webhook"):
        first = await quick_bot.wx.text("oLate", "慢")
        assert first.status == 200 and first.body == "success"
        release.set()

        async def lines() -> list[str]:
            return [rec.getMessage() for rec in caplog.records if "past the budget, nothing sent" in rec.getMessage()]

        assert len(await flows.eventually(lines, bool)) == 1
    assert not any(rec.exc_info for rec in caplog.records)
    async with quick_bot.sessions() as s:
        assert (await s.execute(select(Notification.id))).all() == []
    assert await quick_bot.queued_jobs() == []
