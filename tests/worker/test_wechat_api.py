"""The WeChat API client against the fake WeChat on loopback and a real Redis. (Two real worker processes
sharing one token: tests/worker/test_push.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.fake_wechat import FakeWeChat, Reply
from worker.wechat_api import SHOW_QR_URL, GiveUp, Retry, Sent, WeChatClient

MakeClient = Callable[..., WeChatClient]


@pytest.fixture
async def make_client(redis: aioredis.Redis, fake_wechat: FakeWeChat) -> AsyncIterator[MakeClient]:
    """Clients with short timeouts and fast backoff; all closed at the end."""
    clients: list[WeChatClient] = []

    def make(**kwargs: Any) -> WeChatClient:
        opts: dict[str, Any] = {"appid": fake_wechat.appid, "secret": fake_wechat.secret,
                                "base_url": fake_wechat.base_url, "timeout": 0.3, "connect_timeout": 0.3,
                                "backoff": 0.01, "backoff_cap": 0.05}
        opts.update(kwargs)
        client = WeChatClient(redis, **opts)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_token_fetched_once_and_shared_between_clients(make_client, fake_wechat, redis):
    fake_wechat.script("token", Reply(delay=0.1))  # a slow token endpoint: everyone arrives while it works
    a, b = make_client(), make_client()
    outcomes = await asyncio.gather(*(c.send_text(f"o{i}", "你好") for i in range(10) for c in (a, b)))
    assert all(isinstance(o, Sent) for o in outcomes)
    assert fake_wechat.tokens_issued == 1 and len(fake_wechat.calls("token")) == 1
    assert len(fake_wechat.delivered("custom")) == 20
    ttl = await redis.ttl(a.token_key)
    assert 0 < ttl <= 7200 - 300
    assert await redis.get(a.lock_key) is None  # released


@pytest.mark.parametrize("errcode", [40001, 42001, 40014])
async def test_token_error_refreshes_once_and_resends_once(make_client, fake_wechat, errcode):
    client = make_client()
    fake_wechat.script("custom", errcode)
    assert isinstance(await client.send_text("o1", "你好"), Sent)
    tokens = fake_wechat.calls("token")
    assert [r.json["force_refresh"] for r in tokens] == [False, True]
    sends = fake_wechat.calls("custom")
    assert [r.query["access_token"] for r in sends] == ["TOKEN-1", "TOKEN-2"]
    assert len(fake_wechat.delivered("custom")) == 1


async def test_token_revoked_under_many_calls_is_refreshed_once(make_client, fake_wechat):
    a, b = make_client(), make_client()
    await a.access_token()
    fake_wechat.revoke_token()  # every call with TOKEN-1 now gets a genuine 40001
    outcomes = await asyncio.gather(*(c.send_text(f"o{i}", "你好") for i in range(10) for c in (a, b)))
    assert all(isinstance(o, Sent) for o in outcomes)
    assert fake_wechat.tokens_issued == 2  # the first one, and one refresh for all twenty calls
    assert len(fake_wechat.delivered("custom")) == 20


async def test_token_still_rejected_after_refresh_is_a_retry(make_client, fake_wechat):
    fake_wechat.script("custom", 40001, 40001)
    outcome = await make_client().send_text("o1", "你好")
    assert isinstance(outcome, Retry) and "40001" in outcome.reason
    assert len(fake_wechat.calls("custom")) == 2 and fake_wechat.tokens_issued == 2


async def test_rate_limit_5xx_and_timeout_back_off_then_recover(make_client, fake_wechat):
    fake_wechat.script("template", 45009, Reply(status=500), Reply(delay=0.6), -1)
    started = time.monotonic()
    outcome = await make_client(retries=4).send_template("o1", "TMPL", {"first": "你好"})
    assert isinstance(outcome, Sent)
    assert len(fake_wechat.calls("template")) == 5
    assert len(fake_wechat.delivered("template")) == 1
    assert time.monotonic() - started < 2


async def test_bounded_retries_end_in_a_retry_outcome(make_client, fake_wechat):
    fake_wechat.script("custom", 45009, 45009, 45009)
    outcome = await make_client(retries=1).send_text("o1", "你好")
    assert isinstance(outcome, Retry) and outcome.after > 0 and "45009" in outcome.reason
    assert len(fake_wechat.calls("custom")) == 2


@pytest.mark.parametrize(("errcode", "words"), [(43004, "follow"), (45015, "window"), (45047, "quota"),
                                                (40003, "40003")])
async def test_permanent_errors_give_up_without_retrying(make_client, fake_wechat, errcode, words):
    fake_wechat.script("custom", errcode)
    outcome = await make_client().send_text("o1", "你好")
    assert isinstance(outcome, GiveUp) and outcome.errcode == errcode and words in outcome.reason
    assert len(fake_wechat.calls("custom")) == 1


async def test_bad_secret_is_a_retry_without_hammering_the_token_endpoint(make_client, fake_wechat):
    outcome = await make_client(secret="wrong").send_text("o1", "你好")
    assert isinstance(outcome, Retry) and "40125" in outcome.reason
    assert len(fake_wechat.calls("token")) == 1 and not fake_wechat.calls("custom")


async def test_unreachable_api_is_a_retry_at_once(make_client):
    started = time.monotonic()
    outcome = await make_client(base_url="http://127.0.0.1:9/", retries=3, backoff=1.0).send_text("o1", "你好")
    assert isinstance(outcome, Retry) and "cannot connect" in outcome.reason
    assert time.monotonic() - started < 1  # no in-call backoff: the outbox retries later


async def test_dead_lock_holder_delays_but_does_not_block_the_refresh(make_client, fake_wechat, redis):
    client = make_client()
    await redis.set(client.lock_key, "someone-who-died", px=300)
    started = time.monotonic()
    assert await client.access_token() == "TOKEN-1"
    assert time.monotonic() - started >= 0.2
    assert fake_wechat.tokens_issued == 1


async def test_qr_code_create(make_client, fake_wechat):
    outcome = await make_client().create_qr("st:S0001:abc.def", 600)
    assert isinstance(outcome, Sent)
    ticket = outcome.data["ticket"]
    assert "+" in ticket and "/" in ticket  # needs quoting in the URL
    assert outcome.data["url"] == SHOW_QR_URL + ticket.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert outcome.data["expire_seconds"] == 600 and outcome.data["content"].startswith("http://weixin.qq.com/q/")
    (req,) = fake_wechat.calls("qr")
    assert req.json == {"expire_seconds": 600, "action_name": "QR_STR_SCENE",
                        "action_info": {"scene": {"scene_str": "st:S0001:abc.def"}}}


async def test_messages_are_sent_as_raw_utf8(make_client, fake_wechat):
    await make_client().send_template("o1", "TMPL", {"first": "排名上升", "remark": {"value": "好", "color": "#f00"}},
                                      url="https://example.org/a")
    (req,) = fake_wechat.calls("template")
    assert "排名上升".encode() in req.raw and b"\\u" not in req.raw
    assert req.json == {"touser": "o1", "template_id": "TMPL", "url": "https://example.org/a",
                        "data": {"first": {"value": "排名上升"}, "remark": {"value": "好", "color": "#f00"}}}
