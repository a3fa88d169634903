"""Subscription-notification consent from WeChat's subscribe_msg_* events: recorded per template,
acknowledged silently, the latest answer winning by the event's time."""

from __future__ import annotations

import time

from sqlalchemy import select

from scoring.models import SubscribeConsent
from tests.bot.conftest import Bot
from tests.bot.test_events import fixture


async def stored(bot: Bot) -> dict[tuple[str, str], str]:
    async with bot.sessions() as s:
        rows = (await s.scalars(select(SubscribeConsent))).all()
    return {(r.openid, r.template_id): r.status for r in rows}


def at(xml: str, created: int) -> str:
    return xml.replace(f"<CreateTime>{int(time.time())}</CreateTime>", f"<CreateTime>{created}</CreateTime>")


async def test_popup_change_and_refused_send_are_recorded(any_bot: Bot) -> None:
    now = int(time.time())
    reply = await any_bot.wx.post_xml(at(fixture("subscribe_msg_popup", "oT1"), now - 100))
    assert reply.status == 200 and reply.text == ""
    assert await stored(any_bot) == {("oT1", "TPL_ACCEPT"): "accept", ("oT1", "TPL_REJECT"): "reject"}
    assert (await any_bot.wx.post_xml(at(fixture("subscribe_msg_change", "oT1"), now - 50))).text == ""
    assert await stored(any_bot) == {("oT1", "TPL_ACCEPT"): "reject", ("oT1", "TPL_REJECT"): "reject"}
    # an older pop-up arriving late (a retry) does not undo the newer change
    await any_bot.wx.post_xml(at(fixture("subscribe_msg_popup", "oT1"), now - 80))
    assert (await stored(any_bot))[("oT1", "TPL_ACCEPT")] == "reject"
    # a successful send changes nothing; one refused with 43101 is a reject
    await any_bot.wx.post_xml(fixture("subscribe_msg_popup", "oT2"))
    assert (await any_bot.wx.post_xml(fixture("subscribe_msg_sent", "oT2"))).text == ""
    assert (await stored(any_bot))[("oT2", "TPL_ACCEPT")] == "accept"
    refused = fixture("subscribe_msg_sent", "oT2").replace("<ErrorCode>0</ErrorCode>", "<ErrorCode>43101</ErrorCode>")
    await any_bot.wx.post_xml(at(refused, now + 5))
    assert (await stored(any_bot))[("oT2", "TPL_ACCEPT")] == "reject"


async def test_malformed_consent_events_change_nothing(bot: Bot) -> None:
    odd = fixture("subscribe_msg_popup", "oT3")
    for broken in (odd.replace("<TemplateId><![CDATA[TPL_ACCEPT]]></TemplateId>", ""),
                   odd.replace("accept", "maybe").replace("reject", "perhaps"),
                   odd.replace("SubscribeMsgPopupEvent", "SomethingElse")):
        reply = await bot.wx.post_xml(broken)
        assert reply.status == 200 and reply.text == ""
    assert await stored(bot) == {("oT3", "TPL_REJECT"): "reject"}  # only the one well-formed answer
