"""Every message and event WeChat may send an official account, from the platform's documented formats
(tests/bot/fixtures/wechat/*.xml) and from wechatpy's parser tables: every follow is welcomed whatever its
EventKey; an event the bot does not act on is acknowledged silently; only what a person sent gets the
"unsupported" help."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from wechatpy.events import EVENT_TYPES
from wechatpy.messages import MESSAGE_TYPES

from bot import texts
from scoring.models import AuditLog, Visit
from tests.bot.conftest import Bot
from tests.wx import ACCOUNT, message_xml

FIXTURES = Path(__file__).parent / "fixtures" / "wechat"
_ids = itertools.count(int(time.time()) * 1000)


def fixture(name: str, openid: str = "oEvents") -> str:
    return (FIXTURES / f"{name}.xml").read_text().replace("OPENID", openid).replace(
        "CREATETIME", str(int(time.time()))).replace("MSGID", str(next(_ids)))


def names(prefix: str = "") -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.xml") if p.stem.startswith(prefix))


FOLLOWS = names("follow_")
MESSAGES = names("msg_")
SILENT = [n for n in names() if n not in FOLLOWS + MESSAGES]
# the events the bot acts on: follows (wechatpy's subscribe_scan and subscribe_scan_product are follows
# with a qrscene_ or product key: the follow_* fixtures), and scans of its codes (no scene: silent too)
ACTED_ON = {"subscribe", "subscribe_scan", "subscribe_scan_product", "scan", "scancode_waitmsg", "scancode_push"}


async def nothing_stored(bot: Bot) -> None:
    async with bot.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Visit)) == 0
        assert await s.scalar(select(func.count()).select_from(AuditLog)) == 0
    assert await bot.queued_jobs() == []


def test_the_fixtures_cover_the_platform() -> None:
    assert len(FOLLOWS) >= 5 and len(MESSAGES) >= 8 and len(SILENT) >= 30
    for required in ("subscribe_msg_popup", "subscribe_msg_change", "subscribe_msg_sent", "card_user_get",
                     "invoice_user_authorize", "product_user_scan", "kf_create_session", "kf_close_session",
                     "kf_switch_session", "unknown_event", "follow_scanbarcode", "follow_plain",
                     "follow_qrscene_unknown", "msg_voice", "msg_image", "msg_file"):
        assert (FIXTURES / f"{required}.xml").exists(), required


@pytest.mark.parametrize("name", FOLLOWS)
async def test_every_follow_is_welcomed(any_bot: Bot, name: str) -> None:
    reply = await any_bot.wx.post_xml(fixture(name))
    assert reply.status == 200 and reply.text == texts.WELCOME, reply.body
    await nothing_stored(any_bot)


@pytest.mark.parametrize("name", SILENT)
async def test_events_not_acted_on_are_acknowledged_silently(any_bot: Bot, name: str) -> None:
    reply = await any_bot.wx.post_xml(fixture(name))
    assert reply.status == 200 and reply.text == "" and reply.body.strip() in ("success", ""), reply.body
    await nothing_stored(any_bot)


@pytest.mark.parametrize("name", MESSAGES)
async def test_what_a_person_sent_gets_the_help(any_bot: Bot, name: str) -> None:
    reply = await any_bot.wx.post_xml(fixture(name))
    assert reply.status == 200 and reply.text == texts.UNSUPPORTED, reply.body


@pytest.mark.parametrize("event", sorted(set(EVENT_TYPES) - ACTED_ON))
async def test_every_event_wechatpy_knows_is_silent(bot: Bot, event: str) -> None:
    """wechatpy's own table: each event type, in the shape the platform sends (device events have their
    own MsgType), gets no text back."""
    fields: dict[str, object] = {"ToUserName": ACCOUNT, "FromUserName": "oEvents", "CreateTime": int(time.time())}
    if event.startswith("device_"):
        fields |= {"MsgType": event, "Event": event.removeprefix("device_"), "DeviceType": "gh_x",
                   "DeviceID": "dev1", "SessionID": "1", "OpenID": "oEvents", "Content": "eA=="}
    else:
        fields |= {"MsgType": "event", "Event": event, "EventKey": ""}
    reply = await bot.wx.post_xml(message_xml(fields))
    assert reply.status == 200 and reply.text == "", (event, reply.body)


@pytest.mark.parametrize("kind", sorted(set(MESSAGE_TYPES) - {"text"}))
async def test_every_message_wechatpy_knows_gets_the_help(bot: Bot, kind: str) -> None:
    xml = message_xml({"ToUserName": ACCOUNT, "FromUserName": "oEvents", "CreateTime": int(time.time()),
                       "MsgType": kind, "MediaId": "m", "MsgId": next(_ids)})
    assert (await bot.wx.post_xml(xml)).text == texts.UNSUPPORTED
