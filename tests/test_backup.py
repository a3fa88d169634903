"""Backups and recovery (issue 13): `talenthome backup` / `restore` round trip on SQLite and PostgreSQL.

The round trip: a populated city (talenthome.demo); the bot (aiohttp on loopback) and the worker (arq, the
real functions and crons) running, scans through the bot and messages delivered to the fake WeChat API; a
backup by the command (`talenthome.cli.main` on a thread of its own, as the console script runs it; a
process per call only costs seconds) while both run; more traffic after it (lost with the database); the database and
Redis destroyed; restore by the command; the bot and the worker started again. Then the ledger, balances,
boards (rebuilt into Redis from the ledger), outbox and audit equal what they were at the backup, the
restore's own audit row aside; nothing sent before the backup is sent again, and the row that was pending at
the backup is held, not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import create_app
from scoring import backup, boards, live, outbox
from scoring.clock import utcnow
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts.common import Params
from scoring.migrate import head_revision, schema_state, upgrade
from scoring.models import AuditLog, Entry, Notification, Station, Talent
from scoring.settings import Settings
from scoring.staff import audit
from scoring.tokens import station_scene
from talenthome import cli, demo
from tests.bot.conftest import TOKEN, make_settings
from tests.cli import Result, run_cli
from tests.conftest import run_sync
from tests.fake_wechat import FakeWeChat
from tests.worker.test_tasks import board_periods, lines
from tests.wx import WeChatSim
from worker import push, tasks
from worker.settings import create as create_worker

Sessions = async_sessionmaker[AsyncSession]
SIZE = demo.Size(stations=6, talents=30, visits=120, activities=3, upcoming=1)
SENT_ENDPOINTS = ("/cgi-bin/message/template/send", "/cgi-bin/message/custom/send",
                  "/cgi-bin/message/subscribe/bizsend")


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def sends(fake: FakeWeChat) -> list[str]:
    """The bodies of the messages WeChat accepted (delivered), in order."""
    return [json.dumps(r.json, ensure_ascii=False) for r in fake.requests if r.path in SENT_ENDPOINTS and r.delivered]


def asked(fake: FakeWeChat) -> int:
    """Every send request, accepted or not."""
    return sum(r.path in SENT_ENDPOINTS for r in fake.requests)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Any]:
    """The bot and the worker, as in production but in this process (the worker: every function and cron)."""
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    wx = WeChatSim(f"http://127.0.0.1:{runner.addresses[0][1]}/wechat", TOKEN, settings.wechat_appid, None)
    worker = create_worker(str(settings.redis_url), settings, poll_delay=0.05, handle_signals=False)
    task = asyncio.ensure_future(worker.async_run())
    try:
        yield wx
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with warnings.catch_warnings():  # arq 0.28 closes its pool with redis' deprecated close()
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await worker.close()
        await wx.close()
        await runner.cleanup()


async def scans(wx: WeChatSim, settings: Settings, sessions: Sessions, n: int, offset: int) -> None:
    """n station scans by bound talents through the bot (real signed callbacks)."""
    async with sessions() as s:
        openids = list((await s.scalars(select(Talent.openid).where(Talent.openid.is_not(None))
                                        .order_by(Talent.id))).all())
        codes = list((await s.scalars(select(Station.code).where(Station.status == "active")
                                      .order_by(Station.id))).all())
    for k in range(n):
        code = codes[(offset + k) % len(codes)]
        scene = station_scene(settings.scene_key, code, time.time(), settings.station_code_rotation_s)
        reply = await wx.scan(str(openids[(offset * 7 + k) % len(openids)]), scene)
        assert reply.status == 200


async def settled(sessions: Sessions, redis: aioredis.Redis, settings: Settings) -> bool:
    """Every recorded fact applied (as each fact module sees it), its entries on the boards, every message
    out (none pending, in flight included) but the one kept in its backoff on purpose."""
    now = utcnow()
    if await tasks.unapplied(sessions, Params.from_settings(settings), cutoff=now, now=now):
        return False
    async with sessions() as s:
        pending = await s.scalar(select(func.count()).select_from(Notification).where(
            Notification.status == "pending", Notification.key != "test:pending"))
    return pending == 0 and await redis.zcard(live.INTENTS) == 0


async def state(sessions: Sessions, redis: aioredis.Redis, now: datetime) -> dict[str, Any]:
    """What must survive: the ledger, balances, boards (SQL and live), outbox and audit."""
    async with sessions() as s:
        entries = (await s.execute(select(Entry.id, Entry.key, Entry.amount, Entry.station_id, Entry.talent_id,
                                          Entry.occurred_at, Entry.reverses_id).order_by(Entry.id))).all()
        balances = (await s.execute(select(Entry.station_id, Entry.talent_id, func.sum(Entry.amount))
                                    .group_by(Entry.station_id, Entry.talent_id)
                                    .order_by(Entry.station_id, Entry.talent_id))).all()
        station_periods, talent_periods = await board_periods(s)
        sql_boards = {f"station {p}": lines(await boards.station_board(s, p, now=now)) for p in station_periods}
        sql_boards |= {f"talent {p}": lines(await boards.talent_board(s, p)) for p in talent_periods}
        live_boards = {f"station {p}": lines(await live.station_board(s, redis, p, now=now))
                       for p in station_periods}
        live_boards |= {f"talent {p}": lines(await live.talent_board(s, redis, p)) for p in talent_periods}
        notes = (await s.execute(select(Notification.id, Notification.key, Notification.openid,
                                        Notification.status, Notification.sent_at).order_by(Notification.id))).all()
        audits = (await s.execute(select(AuditLog.id, AuditLog.actor, AuditLog.command, AuditLog.outcome)
                                  .order_by(AuditLog.id))).all()
    return {"entries": [tuple(r) for r in entries], "balances": [tuple(r) for r in balances],
            "boards": sql_boards, "live": live_boards, "outbox": [tuple(r) for r in notes],
            "audit": [tuple(r) for r in audits], "built": await live.is_built(redis)}


async def destroy(db_url: str) -> None:
    """The database is gone: the SQLite file (and its WAL), or the PostgreSQL database (an empty one is
    created again under the same name, as the runbook's `createdb` does)."""
    u = make_url(db_url)
    if u.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(u.database) + suffix)
        return
    conn = await asyncpg.connect(host=u.host, port=u.port, user=u.username, database="postgres")
    try:
        await conn.execute(f'DROP DATABASE "{u.database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{u.database}"')
    finally:
        await conn.close()


async def test_round_trip_while_running(db_url: str, redis_url: str, redis: aioredis.Redis, fake_wechat: FakeWeChat,
                                        quiet_clock: datetime, tmp_path: Any, talenthome: Any) -> None:
    settings = make_settings(db_url, redis_url, wechat_api_base=fake_wechat.base_url,
                             wechat_secret=fake_wechat.secret, wechat_appid=fake_wechat.appid)
    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_url}
    path = str(tmp_path / "city.backup")
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        # 1. a populated city
        async with transaction(sessions) as s:
            await demo.build(s, redis, settings, now=utcnow(), seed=13, size=SIZE)
        await demo.rebuild_live(sessions, redis)
        async with sessions() as s:
            talents = list((await s.scalars(select(Talent).where(Talent.openid.is_not(None))
                                            .order_by(Talent.id).limit(4))).all())
        async with running(settings) as wx:
            # traffic, and messages that are sent before the backup
            await scans(wx, settings, sessions, 12, offset=0)
            async with transaction(sessions) as s:
                for t in talents[:3]:
                    await outbox.add(s, f"test:before:{t.id}", str(t.openid), {"text": f"before {t.id}"},
                                     channel="custom")
                await outbox.add(s, "test:pending", str(talents[3].openid), {"text": "pending at the backup"},
                                 channel="custom")
                await s.execute(update(Notification).where(Notification.key == "test:pending")
                                .values(next_attempt_at=utcnow() + timedelta(hours=1)))  # in its backoff
                await audit(s, "cli:test", "admin", "before the backup", "ok")
            await until(lambda: settled(sessions, redis, settings), "traffic applied and messages sent")
            sent_before = sends(fake_wechat)
            assert sum("before" in b for b in sent_before) == 3
            at_backup = await state(sessions, redis, utcnow())
            assert at_backup["entries"] and at_backup["live"] == at_backup["boards"]

            # 2. the backup, while the bot and the worker run
            done = await talenthome("backup", path, env=env)
            assert done.returncode == 0, done.stderr
            assert "backup of the" in done.stdout and (tmp_path / "city.backup").stat().st_size > 0
            assert [n for n in tmp_path.iterdir() if "partial" in n.name] == []

            # traffic after the backup: lost with the database
            await scans(wx, settings, sessions, 12, offset=5)
            async with transaction(sessions) as s:
                await outbox.add(s, "test:after", str(talents[0].openid), {"text": "after the backup"},
                                 channel="custom")
            await until(lambda: settled(sessions, redis, settings), "traffic after the backup applied")
            assert len((await state(sessions, redis, utcnow()))["entries"]) > len(at_backup["entries"])

        # 3. the database and Redis are destroyed
        await engine.dispose()
        await destroy(db_url)
        await redis.flushall()
        sent_until_loss = asked(fake_wechat)

        # 4. restore and start
        done = await talenthome("restore", path, env=env)
        assert done.returncode == 0, done.stderr
        assert "1 outbox messages that were pending at the backup are held" in done.stdout
        assert "boards rebuilt from the ledger" in done.stdout
        engine = make_engine(db_url)
        sessions = make_sessionmaker(engine)
        async with running(settings):
            # the sweeps, as their crons do (the worker also ran them at startup): the outbox's and the facts'
            pool = await create_pool(RedisSettings.from_dsn(redis_url))
            try:
                assert await push.sweep_outbox({"redis": pool, "sessions": sessions}) == 0
                await tasks.sweep({"redis": pool, "sessions": sessions, "settings": settings}, min_age_s=0)
            finally:
                await pool.aclose()
            await until(lambda: _drained(redis), "the queue drained")
            await until(lambda: settled(sessions, redis, settings), "the restored city settled")
            after = await state(sessions, redis, utcnow())

        # 5. equal to what they were at the backup
        assert after["entries"] == at_backup["entries"]
        assert after["balances"] == at_backup["balances"]
        assert after["boards"] == at_backup["boards"]
        assert after["built"] and after["live"] == at_backup["boards"]  # rebuilt from the ledger
        held = {r[1]: r for r in after["outbox"] if r[3] == backup.HELD}
        assert list(held) == ["test:pending"]
        assert [r for r in after["outbox"] if r[1] != "test:pending"] == \
            [r for r in at_backup["outbox"] if r[1] != "test:pending"]
        assert after["audit"][:-1] == at_backup["audit"]
        assert after["audit"][-1][2].startswith("restore ") and "1 outbox messages held" in after["audit"][-1][3]
        # nothing already sent is sent again, and the held row is not sent
        assert asked(fake_wechat) == sent_until_loss  # not even tried

        # an admin releases the held message: it goes out once
        done = await talenthome("held", env=env)
        assert "1 held messages" in done.stdout and "test:pending" in done.stdout
        done = await talenthome("held", "--release", "all", env=env)
        assert done.returncode == 0 and "1 held messages released" in done.stdout
        async with running(settings):
            await until(lambda: _sent(fake_wechat, "pending at the backup"), "the released message sent")
        assert sum("pending at the backup" in b for b in sends(fake_wechat)) == 1
        assert sum("before" in b for b in sends(fake_wechat)) == 3
    finally:
        await engine.dispose()


async def _drained(redis: aioredis.Redis) -> bool:
    return await redis.zcard("arq:queue") == 0


async def _sent(fake: FakeWeChat, text: str) -> bool:
    return any(text in b for b in sends(fake))


# -- refusals and an older schema -----------------------------------------------------------------------


async def empty_database(kind: str, tmp_path: Any, pg_server: Any = None) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/empty-{time.monotonic_ns()}.db"
    name = f"empty_{os.getpid()}_{time.monotonic_ns()}"
    conn = await asyncpg.connect(host="127.0.0.1", port=pg_server.port, user="postgres", database="postgres")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return str(pg_server.url(name))


@pytest.fixture
def talenthome(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """The command in this process (talenthome.cli.main, as the console script runs it; cheaper than a
    process per call), with tests.cli.run_cli's signature."""

    async def run(*args: str, env: dict[str, str]) -> Result:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        request.getfixturevalue("pg_server")
    return str(request.param)


async def test_backup_at_an_older_schema_restores_to_head(kind: str, tmp_path: Any, redis_url: str,
                                                          request: pytest.FixtureRequest) -> None:
    """Through the console script itself (a process per command)."""
    pg = request.getfixturevalue("pg_server") if kind == "postgresql" else None
    old = await empty_database(kind, tmp_path, pg)
    await asyncio.to_thread(upgrade, old, "0006")
    engine = make_engine(old)
    async with transaction(make_sessionmaker(engine)) as s:
        await s.execute(AuditLog.__table__.insert().values(actor="cli:old", role="admin", at=utcnow(),
                                                           command="old", outcome="kept"))
    await engine.dispose()
    path = str(tmp_path / "old.backup")
    assert (await run_cli("backup", path, env={"DATABASE_URL": old, "REDIS_URL": redis_url})).returncode == 0

    target = await empty_database(kind, tmp_path, pg)
    done = await run_cli("restore", path, env={"DATABASE_URL": target, "REDIS_URL": redis_url})
    assert done.returncode == 0, done.stderr
    assert "schema migrated from 0006" in done.stdout
    assert (await schema_state(target))[1] == head_revision()
    engine = make_engine(target)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(AuditLog.command).order_by(AuditLog.id))).scalars().all()
    finally:
        await engine.dispose()
    assert rows[0] == "old" and rows[-1].startswith("restore ")


async def test_restore_refuses_wrong_files_and_a_database_with_data(
        kind: str, tmp_path: Any, redis_url: str, request: pytest.FixtureRequest, talenthome: Any) -> None:
    run = talenthome
    pg = request.getfixturevalue("pg_server") if kind == "postgresql" else None
    source = await empty_database(kind, tmp_path, pg)
    await asyncio.to_thread(upgrade, source)
    engine = make_engine(source)
    async with transaction(make_sessionmaker(engine)) as s:
        await audit(s, "cli:test", "admin", "in the source", "ok")
    await engine.dispose()
    env = {"DATABASE_URL": source, "REDIS_URL": redis_url}
    path = str(tmp_path / "good.backup")
    assert (await run("backup", path, env=env)).returncode == 0
    again = await run("backup", path, env=env)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--force" in again.stderr

    # the other kind of backup, and a file that is no backup at all: one line each, nothing changed
    other = str(tmp_path / "other.backup")
    (tmp_path / "other.backup").write_bytes(b"PGDMP" if kind == "sqlite" else b"SQLite format 3\x00" + bytes(100))
    junk = str(tmp_path / "junk.backup")
    (tmp_path / "junk.backup").write_bytes(b"hello")
    target = await empty_database(kind, tmp_path, pg)
    tenv = {"DATABASE_URL": target, "REDIS_URL": redis_url}
    for bad in (other, junk, str(tmp_path / "missing.backup")):
        done = await run("restore", bad, env=tenv)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr
    assert (await schema_state(target)) == (False, None)

    # a database that holds data is refused without --force, replaced with it
    done = await run("restore", path, env=env)
    assert done.returncode == 2 and "holds data" in done.stderr and done.stderr.count("\n") == 1
    engine = make_engine(source)
    async with transaction(make_sessionmaker(engine)) as s:
        await audit(s, "cli:test", "admin", "after the backup", "lost")
    await engine.dispose()
    done = await run("restore", path, "--force", env=env)
    assert done.returncode == 0, done.stderr
    engine = make_engine(source)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(AuditLog.command).order_by(AuditLog.id))).scalars().all()
    finally:
        await engine.dispose()
    assert rows[0] == "in the source" and "after the backup" not in rows and rows[-1].startswith("restore ")


def test_missing_pg_dump_is_one_line(pg_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from talenthome.commands import backup as command

    monkeypatch.setattr(command, "pg_bindir", lambda: None)
    monkeypatch.setattr(command.glob, "glob", lambda pattern: [])
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", pg_url)
    assert cli.main(["backup", str(tmp_path / "x.backup")]) == 2
    assert not os.path.exists(tmp_path / "x.backup")


def test_backup_is_one_snapshot_under_writes(sqlite_url: str, tmp_path: Any) -> None:
    """SQLite: a writer commits entries in pairs while the backup runs; the copy holds whole pairs only."""
    run_sync(_snapshot_under_writes(sqlite_url, str(tmp_path / "snap.backup")))


async def _snapshot_under_writes(url: str, path: str) -> None:
    import sqlite3

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    stop = asyncio.Event()

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            async with transaction(sessions) as s:
                for leg in ("a", "b"):
                    await audit(s, "cli:w", "admin", f"pair {n} {leg}", "ok")
            n += 1

    task = asyncio.ensure_future(writer())
    try:
        await until(lambda: _audits_at_least(sessions, 40), "the writer under way")
        taken = await asyncio.to_thread(backup.take, url, path)
        assert taken.kind == "sqlite"
    finally:
        stop.set()
        await task
        await engine.dispose()
    conn = sqlite3.connect(path)
    commands = [c for c, in conn.execute("SELECT command FROM audit_log ORDER BY id")]
    conn.close()
    assert len(commands) >= 40 and len(commands) % 2 == 0
    assert all(a.endswith(" a") and b.endswith(" b") and a[:-2] == b[:-2]
               for a, b in zip(commands[::2], commands[1::2], strict=True))


async def _audits_at_least(sessions: Sessions, n: int) -> bool:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(AuditLog)) or 0) >= n


async def test_held_messages_are_dropped_or_refused_in_one_line(sqlite_url: str, talenthome: Any) -> None:
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    async with transaction(sessions) as s:
        for k in ("a", "b"):
            await outbox.add(s, f"test:{k}", f"o-{k}", {"text": k}, channel="custom")
        assert await backup.hold_outbox(s, "/backups/x.db") == 2
    env = {"DATABASE_URL": sqlite_url}
    bad = await talenthome("held", "--drop", "one", env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "bad ids" in bad.stderr
    async with sessions() as s:
        first = (await backup.held(s))[0].id
    done = await talenthome("held", "--drop", str(first), env=env)
    assert done.returncode == 0 and "1 held messages dropped" in done.stdout
    async with sessions() as s:
        rows = {n.key: (n.status, n.last_error) for n in (await s.scalars(select(Notification))).all()}
        audits = (await s.scalars(select(AuditLog.command))).all()
    await engine.dispose()
    assert rows["test:a"] == ("given_up", backup.DROPPED)
    assert rows["test:b"][0] == backup.HELD and "restored from a backup" in str(rows["test:b"][1])
    assert list(audits) == [f"held --drop {first}"]
