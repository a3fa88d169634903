"""Subscription notifications (订阅通知): a follower who accepted the template gets the push by
message/subscribe/bizsend; anyone else as before; a refusal (43101) is recorded and falls back at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select

from scoring import consents
from scoring.consents import Consent
from scoring.db import transaction
from scoring.models import SubscribeConsent
from scoring.settings import Settings
from tests.fake_wechat import FakeWeChat
from tests.worker.test_push import add, row
from worker import push
from worker.wechat_api import WeChatClient

AT = datetime(2026, 11, 20, 4, 0)


@pytest.fixture
def settings(fake_wechat: FakeWeChat) -> Settings:
    return Settings(_env_file=None, wechat_api_base=fake_wechat.base_url, wechat_appid=fake_wechat.appid,
                    wechat_secret=fake_wechat.secret, wechat_templates={"rank": "TMPL-RANK"},
                    wechat_template_notice="")


@pytest.fixture
async def make_client(redis: aioredis.Redis, settings: Settings) -> AsyncIterator[Callable[..., WeChatClient]]:
    clients: list[WeChatClient] = []

    def make(**kwargs: Any) -> WeChatClient:
        opts: dict[str, Any] = {"timeout": 0.3, "connect_timeout": 0.3, "backoff": 0.01, "backoff_cap": 0.05,
                                **kwargs}
        clients.append(WeChatClient.from_settings(settings, redis, **opts))
        return clients[-1]

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
def client(make_client: Callable[..., WeChatClient]) -> WeChatClient:
    return make_client()


async def consent(sessions, openid: str, template_id: str, status: Consent, at: datetime = AT) -> None:
    async with transaction(sessions) as s:
        await consents.record(s, openid, [(template_id, status)], at)


def subscribed(settings, **templates: str):
    return settings.model_copy(update={"wechat_subscribe_templates": templates})


async def test_consenting_talent_gets_a_subscription_notification(sessions, client, settings, fake_wechat):
    settings = subscribed(settings, redeem="SUB-REDEEM")
    await consent(sessions, "oTalent", "SUB-REDEEM", Consent.ACCEPT)
    nid = await add(sessions, "redeem:1", "oTalent", template="redeem", text="兑换成功，取货码 1234",
                    data={"thing1": "茶叶", "character_string2": "1234"}, url="pages/me")
    assert await push.deliver(sessions, client, settings, nid) == "sent"
    (req,) = fake_wechat.calls("subscribe")
    assert req.json == {"touser": "oTalent", "template_id": "SUB-REDEEM", "page": "pages/me",
                        "data": {"thing1": {"value": "茶叶"}, "character_string2": {"value": "1234"}}}
    assert req.delivered and fake_wechat.calls("template") == [] and fake_wechat.calls("custom") == []
    assert (await row(sessions, nid)).status == "sent"


async def test_without_consent_the_push_goes_as_before(sessions, client, settings, fake_wechat):
    settings = subscribed(settings, rank="SUB-RANK")
    await consent(sessions, "oRejected", "SUB-RANK", Consent.REJECT)
    await consent(sessions, "oOther", "SUB-OTHER", Consent.ACCEPT)  # accepted another template only
    for openid in ("oNever", "oRejected", "oOther"):
        nid = await add(sessions, f"rank:{openid}", openid, template="rank", text="进入前三", data={"k": "v"})
        assert await push.deliver(sessions, client, settings, nid) == "sent"
    assert fake_wechat.calls("subscribe") == []
    assert [r.json["touser"] for r in fake_wechat.calls("template")] == ["oNever", "oRejected", "oOther"]


async def test_general_notice_template_carries_the_text(sessions, client, settings, fake_wechat):
    settings = subscribed(settings, notice="SUB-NOTICE")
    await consent(sessions, "oTalent", "SUB-NOTICE", Consent.ACCEPT)
    text = "您的打卡积分因风险核查暂缓入账，请耐心等待核查结果"
    nid = await add(sessions, "hold:1", "oTalent", template="hold", text=text)
    assert await push.deliver(sessions, client, settings, nid) == "sent"
    (req,) = fake_wechat.calls("subscribe")
    assert req.json["template_id"] == "SUB-NOTICE"
    assert req.json["data"] == {"thing1": {"value": text[:20]}}  # a "thing" field holds 20 characters


async def test_refused_subscription_falls_back_and_is_remembered(sessions, client, settings, fake_wechat):
    settings = subscribed(settings, rank="SUB-RANK")
    await consent(sessions, "oGone", "SUB-RANK", Consent.ACCEPT)
    fake_wechat.refused_subscribe.add("oGone")
    nid = await add(sessions, "rank:1", "oGone", template="rank", text="进入前三", data={"k": "v"})
    assert await push.deliver(sessions, client, settings, nid) == "sent"
    assert [r.reply["errcode"] for r in fake_wechat.calls("subscribe")] == [43101]
    assert [r.json["template_id"] for r in fake_wechat.calls("template")] == ["TMPL-RANK"]
    async with sessions() as s:
        assert await s.scalar(select(SubscribeConsent.status).where(SubscribeConsent.openid == "oGone")) == "reject"
    nid = await add(sessions, "rank:2", "oGone", template="rank", text="进入前二", data={"k": "v"})
    assert await push.deliver(sessions, client, settings, nid) == "sent"
    assert len(fake_wechat.calls("subscribe")) == 1  # not asked again


async def test_transient_failure_is_retried_not_sent_twice(sessions, make_client, settings, fake_wechat):
    settings = subscribed(settings, rank="SUB-RANK")
    await consent(sessions, "oTalent", "SUB-RANK", Consent.ACCEPT)
    fake_wechat.script("message/subscribe/bizsend", 45009)
    nid = await add(sessions, "rank:1", "oTalent", template="rank", text="进入前三", data={"k": "v"})
    assert await push.deliver(sessions, make_client(retries=0), settings, nid) == "retry"
    assert fake_wechat.calls("template") == [] and fake_wechat.calls("custom") == []


async def test_latest_answer_wins(sessions):
    await consent(sessions, "oT", "SUB", Consent.ACCEPT, datetime(2026, 11, 20, 4, 0))
    await consent(sessions, "oT", "SUB", Consent.REJECT, datetime(2026, 11, 20, 5, 0))
    await consent(sessions, "oT", "SUB", Consent.ACCEPT, datetime(2026, 11, 20, 4, 30))  # a late retry
    async with sessions() as s:
        assert await consents.accepted(s, "oT", ["SUB"]) == set()
    await consent(sessions, "oT", "SUB", Consent.ACCEPT, datetime(2026, 11, 20, 6, 0))
    async with sessions() as s:
        assert await consents.accepted(s, "oT", ["SUB", "OTHER"]) == {"SUB"}
