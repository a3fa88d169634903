"""Fuzz the WeChat callback and the JSON API of a real bot process (issue 13, "Hostile and unlucky traffic").

Two `talenthome serve` processes on loopback, one in plain mode and one in safe (AES) mode, on one SQLite file
filled by `talenthome demo` and one private Redis; WeChat's HTTP API is the fake from tests/fake_wechat.py (the
mini program's logins). For `--minutes N` a handful of concurrent clients send:

- callbacks (`POST /wechat`, both modes) mutated from the real callback bodies in tests/bot/fixtures/wechat/:
  random bytes, truncation, byte flips, wrong encodings (UTF-16, GBK, Latin-1, a lying XML declaration),
  huge fields, deep nesting, nested and broken CDATA, duplicated and attributed elements, DOCTYPE / entity
  bombs, and garbage field values (MsgType, Event, EventKey, CreateTime, MsgId, scene strings, bot words
  with absurd ids). Most carry a valid signature (the fuzzer knows the token and the AES key: in safe mode
  a broken body is encrypted and signed properly), a few a wrong or stale one;
- the JSON API (`/api/v1/...`): wrong methods, unknown and repeated query parameters, bad values (huge,
  negative, unicode digits, control characters), unknown codes and ids, bad JSON bodies (deeply nested,
  truncated, wrong types), and bad, forged, expired or valid-but-unbound bearer tokens and cookies.

It checks: no 5xx and no timeout, no traceback and no ERROR in the bots' logs, and no state change: a digest
of every table of the database and of the Redis keys that matter (all but the callback's own bookkeeping:
de-duplication `th:dd:*`, nonces `th:nonce:*`, rate-limit counters `th:rl:*`) is the same before and after.
The only rows a fuzzed request may legitimately write are subscription-consent answers
(`subscribe_consents`): a well-formed, signed consent event is WeChat's record of a follower's choice,
whatever its template id; they are counted and reported apart.

    .venv/bin/python bench/fuzz.py --minutes 10          # writes the "Fuzz" section of BENCHMARKS.md
    .venv/bin/python bench/fuzz.py --minutes 1 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import glob
import hashlib
import json
import os
import random
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import aiohttp  # noqa: E402
import redis  # noqa: E402

from bench.common import format_table, loadavg, replace_section, stop_on_sigterm, temp_dir  # noqa: E402
from bench.webhook import stop_server, wait_healthy  # noqa: E402
from talenthome.servers import RedisServer, free_port  # noqa: E402

HEADING = "## Fuzz"
TOKEN = "fuzztoken"
APPID = "wxfuzz0000000001"
SECRET = "fuzzsecret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_talenthome0001"
FIXTURES = os.path.join(ROOT, "tests", "bot", "fixtures", "wechat")
# Redis keys every callback writes by design, and the failed-bind counter (a guess of a cert number counts)
BOOKKEEPING = ("th:dd:", "th:nonce:", "th:rl:", "th:bindfail:")
LOG_BAD = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")
WORDS = ("绑定", "bind", "解绑", "活动", "报名", "signup", "取消", "积分", "排名", "礼品", "兑换", "redeem", "我的码",
         "帮助", "服务", "预约", "1", "5", "0", "6", "-1")
# Words that change state whatever their argument (解绑 unbinds, 咨询 <any text> asks a question): only from
# openids that are not bound, so that a legitimate change is not mistaken for a finding.
FREE_WORDS = ("解绑", "unbind", "咨询", "ask")


# -- the world ------------------------------------------------------------------------------------------------


@dataclass
class World:
    """What the fuzzer knows of the seeded database: real openids, codes and ids to aim near."""

    talents: list[str]
    stations: list[str]
    max_id: int
    scene_key: bytes


def seed(env: dict[str, str], folder: str) -> None:
    for cmd in (["migrate"], ["demo", "--seed", "1"]):
        subprocess.run([sys.executable, "-m", "talenthome.cli", *cmd], env=env, cwd=folder, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)


def world_of(db_path: str, scene_key: bytes) -> World:
    with sqlite3.connect(db_path) as db:
        staff = {r[0] for r in db.execute("SELECT openid FROM staff")}
        talents = [r[0] for r in db.execute("SELECT openid FROM talents WHERE openid IS NOT NULL")
                   if r[0] not in staff]
        stations = [r[0] for r in db.execute("SELECT code FROM stations")]
        max_id = max(int(db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {t}").fetchone()[0])
                     for t in ("activities", "gifts", "stations", "talents", "visits"))
    return World(talents, stations, max_id, scene_key)


# -- state ----------------------------------------------------------------------------------------------------


def db_rows(db_path: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as dicts (to tell what changed)."""
    out = {}
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                           " AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        for t in tables:
            out[t] = [dict(r) for r in db.execute(f'SELECT * FROM "{t}"')]
    return out


def row_changes(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]
                ) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Per changed table: (rows gone or changed, rows new or changed)."""
    out = {}
    for t in sorted(set(before) | set(after)):
        b = {repr(sorted(r.items())): r for r in before.get(t, [])}
        a = {repr(sorted(r.items())): r for r in after.get(t, [])}
        gone, new = [b[k] for k in b.keys() - a.keys()], [a[k] for k in a.keys() - b.keys()]
        if gone or new:
            out[t] = (gone, new)
    return out


def legitimate(table: str, gone: list[dict[str, Any]], new: list[dict[str, Any]]) -> str | None:
    """Why these changes are what a hostile request may cause by design, or None.

    - subscribe_consents: a well-formed, signed consent event is WeChat's record of a follower's choice;
    - visits: new rows that are all `rejected` (a forged or stale code scanned by a bound talent is kept, with its
      reason, for fraud analysis; ARCHITECTURE "A check-in" step 4), no points;
    - audit_log: new rows that are all refusals (a staff word tried by a talent: "exactly one row per command").
    """
    if table == "subscribe_consents":
        return "consent answers from well-formed signed consent events"
    if table == "visits" and not gone and all(r["status"] == "rejected" for r in new):
        return "rejected scans kept for fraud analysis: " + ", ".join(
            f"{k} {v}" for k, v in collections.Counter(r["reason"] for r in new).most_common())
    if table == "audit_log" and not gone and all(r.get("kind") == "refusal" for r in new):
        return "refused staff words, audited"
    return None


def redis_digest(url: str) -> dict[str, str]:
    client = redis.Redis.from_url(url)
    out = {}
    try:
        for key in client.scan_iter(count=1000):
            name = key.decode(errors="replace")
            if name.startswith(BOOKKEEPING):
                continue
            kind = client.type(key).decode()
            value: Any
            if kind == "string":
                value = client.get(key)
            elif kind == "hash":
                value = sorted(client.hgetall(key).items())
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                value = sorted(client.smembers(key))
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            else:
                value = kind
            out[name] = hashlib.sha256(repr(value).encode()).hexdigest()
    finally:
        client.close()
    return out


# -- callbacks ------------------------------------------------------------------------------------------------


def _sig(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _junk(rng: random.Random, n: int | None = None) -> str:
    n = rng.randint(0, 40) if n is None else n
    pools = ("abcXYZ019 ", "\u4eba\u624d\u4e4b\u5bb6\u79ef\u5206", "\x00\x01\x1f\x7f", "<>&'\"]]>",
             "\U0001f600\u202e\ufeff\u200b", "０１２３٣٤", "\ue000")
    return "".join(rng.choice(rng.choice(pools)) for _ in range(n))


def _absurd_id(rng: random.Random) -> str:
    digits = rng.choice(("0123456789", "０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩"))
    return rng.choice(("-", "", "+", "#", "")) + "".join(rng.choice(digits) for _ in range(rng.randint(12, 40)))


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


class Callbacks:
    """Mutated callback bodies and their signed queries."""

    def __init__(self, rng: random.Random, world: World):
        self.rng, self.world = rng, world
        self.fixtures = [open(p, encoding="utf-8").read() for p in sorted(glob.glob(os.path.join(FIXTURES, "*.xml")))]
        from wechatpy.crypto import PrpCrypto

        self.prp = PrpCrypto(base64.b64decode(AES_KEY + "="))

    def openid(self) -> str:
        rng = self.rng
        if rng.random() < 0.5 and self.world.talents:
            return rng.choice(self.world.talents)
        return rng.choice(("oFuzz" + secrets.token_hex(4), _junk(rng), "", "o" * rng.randint(1, 3000)))

    def fixture(self) -> str:
        now = int(time.time())
        base = self.rng.choice(self.fixtures)
        return base.replace("OPENID", self.openid().replace("]]>", "")).replace("CREATETIME", str(now))

    def text_message(self) -> str:
        rng = self.rng
        word = rng.choice(WORDS + FREE_WORDS)
        openid = self.openid() if word not in FREE_WORDS else "oFuzz" + secrets.token_hex(4)
        args = " ".join(rng.choice((_absurd_id(rng), _junk(rng), "QZ" + _absurd_id(rng), "", "#" + _absurd_id(rng)))
                        for _ in range(rng.randint(0, 3)))
        return (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content>{_cdata(f'{word} {args}')}</Content><MsgId>{rng.randint(1, 2**62)}</MsgId></xml>")

    def scan_event(self) -> str:
        rng = self.rng
        code = rng.choice(self.world.stations) if self.world.stations else "S1"
        scene = rng.choice((f"st:{code}:{_junk(rng, 8)}", f"ac:{_absurd_id(rng)}:x", f"tl:{_junk(rng)}",
                            f"st:{code}:{'9' * 30}.{'a' * 18}", _junk(rng), "qrscene_" + _junk(rng), "st::", ":" * 70))
        event = rng.choice(("SCAN", "subscribe", "scancode_waitmsg", "scancode_push", "CLICK"))
        key = ("qrscene_" + scene) if event == "subscribe" else scene
        extra = (f"<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>{_cdata(scene)}</ScanResult></ScanCodeInfo>"
                 if event.startswith("scancode") else "")
        return (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata('oFuzz' + secrets.token_hex(4))}"
                f"</FromUserName><CreateTime>{rng.randint(-2**40, 2**40)}</CreateTime><MsgType>event</MsgType>"
                f"<Event>{_cdata(event)}</Event><EventKey>{_cdata(key)}</EventKey>{extra}</xml>")

    def mutate(self, xml: str) -> bytes:
        """One or two mutations of a well-formed body."""
        rng = self.rng
        for _ in range(rng.choice((1, 1, 2))):
            xml = self._mutate_text(xml)
        raw = xml.encode("utf-8", "surrogatepass")
        r = rng.random()
        if r < 0.08:
            return self._encoding(xml)
        if r < 0.18:
            return raw[: rng.randint(0, max(0, len(raw) - 1))]
        if r < 0.28:
            b = bytearray(raw)
            for _ in range(rng.randint(1, 8)):
                if b:
                    b[rng.randrange(len(b))] = rng.randrange(256)
            return bytes(b)
        return raw

    def _mutate_text(self, xml: str) -> str:
        rng = self.rng
        tags = re.findall(r"<([A-Za-z]+)>", xml) or ["xml"]
        tag = rng.choice(tags)
        choice = rng.randrange(14)
        if choice == 0:  # garbage value
            return re.sub(f"<{tag}>.*?</{tag}>", lambda m: f"<{tag}>{_cdata(_junk(rng))}</{tag}>", xml, count=1,
                          flags=re.S)
        if choice == 1:  # a huge field (sometimes past 1 MiB)
            size = rng.choice((10_000, 300_000, 1_100_000))
            return xml.replace(f"</{tag}>", "A" * size + f"</{tag}>", 1) if tag != "xml" else xml
        if choice == 2:  # duplicated element
            m = re.search(f"<{tag}>.*?</{tag}>", xml, re.S)
            return xml.replace(m.group(0), m.group(0) * rng.randint(2, 4), 1) if m else xml
        if choice == 3:  # an attribute on an element
            return xml.replace(f"<{tag}>", f'<{tag} a="{rng.randint(0, 9)}">', 1)
        if choice == 4:  # nested or broken CDATA
            return xml.replace("<![CDATA[", rng.choice(("<![CDATA[<![CDATA[", "<![CDATA[]]>", "<![CDATA[ ]]]]>")), 1)
        if choice == 5:  # deep nesting inside a field
            depth = rng.choice((50, 1500, 20_000))
            return xml.replace(f"</{tag}>", "<a>" * depth + "x" + "</a>" * depth + f"</{tag}>", 1)
        if choice == 6:  # DTD, entities, processing instructions
            return rng.choice((
                '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>',
                '<!doctype xml SYSTEM "file:///etc/passwd">', '<?xml-stylesheet href="x"?>',
                '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x"> %p;]>')) + xml
        if choice == 7:  # an empty element or a removed one
            return re.sub(f"<{tag}>.*?</{tag}>", rng.choice((f"<{tag}/>", "", f"<{tag}></{tag}>")), xml, count=1,
                          flags=re.S)
        if choice == 8:  # a strange MsgType or Event
            field_ = rng.choice(("MsgType", "Event"))
            value = rng.choice(("event", "text", "EVENT", "device_event", "device_text", "hardware", "", _junk(rng),
                                "subscribe", "unsubscribe", "SCAN", "subscribe_msg_popup_event"))
            return re.sub(f"<{field_}>.*?</{field_}>", lambda m: f"<{field_}>{_cdata(value)}</{field_}>", xml,
                          count=1, flags=re.S)
        if choice == 9:  # numbers out of range
            field_ = rng.choice(("CreateTime", "MsgId", "MsgID"))
            value = rng.choice((str(-2**63), str(2**80), "1e309", "NaN", "", "0x10", _absurd_id(rng)))
            return re.sub(f"<{field_}>.*?</{field_}>", f"<{field_}>{value}</{field_}>", xml, count=1, flags=re.S)
        if choice == 10:  # unknown extra elements, structured where text is expected
            return xml.replace("</xml>", rng.choice(("<List><TemplateId>x</TemplateId></List>",
                                                     "<Content><a>1</a><b>2</b></Content>",
                                                     "<EventKey><x/></EventKey>", "<Foo>" + _junk(rng) + "</Foo>"))
                               + "</xml>")
        if choice == 11:  # a different root or none
            return rng.choice((xml.replace("<xml>", "<root>", 1).replace("</xml>", "</root>"),
                               xml.replace("<xml>", "", 1), xml + "<xml></xml>", "<xml/>"))
        if choice == 12:  # control characters and numeric references
            return xml.replace("]]>", rng.choice(("\x00]]>", "&#0;]]>", "\ufffe]]>", "\x1b[31m]]>")), 1)
        return xml

    def _encoding(self, xml: str) -> bytes:
        rng = self.rng
        enc = rng.choice(("utf-16", "utf-16-le", "gbk", "latin-1", "utf-32", "shift_jis"))
        declared = rng.choice(("utf-8", "gbk", "utf-16", "ascii", enc, "nonsense"))
        doc = f'<?xml version="1.0" encoding="{declared}"?>' + xml
        return doc.encode(enc, errors="replace")

    def random_bytes(self) -> bytes:
        return os.urandom(self.rng.choice((0, 1, 16, 300, 5000)))

    def body(self) -> bytes:
        rng = self.rng
        r = rng.random()
        if r < 0.07:
            return self.random_bytes()
        source = self.fixture() if r < 0.6 else self.text_message() if r < 0.8 else self.scan_event()
        return self.mutate(source) if rng.random() < 0.85 else source.encode()

    def request(self, safe: bool) -> tuple[bytes, dict[str, str], str]:
        """(body, query, kind); kind names the signing for the statistics."""
        rng = self.rng
        body = self.body()
        ts, nonce = str(int(time.time())), secrets.token_hex(8)
        q = {"timestamp": ts, "nonce": nonce, "signature": _sig(TOKEN, ts, nonce), "openid": "x"}
        kind = "signed"
        r = rng.random()
        if r < 0.04:
            q["signature"] = rng.choice(("0" * 40, "", _junk(rng), q["signature"].upper()))
            kind = "bad signature"
        elif r < 0.06:
            ts = rng.choice((str(int(time.time()) - 10_000), "-1", "1e10", "", _absurd_id(rng)))
            q |= {"timestamp": ts, "signature": _sig(TOKEN, ts, nonce)}
            kind = "stale timestamp"
        if safe and kind == "signed" and rng.random() < 0.9:
            try:
                text = body.decode("utf-8", "surrogateescape")
                enc = self.prp.encrypt(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), APPID)
            except Exception:
                enc = base64.b64encode(body).decode()
            enc = enc.decode() if isinstance(enc, bytes) else enc
            if rng.random() < 0.05:  # a valid signature over a broken ciphertext
                enc = rng.choice((enc[:-7], enc[::-1], "A" * len(enc), _junk(rng)))
            q |= {"encrypt_type": "aes", "msg_signature": _sig(TOKEN, ts, nonce, enc)}
            body = f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><Encrypt>{_cdata(enc)}</Encrypt></xml>".encode()
            kind = "signed, encrypted"
        return body, q, kind


# -- the JSON API ---------------------------------------------------------------------------------------------


class Api:
    PATHS = ("/api/v1/boards/{kind}", "/api/v1/featured", "/api/v1/stations", "/api/v1/stations/{code}",
             "/api/v1/activities", "/api/v1/services", "/api/v1/me", "/api/v1/me/signups",
             "/api/v1/me/signups/{id}", "/api/v1/me/bookings", "/api/v1/me/bookings/{id}", "/api/v1/me/code",
             "/api/v1/session", "/api/v1/{junk}")
    PARAMS = ("period", "type", "district", "limit", "offset", "station", "from", "to", "date", "q", "kind",
              "status", "x", "")

    def __init__(self, rng: random.Random, world: World):
        self.rng, self.world = rng, world

    def _id(self) -> str:
        rng = self.rng
        return rng.choice((_absurd_id(rng), str(-rng.randint(1, 10**6)),
                           str(self.world.max_id + 10**6 + rng.randint(0, 99)), "0", "1.5", "1e3", "%00",
                           "..%2f..%2fetc", _junk(rng, 5), "9" * 400))

    def _value(self) -> str:
        rng = self.rng
        return rng.choice((self._id(), _junk(rng), "2026", "2026-13", "2026-02-30", "9999-99", "-1", "1" * 300,
                           "comprehensive", "鲤城区", "", " ", "\u00a0", "null", "[]", "{}", "total"))

    def token(self) -> str | None:
        rng = self.rng
        from web.auth import sign_session

        r = rng.random()
        if r < 0.3:
            return None
        now = time.time()
        if r < 0.5 and self.world.talents:  # a valid token of a bound talent
            return sign_session(self.world.scene_key, rng.choice(self.world.talents), now)[0]
        if r < 0.6:  # valid, but the openid is not a bound talent
            return sign_session(self.world.scene_key, "oFuzz" + _junk(rng, 6).replace(".", ""), now)[0]
        if r < 0.7:  # expired
            return sign_session(self.world.scene_key, rng.choice(self.world.talents or ["o"]), now - 10**7)[0]
        return rng.choice((_junk(rng), "a.b.c", "o.1.x", "." * 600, "oX." + "9" * 30 + ".AAAA", ""))

    def body(self) -> tuple[bytes | None, str]:
        rng = self.rng
        r = rng.random()
        if r < 0.2:
            return None, ""
        if r < 0.3:
            return os.urandom(rng.choice((1, 50, 5000))), "application/octet-stream"
        if r < 0.45:
            depth = rng.choice((100, 2000, 4000))
            return ("[" * depth + "]" * depth).encode(), "application/json"
        if r < 0.55:
            return b'{"activity_id": 1', "application/json"
        keys = ("activity_id", "code", "station", "date", "hour", "service", "id", "slot", "note", _junk(rng, 3))
        value_pool: tuple[Any, ...] = (self._id(), -1, 0, 10**30, -(10**30), 1.5, float("1e308"), None, True, [], {},
                                       [1, 2], {"a": 1}, _junk(rng), "2026-11-18", "25:00")
        obj: Any = {rng.choice(keys): rng.choice(value_pool) for _ in range(rng.randint(0, 4))}
        for k, v in list(obj.items()):  # ids that exist are never sent: a valid signup would be a real change
            if isinstance(v, int) and not isinstance(v, bool) and 0 < v <= self.world.max_id + 10**6:
                obj[k] = -v
        if rng.random() < 0.2:
            obj = rng.choice(([obj], "text", 42, None))
        return json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode(), rng.choice(
            ("application/json", "text/plain", "application/json; charset=gbk", ""))

    def request(self) -> tuple[str, str, dict[str, str], list[tuple[str, str]], bytes | None]:
        rng = self.rng
        path = rng.choice(self.PATHS)
        right = ("POST" if path == "/api/v1/session" else "DELETE" if path.endswith("{id}")
                 else rng.choice(("GET", "POST")) if path.endswith(("signups", "bookings")) else "GET")
        path = path.replace("{kind}", rng.choice(("total", "year", "month", "week", _junk(rng, 4), "")))
        path = path.replace("{code}", rng.choice((*self.world.stations[:3], _junk(rng, 6), "x" * 500, "%2e%2e")))
        path = path.replace("{id}", self._id()).replace("{junk}", _junk(rng, 8).replace("/", ""))
        method = right if rng.random() < 0.75 else rng.choice(("GET", "POST", "DELETE", "PUT", "PATCH", "HEAD",
                                                                 "OPTIONS", "TRACE"))
        query = [(rng.choice(self.PARAMS) if rng.random() < 0.8 else _junk(rng, 5), self._value())
                 for _ in range(rng.choice((0, 0, 1, 2, 3)))]
        headers = {}
        token = self.token()
        if token is not None:
            if rng.random() < 0.8:
                headers["Authorization"] = rng.choice(("Bearer ", "bearer ", "Bearer  ", "Basic ")) + token
            else:
                headers["Cookie"] = f"th_session={token}"
        if rng.random() < 0.1:
            headers["If-None-Match"] = rng.choice(('"x"', "*", _junk(rng), 'W/"1"'))
        body, ctype = self.body() if method in ("POST", "PUT", "PATCH", "DELETE") else (None, "")
        if ctype:
            headers["Content-Type"] = ctype
        headers = {k: "".join(c for c in v if " " <= c != "\x7f") for k, v in headers.items()}  # HTTP-legal
        return method, path, headers, query, body


# -- the run --------------------------------------------------------------------------------------------------


@dataclass
class Stats:
    statuses: dict[str, collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    kinds: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    findings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))

    def total(self, target: str) -> int:
        return sum(self.statuses[target].values())


async def fuzz(ports: dict[str, int], world: World, minutes: float, seed_: int, clients: int,
               folder: str) -> Stats:
    stats = Stats()
    deadline = time.monotonic() + minutes * 60
    timeout = aiohttp.ClientTimeout(total=15)

    async def client(n: int) -> None:
        rng = random.Random(seed_ * 1000 + n)
        cb, api = Callbacks(rng, world), Api(rng, world)
        async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as http:
            while time.monotonic() < deadline:
                target = rng.choice(("callback plain", "callback safe", "api"))
                t0 = time.monotonic()
                try:
                    if target == "api":
                        method, path, headers, query, body = api.request()
                        kind = f"{method} {path.split('?')[0][:26]}"
                        async with http.request(method, f"http://127.0.0.1:{ports['plain']}{path}", params=query,
                                                headers=headers, data=body, allow_redirects=False) as r:
                            await r.read()
                            status = r.status
                        sample = f"{method} {path} {query} {headers} {body[:200] if body else b''!r}"
                    else:
                        safe = target.endswith("safe")
                        body, q, kind = cb.request(safe)
                        async with http.post(f"http://127.0.0.1:{ports['safe' if safe else 'plain']}/wechat",
                                             params=q, data=body, headers={"Content-Type": "text/xml"}) as r:
                            await r.read()
                            status = r.status
                        sample = f"{q} {body[:300]!r}"
                except (TimeoutError, aiohttp.ClientError) as err:
                    status = 599
                    sample = f"{type(err).__name__}: {err}"
                stats.seconds[target] += time.monotonic() - t0
                stats.statuses[target][status] += 1
                stats.kinds[target][kind if target != "api" else kind.split(" ")[0]] += 1
                if status >= 500:
                    stats.findings.append(f"{target} {status}: {sample}")
                    append(os.path.join(folder, "findings.txt"), f"{target} {status}: {sample}\n")

    async def progress() -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(30)  # a progress line, not synchronisation
            done = {t: stats.total(t) for t in stats.statuses}
            print(f"  {time.strftime('%H:%M:%S')} sent {done}, 5xx {len(stats.findings)}, load {loadavg()}",
                  flush=True)

    await asyncio.gather(progress(), *(client(n) for n in range(clients)))
    return stats


def append(path: str, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def start_bot(env: dict[str, str], folder: str, log_path: str) -> subprocess.Popen[bytes]:
    """`talenthome serve`, its log (WARNING and above, tracebacks included) in `log_path`."""
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-m", "talenthome.cli", "serve"], env=env, cwd=folder, stdout=log,
                                stderr=subprocess.STDOUT)


def scan_logs(paths: list[str]) -> list[str]:
    bad = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if LOG_BAD.search(line):
                    bad.append(f"{os.path.basename(path)}: {line.rstrip()[:300]}")
    return bad


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


async def run(args: argparse.Namespace, folder: str) -> dict[str, Any]:
    from tests.fake_wechat import FakeWeChat

    fake = await FakeWeChat(appid=APPID, secret=SECRET).start()
    rs = RedisServer(os.path.join(folder, "redis")).start(persist=False)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        db_path = os.path.join(folder, "fuzz.db")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "DATABASE_", "REDIS_", "BOT_"))}
        env |= {"DATABASE_URL": f"sqlite+aiosqlite:///{db_path}", "REDIS_URL": rs.url, "WECHAT_TOKEN": TOKEN,
                "WECHAT_APPID": APPID, "WECHAT_SECRET": SECRET, "BOT_HOST": "127.0.0.1",
                "WECHAT_API_BASE": fake.base_url, "WECHAT_OAUTH_BASE": fake.base_url, "ADMIN_OPENIDS": ""}
        print("  seeding (talenthome migrate, demo) ...", flush=True)
        await asyncio.to_thread(seed, env, folder)
        from scoring.settings import Settings

        world = world_of(db_path, Settings(_env_file=None, wechat_secret=SECRET).scene_key)  # type: ignore[call-arg]
        ports, logs = {}, []
        for mode in ("plain", "safe"):
            port, log_path = free_port(), os.path.join(folder, f"bot-{mode}.log")
            mode_env = env | {"BOT_PORT": str(port)} | ({"WECHAT_AES_KEY": AES_KEY} if mode == "safe" else {})
            procs.append(await asyncio.to_thread(start_bot, mode_env, folder, log_path))
            await asyncio.to_thread(wait_healthy, port, procs[-1])
            ports[mode], logs = port, [*logs, log_path]
        rows_before, redis_before = db_rows(db_path), redis_digest(rs.url)
        load_before = loadavg()
        print(f"  fuzzing for {args.minutes} min with {args.clients} clients (load {load_before}) ...", flush=True)
        stats = await fuzz(ports, world, args.minutes, args.seed, args.clients, folder)
        load_after = loadavg()
        await asyncio.sleep(2)  # let handlers past their budget finish before the digest (not synchronisation)
        alive = {mode: procs[i].poll() is None for i, mode in enumerate(ports)}
        for proc in procs:
            stop_server(proc)
        procs.clear()
        rows_after, redis_after = db_rows(db_path), redis_digest(rs.url)
        changes = row_changes(rows_before, rows_after)
        allowed = {t: (len(new), why) for t, (gone, new) in changes.items()
                   if (why := legitimate(t, gone, new)) is not None}
        bad_logs = scan_logs(logs)
        append(os.path.join(folder, "changes.txt"), "".join(
            f"== {t}: {len(gone)} gone, {len(new)} new\n" + "".join(f"- {r}\n" for r in gone[:20])
            + "".join(f"+ {r}\n" for r in new[:20]) for t, (gone, new) in changes.items()))
        return {"stats": stats, "changed_tables": [t for t in changes if t not in allowed],
                "allowed_changes": allowed,
                "changed_keys": compare(redis_before, redis_after), "bad_logs": bad_logs, "alive": alive,
                "load": (load_before, load_after), "world": world}
    finally:
        for proc in procs:
            stop_server(proc)
        rs.stop()
        await fake.close()


# What the first runs found; each is fixed and has a regression test (tests/bot/test_fuzz.py,
# tests/web/test_api_fuzz.py).
FOUND = """\
Found by the first runs of this script and fixed, each with a regression test:

- a callback field repeated (`<Content>` twice: a list), with an attribute or with children (a dict) crashed the
  handler (`'list' object has no attribute 'strip'`, a traceback in the log, an empty answer); a repeated
  `ScanResult` crashed the scene dispatch (`unhashable type: 'list'`); a deeply nested `EventKey` or consent
  list was a `RecursionError` (a 500 from aiohttp, or a handler crash). Now `bot/webhook.py` `check_shape`
  refuses them with 400 before any handler runs (text fields must be text, nesting at most 8 levels);
- `POST /api/v1/session`, `/api/v1/me/signups` and `/api/v1/me/bookings` with 4 KiB of `[` were a 500
  (`json.loads` raises `RecursionError`, not `ValueError`): now 400 `bad_body`;
- `服务 <300 kB of text>` from a talent made SQLite refuse the station-name LIKE ("pattern too complex", a
  handler crash, once in the first 10-minute run): `scoring/services.py` `find_station` now answers "no such
  station" for text longer than any station name;
- `解绑` from any follower who is not bound wrote an audit row of kind `action`, so a flood of them could push
  real admin actions out of `审计`'s view: it is now a `refusal` row."""


def report(result: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    stats: Stats = result["stats"]
    rows = []
    for target in ("callback plain", "callback safe", "api"):
        n = stats.total(target)
        statuses = ", ".join(f"{s}: {c:,}" for s, c in sorted(stats.statuses[target].items()))
        rows.append((target, f"{n:,}", f"{n / (args.minutes * 60):.0f}", statuses))
    kinds = "; ".join(f"{t}: " + ", ".join(f"{k} {c:,}" for k, c in stats.kinds[t].most_common(6))
                      for t in ("callback plain", "callback safe"))
    fivexx = sum(c for t in stats.statuses.values() for s, c in t.items() if s >= 500)
    lines = [
        f"`{command}` — {args.minutes:g} min, {args.clients} concurrent clients, seed {args.seed}, against two "
        "`talenthome serve` processes (plain mode and safe mode) on one SQLite file seeded by `talenthome demo` "
        f"and a private Redis; WeChat's API is the test fake. Load average before / after: "
        f"{result['load'][0]} / {result['load'][1]} (2 cores shared with other work).",
        "",
        format_table(("target", "requests", "per s", "statuses"), rows),
        "",
        f"Callback signing: {kinds}.",
        "",
        f"- 5xx or timeouts: {fivexx}" + (f" (first: {stats.findings[0][:200]})" if stats.findings else ""),
        f"- log lines with a traceback / ERROR / CRITICAL: {len(result['bad_logs'])}"
        + (f" (first: `{result['bad_logs'][0][:200]}`)" if result["bad_logs"] else ""),
        f"- tables changed: {', '.join(result['changed_tables']) or 'none'}; Redis keys changed (bookkeeping "
        f"`th:dd:*`, `th:nonce:*`, `th:rl:*` aside): {len(result['changed_keys'])}"
        + (f" ({', '.join(result['changed_keys'][:5])})" if result["changed_keys"] else ""),
        "- rows written by design (see `legitimate()` in bench/fuzz.py): "
        + ("; ".join(f"{t} +{n} ({why})" for t, (n, why) in result["allowed_changes"].items()) or "none"),
        f"- both bots still running at the end: {'yes' if all(result['alive'].values()) else result['alive']}",
        "",
        FOUND,
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--keep", metavar="DIR", help="copy the logs and findings here")
    args = parser.parse_args()
    stop_on_sigterm()
    command = "python bench/fuzz.py " + " ".join(sys.argv[1:])
    with temp_dir("talenthome-fuzz-") as folder:
        result = asyncio.run(run(args, folder))
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            for name in ("bot-plain.log", "bot-safe.log", "findings.txt", "changes.txt"):
                if os.path.exists(os.path.join(folder, name)):
                    with open(os.path.join(folder, name), "rb") as src, \
                            open(os.path.join(args.keep, name), "wb") as dst:
                        dst.write(src.read())
    text = report(result, args, command.strip())
    print(text)
    if not args.no_write:
        replace_section(os.path.join(ROOT, "BENCHMARKS.md"), HEADING, text)
    ok = not (result["stats"].findings or result["bad_logs"] or result["changed_tables"] or result["changed_keys"]
              or not all(result["alive"].values()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
