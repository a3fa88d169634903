"""The pages in a real browser: the bot and the window on one aiohttp server on loopback, an arq worker, real
Redis and SQLite, the fake WeChat API (logins, QR tickets), a small `talenthome demo` city, and Debian's
Chromium driven by Playwright for Python (never `playwright install`: the system browser).

The servers run on an event loop in a thread of their own (`Live.call(coro)` runs a coroutine there), so the
tests are plain functions driving Playwright's sync API. One browser per module (the pages' tests live in
one module: one browser per session), one city per module: a file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from bot.app import create_app
from scoring.clock import utcnow
from scoring.db import make_engine, make_sessionmaker, transaction
from talenthome import demo
from talenthome.servers import server_env
from tests.bot.conftest import APPID, make_settings
from tests.cli import EXE
from tests.conftest import new_sqlite_database
from tests.fake_wechat import FakeWeChat
from tests.wx import WeChatSim
from worker.settings import create as create_worker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET = "testsecret"
ROTATION_S = 4  # short station-code rotation, so the kiosk's switch is seen within a test
SIZE = demo.Size(stations=24, talents=80, visits=500, activities=12, upcoming=6)
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@dataclass
class Live:
    loop: asyncio.AbstractEventLoop
    base: str = ""
    db_url: str = ""
    redis_url: str = ""
    settings: Any = None
    fake: FakeWeChat | None = None
    sim: WeChatSim | None = None
    built: Any = None
    redis: aioredis.Redis | None = None
    sessions: Any = None
    _cleanup: list[Callable[[], Coroutine[Any, Any, Any]]] = field(default_factory=list)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DATABASE_URL": self.db_url, "REDIS_URL": self.redis_url}
        return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=60, check=True)

    async def start(self, db_url: str, redis_url: str) -> None:
        self.db_url, self.redis_url = db_url, redis_url
        fake = self.fake = await FakeWeChat(appid=APPID, secret=SECRET).start()
        self._cleanup.append(fake.close)
        self.settings = make_settings(db_url, redis_url, wechat_api_base=fake.base_url,
                                      wechat_oauth_base=fake.base_url, wechat_secret=SECRET,
                                      station_code_rotation_s=ROTATION_S, allow_plain_staff_commands=True)
        self.redis = aioredis.from_url(redis_url)
        self._cleanup.append(self.redis.aclose)
        await self.redis.flushall()
        engine = make_engine(db_url)
        self._cleanup.append(engine.dispose)
        self.sessions = make_sessionmaker(engine)
        async with transaction(self.sessions) as s:
            self.built = await demo.build(s, self.redis, self.settings, now=utcnow(), seed=5, size=SIZE)
        await demo.rebuild_live(self.sessions, self.redis)
        # The bot and the window on one port.
        runner = web.AppRunner(create_app(self.settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._cleanup.append(runner.cleanup)
        self.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self.sim = WeChatSim(self.base + "/wechat", "testtoken", APPID, None)
        self._cleanup.append(self.sim.close)
        # The worker: applies the scans, issues the kiosks' QR tickets.
        worker = create_worker(redis_url, self.settings, poll_delay=0.05, handle_signals=False)
        task = asyncio.ensure_future(worker.async_run())

        async def stop_worker() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            with warnings.catch_warnings():  # arq 0.28 closes its pool with redis' deprecated close()
                warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
                await worker.close()

        self._cleanup.append(stop_worker)

    async def stop(self) -> None:
        # Stop the worker first, then let what the last requests started (a board's refresh) finish while
        # Redis and the database are still there; then close everything; then cancel what is left.
        me = asyncio.current_task()
        for step in reversed(self._cleanup):
            if step.__name__ == "stop_worker":
                await step()
        stray = [t for t in asyncio.all_tasks() if t is not me]
        if stray:
            await asyncio.wait(stray, timeout=3)
        for step in reversed(self._cleanup):
            if step.__name__ != "stop_worker":
                try:
                    await step()
                except Exception:  # keep closing the rest
                    pass
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()
        gc.collect()


@pytest.fixture(scope="module", name="live")
def live_fixture(redis_server: Any, sqlite_template: str) -> Iterator[Live]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="live-server", daemon=True)
    thread.start()
    folder = tempfile.mkdtemp(prefix="talenthome-web-")
    server = Live(loop)
    try:
        server.call(server.start(new_sqlite_database(sqlite_template, folder), redis_server.url), timeout=120)
        yield server
    finally:
        server.call(server.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # on the real clock, like the servers: a suite run under libfaketime must not move the browser's
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, env=server_env())
        yield b
        b.close()


def phone(browser: Any, **kw: Any) -> Any:
    """A fresh context (own cookies) with a 375-pixel-wide phone screen, like WeChat's browser."""
    return browser.new_context(viewport={"width": 375, "height": 760}, device_scale_factor=2, locale="zh-CN",
                               is_mobile=True, has_touch=True, **kw)


def screenshot(page: Any, name: str) -> None:
    """With TALENTHOME_SCREENSHOTS=1, the page (whole length) into docs/screenshots/NAME.png for the README."""
    if os.environ.get("TALENTHOME_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, animations="disabled")
