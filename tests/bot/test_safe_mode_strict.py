"""Safe mode means encrypted: with an AES key configured a plain callback signed with the token alone is
refused and changes nothing (unless WECHAT_COMPATIBLE_MODE=1); a signed plain body that is not UTF-8 is 400."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot import texts
from scoring.models import Talent
from tests.bot import flows
from tests.bot.conftest import AES_KEY, Bot, start_bot
from tests.wx import ACCOUNT, WeChatSim, message_xml


def bind_xml(openid: str, content: str) -> str:
    return message_xml({"ToUserName": ACCOUNT, "FromUserName": openid, "CreateTime": int(time.time()),
                        "MsgType": "text", "Content": content, "MsgId": WeChatSim.next_msg_id()})


async def bound_openid(bot: Bot, cert_no: str) -> str | None:
    async with bot.sessions() as s:
        return await s.scalar(select(Talent.openid).where(Talent.cert_no == cert_no))


@pytest.fixture
async def compatible_bot(sqlite_url: str, redis_url: str) -> AsyncIterator[Bot]:
    async for b in start_bot(sqlite_url, redis_url, wechat_aes_key=AES_KEY, wechat_compatible_mode=True):
        yield b


async def test_plain_callback_refused_in_safe_mode(safe_bot: Bot) -> None:
    await flows.talent(safe_bot, "QZ2026001", name="张三")
    forged = await safe_bot.wx.post_raw(bind_xml("oMadeUp", "绑定 QZ2026001 张三"), safe_bot.wx.query())
    assert forged.status == 403 and "<xml" not in forged.body
    assert await bound_openid(safe_bot, "QZ2026001") is None
    assert await safe_bot.queued_jobs() == []
    # the same words, encrypted as WeChat sends them in safe mode, bind
    assert (await safe_bot.wx.text("oReal", "绑定 QZ2026001 张三")).text == texts.BIND_OK.format(name="张三")
    assert await bound_openid(safe_bot, "QZ2026001") == "oReal"


async def test_compatible_mode_accepts_both(compatible_bot: Bot) -> None:
    await flows.talent(compatible_bot, "QZ1", name="张三")
    await flows.talent(compatible_bot, "QZ2", name="李四")
    plain = await compatible_bot.wx.post_raw(bind_xml("oPlain", "绑定 QZ1 张三"), compatible_bot.wx.query())
    assert plain.status == 200 and texts.BIND_OK.format(name="张三") in plain.body
    assert (await compatible_bot.wx.text("oAes", "绑定 QZ2 李四")).text == texts.BIND_OK.format(name="李四")
    assert (await bound_openid(compatible_bot, "QZ1"), await bound_openid(compatible_bot, "QZ2")) == ("oPlain", "oAes")


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0" encoding="GBK"?>' + bind_xml("oGbk", "绑定 QZ1 张三").encode("gbk"),
    '<?xml version="1.0" encoding="ISO-8859-1"?><xml><ToUserName>a</ToUserName><FromUserName>o\xe9</FromUserName>'
    '<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>'.encode("latin-1"),
    b"<xml><ToUserName>a</ToUserName><FromUserName>o\xff\xfe</FromUserName><MsgType>text</MsgType></xml>",
], ids=["gbk", "latin-1", "invalid-bytes"])
async def test_signed_plain_body_not_utf8_is_400(bot: Bot, body: bytes) -> None:
    await flows.talent(bot, "QZ1", name="张三")
    reply = await bot.wx.post_raw(body, bot.wx.query())
    assert reply.status == 400 and "Traceback" not in reply.body
    assert await bound_openid(bot, "QZ1") is None
    assert await bot.queued_jobs() == []
