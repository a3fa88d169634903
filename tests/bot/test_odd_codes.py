"""A scanned code with non-ASCII characters is an invalid code: a polite reply, a stored refusal, no
traceback in the log and no job."""

from __future__ import annotations

import logging
import time

import pytest

from bot import texts
from tests.bot import flows
from tests.bot.conftest import Bot


async def test_non_ascii_scan_is_refused_without_a_traceback(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    await flows.station(bot, "ST1")
    await flows.talent(bot, openid="oT1")
    good = flows.scene(bot, "ST1")
    head, _, mac = good.rpartition(".")
    odd = [f"{head}.{mac[:-1]}é", f"{head}.{'码' * len(mac)}", "ac:1:" + "ü" * 10 + ".x", "st:ST1:中文.码"]
    with caplog.at_level(logging.INFO):
        for i, scene in enumerate(odd):
            reply = await bot.wx.scan("oT1", scene, create_time=int(time.time()) + i)
            assert reply.status == 200 and reply.text == texts.VISIT_REJECTED["forged_code"], scene
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    assert await flows.jobs(bot) == []
    assert all(v.status == "rejected" for v in await flows.visits(bot))
