"""The callback protocol (SPEC 5-6, issue 3) in plain and safe mode, through a real server on loopback."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from bot import texts
from scoring.models import AuditLog, Talent
from tests.bot.conftest import Bot
from tests.wx import ACCOUNT, message_xml

CJK = "帮"


def text_xml(openid: str, content: str, msg_id: int) -> str:
    return message_xml({"ToUserName": ACCOUNT, "FromUserName": openid, "CreateTime": int(time.time()),
                        "MsgType": "text", "Content": content, "MsgId": msg_id})


async def test_url_verification(any_bot: Bot) -> None:
    assert await any_bot.wx.verify_url("echo-42") == (200, "echo-42")
    status, body = await any_bot.wx.verify_url("echo-42", bad=True)
    assert status == 403 and "echo-42" not in body


async def test_help_reply_is_chinese_and_addressed_back(any_bot: Bot) -> None:
    reply = await any_bot.wx.text("oUser1", "帮助")
    assert reply.status == 200
    assert reply.fields["ToUserName"] == "oUser1" and reply.fields["FromUserName"] == ACCOUNT
    assert reply.fields["MsgType"] == "text" and reply.text == texts.HELP


async def test_english_alias_is_case_insensitive(bot: Bot) -> None:
    assert (await bot.wx.text("oUser1", "HELP")).text == texts.HELP


async def test_unknown_word_gets_a_hint(any_bot: Bot) -> None:
    reply = await any_bot.wx.text("oUser1", "qwerty 不认识")
    assert reply.status == 200 and "帮助" in reply.text and "qwerty" in reply.text


async def test_bad_signature_is_403_and_changes_nothing(any_bot: Bot) -> None:
    reply = await any_bot.wx.post_xml(text_xml("oUser1", "绑定 QZ1 张三", any_bot.wx.next_msg_id()), bad=True)
    assert reply.status == 403
    async with any_bot.sessions() as s:
        assert await s.scalar(select(func.count(Talent.id)).where(Talent.openid.is_not(None))) == 0


async def test_missing_signature_is_403(bot: Bot) -> None:
    reply = await bot.wx.post_raw(text_xml("oUser1", "帮助", 1), {"timestamp": str(int(time.time()))})
    assert reply.status == 403


async def test_stale_and_future_timestamps_are_403(any_bot: Bot) -> None:
    for ts in (int(time.time()) - 3600, int(time.time()) + 3600):
        reply = await any_bot.wx.post_xml(text_xml("oUser1", "帮助", any_bot.wx.next_msg_id()), timestamp=ts)
        assert reply.status == 403


async def test_reused_nonce_with_other_body_is_403_same_body_is_a_retry(bot: Bot) -> None:
    q = bot.wx.query(nonce="12345")
    first = text_xml("oUser1", "帮助", 111)
    assert (await bot.wx.post_raw(first, q)).status == 200
    assert (await bot.wx.post_raw(first, q)).status == 200
    forged = text_xml("oUser1", "积分", 112)
    assert (await bot.wx.post_raw(forged, q)).status == 403


async def test_malformed_xml_is_400(any_bot: Bot) -> None:
    assert (await any_bot.wx.post_xml("<xml><ToUserName>broken")).status == 400
    assert (await any_bot.wx.post_xml("not xml at all")).status == 400
    assert (await any_bot.wx.post_xml("<xml><FromUserName>a</FromUserName></xml>")).status == 400


async def test_body_over_one_mebibyte_is_413(any_bot: Bot) -> None:
    big = text_xml("oUser1", CJK * 400_000, any_bot.wx.next_msg_id())
    assert (await any_bot.wx.post_xml(big)).status == 413


async def test_billion_laughs_is_refused_fast(any_bot: Bot) -> None:
    lol = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
           + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                     for i in range(1, 10))
           + ']><xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>'
             '<MsgType>text</MsgType><Content>&lol9;</Content><MsgId>1</MsgId></xml>')
    started = time.perf_counter()
    reply = await any_bot.wx.post_xml(lol)
    assert reply.status == 400
    assert time.perf_counter() - started < 2


async def test_external_entity_is_not_resolved(any_bot: Bot) -> None:
    xxe = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           '<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>'
           '<MsgType>text</MsgType><Content>&e;</Content><MsgId>77</MsgId></xml>')
    reply = await any_bot.wx.post_xml(xxe)
    assert reply.status == 400 and "root:" not in reply.body


async def test_unhandled_event_is_acknowledged(any_bot: Bot) -> None:
    reply = await any_bot.wx.event("oUser1", "LOCATION", Latitude="24.874", Longitude="118.675", Precision="65")
    assert reply.status == 200 and reply.fields.get("Content", "") == ""


async def test_non_text_message_gets_a_hint(bot: Bot) -> None:
    xml = message_xml({"ToUserName": ACCOUNT, "FromUserName": "oUser1", "CreateTime": int(time.time()),
                       "MsgType": "image", "PicUrl": "http://x/y.jpg", "MediaId": "m", "MsgId": 5})
    assert (await bot.wx.post_xml(xml)).text == texts.UNSUPPORTED


async def test_retries_get_the_first_answer(any_bot: Bot) -> None:
    msg_id, created = any_bot.wx.next_msg_id(), int(time.time())
    answers = await asyncio.gather(*[any_bot.wx.text("oUser1", "帮助", msg_id=msg_id, create_time=created)
                                     for _ in range(3)])
    assert [a.status for a in answers] == [200, 200, 200]
    assert {a.text for a in answers} == {texts.HELP}


async def test_user_text_with_cdata_end_is_escaped(bot: Bot) -> None:
    reply = await bot.wx.text("oUser1", "abc]]><evil>x</evil>")
    assert reply.status == 200
    assert "abc]]><evil>" in reply.text  # the hint echoes the word intact, XML still well-formed


async def test_healthz(bot: Bot) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(bot.url.replace("/wechat", "/healthz")) as r:
        assert r.status == 200
        assert await r.json() == {"database": "ok", "redis": "ok"}


async def test_no_audit_row_for_refused_posts(bot: Bot) -> None:
    await bot.wx.post_xml("<xml><ToUserName>broken")
    async with bot.sessions() as s:
        assert await s.scalar(select(func.count(AuditLog.id))) == 0
