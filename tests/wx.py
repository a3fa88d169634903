"""An async stand-in for WeChat's servers in tests: signs (and in safe mode encrypts) callbacks the way the
official-account platform does and reads the replies back. Built from the platform's documented formats;
wechatpy's cipher is used only to encrypt and to decrypt replies."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from wechatpy.crypto import PrpCrypto

ACCOUNT = "gh_talenthome0001"
_msg_ids = itertools.count(int(time.time() * 1000) * 1000)


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(fields: dict[str, Any]) -> str:
    def render(d: dict[str, Any]) -> str:
        out = []
        for k, v in d.items():
            if isinstance(v, dict):
                out.append(f"<{k}>{render(v)}</{k}>")
            elif isinstance(v, int):
                out.append(f"<{k}>{v}</{k}>")
            else:
                out.append(f"<{k}>{cdata(str(v))}</{k}>")
        return "".join(out)

    return "<xml>" + render(fields) + "</xml>"


def parse_reply(body: str) -> dict[str, str]:
    root = ET.fromstring(body)
    return {child.tag: (child.text or "") for child in root}


@dataclass
class Reply:
    status: int
    body: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.fields.get("Content", "")


@dataclass
class WeChatSim:
    url: str
    token: str
    appid: str
    aes_key: str | None = None
    session: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        self._prp = PrpCrypto(base64.b64decode(self.aes_key + "=")) if self.aes_key else None

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        return self.session

    def query(self, encrypted: str | None = None, *, timestamp: int | None = None, nonce: str | None = None,
              bad: bool = False) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or str(secrets.randbelow(10**9))
        q = {"timestamp": ts, "nonce": nonce, "signature": signature(self.token, ts, nonce), "openid": "x"}
        if encrypted is not None:
            q["encrypt_type"] = "aes"
            q["msg_signature"] = signature(self.token, ts, nonce, encrypted)
        if bad:
            q["signature"] = "0" * 40
            if "msg_signature" in q:
                q["msg_signature"] = "0" * 40
        return q

    async def verify_url(self, echostr: str = "echo-1", bad: bool = False) -> tuple[int, str]:
        q = self.query(bad=bad) | {"echostr": echostr}
        async with self._http().get(self.url, params=q) as r:
            return r.status, await r.text()

    async def post_raw(self, body: bytes | str, query: dict[str, str]) -> Reply:
        data = io.BytesIO(body.encode() if isinstance(body, str) else body)
        async with self._http().post(self.url, params=query, data=data,
                                     headers={"Content-Type": "text/xml"}) as r:
            return Reply(r.status, await r.text())

    async def post_xml(self, xml: str, *, bad: bool = False, timestamp: int | None = None,
                       nonce: str | None = None) -> Reply:
        if self._prp is not None:
            enc = self._prp.encrypt(xml, self.appid)
            enc = enc.decode() if isinstance(enc, bytes) else enc
            body = message_xml({"ToUserName": ACCOUNT, "Encrypt": enc})
            q = self.query(enc, timestamp=timestamp, nonce=nonce, bad=bad)
        else:
            body, q = xml, self.query(timestamp=timestamp, nonce=nonce, bad=bad)
        reply = await self.post_raw(body, q)
        stripped = reply.body.strip()
        if reply.status == 200 and stripped.startswith("<"):
            fields = parse_reply(stripped)
            if self._prp is not None and "Encrypt" in fields:
                expect = signature(self.token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
                assert fields["MsgSignature"] == expect, "encrypted reply carries a wrong MsgSignature"
                plain = self._prp.decrypt(fields["Encrypt"], self.appid)
                fields = parse_reply(plain.decode() if isinstance(plain, bytes) else plain)
            reply.fields = fields
        return reply

    @staticmethod
    def next_msg_id() -> int:
        return next(_msg_ids)

    async def text(self, openid: str, content: str, *, msg_id: int | None = None,
                   create_time: int | None = None) -> Reply:
        return await self.post_xml(message_xml({
            "ToUserName": ACCOUNT, "FromUserName": openid, "CreateTime": create_time or int(time.time()),
            "MsgType": "text", "Content": content, "MsgId": msg_id or self.next_msg_id()}))

    async def event(self, openid: str, event: str, event_key: str | None = None, *,
                    create_time: int | None = None, **extra: Any) -> Reply:
        fields: dict[str, Any] = {"ToUserName": ACCOUNT, "FromUserName": openid,
                                  "CreateTime": create_time or int(time.time()), "MsgType": "event", "Event": event}
        if event_key is not None:
            fields["EventKey"] = event_key
        if event in ("SCAN", "subscribe") and event_key:
            fields["Ticket"] = "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2tUZWtpeTdsdW5zT0c"
        fields.update(extra)
        return await self.post_xml(message_xml(fields))

    async def scan(self, openid: str, scene: str, *, first_follow: bool = False,
                   create_time: int | None = None) -> Reply:
        if first_follow:
            return await self.event(openid, "subscribe", "qrscene_" + scene, create_time=create_time)
        return await self.event(openid, "SCAN", scene, create_time=create_time)

    async def scancode(self, openid: str, result: str, *, menu_key: str = "scan_talent",
                       create_time: int | None = None) -> Reply:
        return await self.event(openid, "scancode_waitmsg", menu_key, create_time=create_time,
                                ScanCodeInfo={"ScanType": "qrcode", "ScanResult": result})
