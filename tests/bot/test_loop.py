"""bot/loop.py: `talenthome serve` runs on uvloop by default (BOT_UVLOOP), asyncio's loop when it is off."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import uvloop

from bot.loop import loop_name, new_event_loop
from scoring.settings import Settings


def _run_on(loop: asyncio.AbstractEventLoop) -> str:
    async def probe() -> str:
        await asyncio.sleep(0)
        return loop_name(asyncio.get_running_loop())

    try:
        return loop.run_until_complete(probe())
    finally:
        loop.close()


def test_uvloop_by_default() -> None:
    settings = Settings(_env_file=None, wechat_token="t", wechat_appid="wx1", wechat_secret="s")  # type: ignore[call-arg]
    assert settings.bot_uvloop is True
    loop = new_event_loop(settings.bot_uvloop)
    assert isinstance(loop, uvloop.Loop)
    assert _run_on(loop) == "uvloop"


def test_asyncio_loop_when_off(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BOT_UVLOOP", "0")
    settings = Settings(_env_file=None, wechat_token="t", wechat_appid="wx1", wechat_secret="s")  # type: ignore[call-arg]
    assert settings.bot_uvloop is False
    loop = new_event_loop(settings.bot_uvloop)
    assert not isinstance(loop, uvloop.Loop)
    assert _run_on(loop) == "asyncio"


def test_settle_heap_freezes_the_app_and_collects_less_often() -> None:
    """In a process of its own (freezing the test runner's heap would change every later test)."""
    code = ("import gc; import bot.app; from bot.loop import GC_THRESHOLDS, settle_heap; "
            "before = gc.get_freeze_count(); settle_heap(); "
            "print(before, gc.get_freeze_count() > 10_000, gc.get_threshold() == GC_THRESHOLDS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "True", "True"]
