"""Hostile callbacks through the real server, in plain and in safe mode (issue 13): Hypothesis mutates the real
callback bodies of fixtures/wechat/ (random bytes, truncation, garbage values, duplicated or attributed
elements, deep nesting, nested CDATA, DTDs and entities, wrong encodings, huge fields), signs them properly
(and in safe mode encrypts them: a valid signature over a broken body), and checks: never a 5xx, never an
ERROR or traceback in the log, and nothing changes. The long run is bench/fuzz.py; below it, one regression
test per crash that run found."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from bot import texts, webhook
from scoring.models import AuditLog, Base
from tests.bot import flows
from tests.bot.conftest import Bot
from tests.wx import ACCOUNT, cdata, signature

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "wechat").glob("*.xml"))
BODIES = [p.read_text(encoding="utf-8") for p in FIXTURES]
BOOKKEEPING = (b"th:dd:", b"th:nonce:", b"th:rl:", b"th:bindfail:")
# Rows a hostile callback may write by design: a signed, well-formed consent event is WeChat's record of a
# follower's choice; a forged code scanned is kept as a rejected visit (fraud analysis).
BY_DESIGN = {"subscribe_consents", "visits"}
FUZZ_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                HealthCheck.data_too_large])


def fill(body: str, openid: str) -> str:
    return body.replace("OPENID", openid).replace("CREATETIME", str(int(time.time())))


junk = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real callback body, mutated once or twice; or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    xml = fill(draw(st.sampled_from(BODIES)), draw(st.sampled_from(["oFuzz1", "oFuzz2", "", "o" * 200])))
    for _ in range(draw(st.integers(1, 2))):
        tags = [t for t in {m.split(">")[0] for m in xml.split("<")[1:]} if t.isalpha() and t != "xml"] or ["x"]
        tag = draw(st.sampled_from(sorted(tags)))
        op = draw(st.integers(0, 9))
        start, end = xml.find(f"<{tag}>"), xml.find(f"</{tag}>")
        whole = xml[start:end + len(tag) + 3] if start >= 0 and end > start else ""
        if op == 0 and whole:  # garbage value
            xml = xml.replace(whole, f"<{tag}>{cdata(draw(junk))}</{tag}>", 1)
        elif op == 1 and whole:  # repeated element
            xml = xml.replace(whole, whole * draw(st.integers(2, 3)), 1)
        elif op == 2:  # an attribute
            xml = xml.replace(f"<{tag}>", f'<{tag} a="1">', 1)
        elif op == 3:  # children where text is expected, or deep nesting
            depth = draw(st.sampled_from([1, 2, 30, 2000]))
            xml = xml.replace(f"</{tag}>", "<a>" * depth + "x" + "</a>" * depth + f"</{tag}>", 1)
        elif op == 4:  # nested or broken CDATA
            xml = xml.replace("<![CDATA[", draw(st.sampled_from(["<![CDATA[<![CDATA[", "<![CDATA[]]>", "]]>"])), 1)
        elif op == 5:  # DTD and entities
            xml = draw(st.sampled_from(['<!DOCTYPE xml [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>',
                                        '<!doctype xml SYSTEM "file:///etc/passwd">'])) + xml
        elif op == 6:  # truncated
            xml = xml[:draw(st.integers(0, len(xml)))]
        elif op == 7:  # a strange type
            xml = xml.replace("<MsgType><![CDATA[event]]></MsgType>", f"<MsgType>{cdata(draw(junk))}</MsgType>")
        elif op == 8:  # a huge field
            xml = xml.replace(f"</{tag}>", "A" * draw(st.sampled_from([5_000, 200_000])) + f"</{tag}>", 1)
        else:  # numbers out of range
            xml = xml.replace("<CreateTime>", f"<CreateTime>{draw(st.sampled_from(['-', '9' * 40, 'NaN']))}", 1)
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-16", "gbk", "latin-1"]))
    return xml.encode(encoding, errors="replace")


async def post(bot: Bot, body: bytes) -> int:
    """Sign `body` as WeChat would; in safe mode encrypt it (a valid signature over a broken body)."""
    ts, nonce = str(int(time.time())), secrets.token_hex(6)
    q = {"timestamp": ts, "nonce": nonce, "signature": signature(bot.wx.token, ts, nonce)}
    if bot.settings.wechat_aes_key is not None:
        enc = bot.wx._prp.encrypt(body.decode("utf-8", "replace"), bot.wx.appid)  # type: ignore[union-attr]
        enc = enc.decode() if isinstance(enc, bytes) else enc
        q |= {"encrypt_type": "aes", "msg_signature": signature(bot.wx.token, ts, nonce, enc)}
        body = f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName><Encrypt>{cdata(enc)}</Encrypt></xml>".encode()
    return (await bot.wx.post_raw(body, q)).status


async def state(bot: Bot, redis: aioredis.Redis) -> dict[str, str]:
    """A digest of every table (but the by-design ones) and of every Redis key that matters."""
    out = {}
    async with bot.sessions() as s:
        for table in Base.metadata.sorted_tables:
            if table.name in BY_DESIGN:
                continue
            rows = sorted(repr(tuple(r)) for r in (await s.execute(select(table))).all())
            out[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        out["accepted visits"] = str(await s.scalar(text("SELECT COUNT(*) FROM visits WHERE status = 'accepted'")))
    for key in sorted(await redis.keys("*")):
        if not key.startswith(BOOKKEEPING):
            out[key.decode()] = str(await redis.dump(key))
    return out


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.fixture
async def seeded(any_bot: Bot) -> Bot:
    st_ = await flows.station(any_bot, "ST1")
    await flows.talent(any_bot, openid="oT1")
    await flows.operator(any_bot, "oOp1", st_.id)
    return any_bot


@FUZZ_SETTINGS
@given(body=mutated())
async def test_mutated_callbacks_change_nothing_and_never_crash(seeded: Bot, redis: aioredis.Redis,
                                                                caplog: pytest.LogCaptureFixture, body: bytes) -> None:
    caplog.set_level(logging.WARNING)
    before = await state(seeded, redis)
    status = await post(seeded, body)
    assert status in (200, 400, 403, 413), body[:300]
    assert not errors(caplog), body[:300]
    assert await state(seeded, redis) == before, body[:300]


# -- regressions: one per crash bench/fuzz.py found ---------------------------------------------------------


def text_xml(openid: str, content: str, extra: str = "") -> str:
    return (f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName><FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>text</MsgType>{content}"
            f"<MsgId>{secrets.randbelow(10**12)}</MsgId>{extra}</xml>")


def event_xml(openid: str, event: str, inner: str) -> str:
    return (f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName><FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>event</MsgType><Event>{cdata(event)}</Event>"
            f"{inner}</xml>")


@pytest.mark.parametrize("body", [
    # A repeated <Content> became a list: "'list' object has no attribute 'strip'" in the router.
    text_xml("oT1", "<Content>帮助</Content><Content>积分</Content>"),
    # <Content> with children or an attribute became a dict.
    text_xml("oT1", "<Content><a>1</a><b>2</b></Content>"),
    text_xml("oT1", '<Content a="1">帮助</Content>'),
    # A deeply nested EventKey: RecursionError in the de-duplication key (a 500 from aiohttp).
    event_xml("oT1", "CLICK", "<EventKey>" + "<a>" * 2000 + "x" + "</a>" * 2000 + "</EventKey>"),
    # A repeated ScanResult: "unhashable type: 'list'" in the scene dispatch.
    event_xml("oT1", "scancode_waitmsg", "<EventKey>scan</EventKey><ScanCodeInfo><ScanType>qrcode</ScanType>"
              "<ScanResult>st:X:1</ScanResult><ScanResult>st:Y:2</ScanResult></ScanCodeInfo>"),
    # A deep consent list: RecursionError in the consent parser.
    event_xml("oT1", "subscribe_msg_popup_event", "<SubscribeMsgPopupEvent><List><TemplateId>t</TemplateId>"
              "<SubscribeStatusString>" + "<a>" * 3000 + "</a>" * 3000 + "</SubscribeStatusString></List>"
              "</SubscribeMsgPopupEvent>"),
], ids=["repeated-content", "content-children", "content-attribute", "deep-eventkey", "repeated-scanresult",
        "deep-consent"])
async def test_callbacks_of_the_wrong_shape_are_400(any_bot: Bot, caplog: pytest.LogCaptureFixture, body: str
                                                    ) -> None:
    caplog.set_level(logging.WARNING)
    assert await post(any_bot, body.encode()) == 400
    assert not errors(caplog)


def test_shape_check_keeps_real_callbacks() -> None:
    """Every real callback fixture still passes the shape check (structured fields such as SendPicsInfo stay)."""
    for body in BODIES:
        webhook.parse_xml(fill(body, "oT1").encode())


async def test_unbind_by_a_follower_who_is_not_bound_is_audited_as_a_refusal(any_bot: Bot) -> None:
    """Found by bench/fuzz.py: 解绑 from any follower wrote an `action` row, so a flood of them pushed real
    actions out of 审计's view."""
    reply = await any_bot.wx.text("oNobody", "解绑")
    assert reply.status == 200 and reply.text
    async with any_bot.sessions() as s:
        [row] = (await s.scalars(select(AuditLog))).all()
    assert (row.actor, row.outcome, row.kind) == ("oNobody", "refused: not_bound", "refusal")


async def test_service_list_for_a_huge_station_name_is_no_station_not_a_crash(any_bot: Bot,
                                                                               caplog: pytest.LogCaptureFixture
                                                                               ) -> None:
    """Found by bench/fuzz.py: `服务 <300 kB>` made SQLite refuse the LIKE ("pattern too complex"): a crash."""
    caplog.set_level(logging.WARNING)
    await flows.station(any_bot, "ST1")  # LIKE is only evaluated against a row
    await flows.talent(any_bot, openid="oT1")
    huge = "A" * 300_000
    reply = await any_bot.wx.text("oT1", f"服务 {huge}")
    assert reply.status == 200 and reply.text == texts.SERVICES_NO_STATION.format(text=huge[:30])
    assert not errors(caplog)
