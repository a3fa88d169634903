"""`talenthome qr station CODE [--png FILE]` and `talenthome chat`: tools to try the bot locally.

`qr station` prints the station's current scene string (SPEC 5, `st:<code>:<token>`) as its LAST line,
so scripts can take `tail -1`. Production QR codes come from WeChat's QR API (`qrcode/create`), issued by
the worker every rotation window; when the worker has issued one and Redis is reachable, its ticket URL is
printed too. `--png` writes a QR image that encodes the scene itself, for local testing only.

`chat` plays WeChat for someone without an official account: each line typed is signed (and, when
WECHAT_AES_KEY is set, encrypted: safe mode) like WeChat's own callback and posted to the local bot;
the reply is printed. `/scan SCENE` sends a SCAN event, `/follow [SCENE]` a subscribe, `/scancode TEXT`
a menu scan (operators scanning a talent's code), `/openid ID` switches the user, `/quit` ends. Any
other line, staff words like `/activity new ...` included, goes to the bot as a text message. The exit
status is 1 when some line could not reach the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import hashlib
import itertools
import secrets
import struct
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlencode

from talenthome.runtime import CliError

ACCOUNT = "gh_talenthome0001"  # the official account's original id (any value works against our bot)
CHAT_HELP = """\
Type a message (for example 帮助, 绑定 QZ2026001 张三, 活动, 积分) and press Enter. Commands:
  /scan SCENE       scan a QR code (SCAN event); get a station's scene with `talenthome qr station CODE`
  /follow [SCENE]   follow the account (with a scene: follow by scanning that code)
  /unfollow         unfollow
  /scancode TEXT    scan with the menu's scan button (operators scanning a talent's 我的码)
  /menu KEY         press a menu item (CLICK)
  /openid [ID]      show or switch the WeChat user
  /help             this help;  /quit (or Ctrl-D) leaves"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("qr", help="print a station's current QR scene (and write a PNG for local tests)",
                       description="QR scenes for local testing (SPEC 5).")
    kinds = p.add_subparsers(dest="qr_kind", metavar="KIND", required=True)
    st = kinds.add_parser(
        "station", help="the station's current scene string (last line of the output)",
        description="Print the station's current scene string `st:<code>:<token>` as the last line. The "
                    "token rotates every STATION_CODE_ROTATION_S seconds (default 300) with one window of grace. "
                    "Production codes come from WeChat's QR API, issued by the worker; --png encodes the "
                    "scene itself, for local testing with `talenthome chat` (/scan SCENE).")
    st.add_argument("code", metavar="CODE", help="the station's code, as imported")
    st.add_argument("--png", metavar="FILE", help="also write a QR image (PNG) that encodes the scene")
    st.set_defaults(func=qr_station)

    c = sub.add_parser(
        "chat", help="a console that plays WeChat against the local bot",
        description="Type messages as a WeChat user; each line is signed (and in safe mode, when "
                    "WECHAT_AES_KEY is set, encrypted) like WeChat's callback, posted to the bot, and the reply "
                    "is printed. " + CHAT_HELP.replace("\n", " "))
    c.add_argument("--openid", help="the WeChat user to play (default: one derived from your login name)")
    c.add_argument("--url", help="the bot's callback URL (default: http://BOT_HOST:BOT_PORT/wechat)")
    c.add_argument("--plain", action="store_true", help="send in plain mode even when WECHAT_AES_KEY is set")
    c.set_defaults(func=chat)


# -- qr ---------------------------------------------------------------------------------------------------
def qr_station(args: argparse.Namespace) -> int:
    from scoring.settings import Settings

    settings = Settings()
    station = asyncio.run(_find_station(settings, args.code))
    if station is None:
        raise CliError(f"no station with code {args.code!r} (import it first: talenthome import-stations FILE)")
    code, name, status = station
    from scoring.tokens import station_scene

    now = time.time()
    rotation = settings.station_code_rotation_s
    scene = station_scene(settings.scene_key, code, now, rotation)
    until = datetime.fromtimestamp((int(now) // rotation + 2) * rotation, UTC)
    from scoring.periods import to_local

    print(f"Station {code} {name} ({status}). This scene is valid until {to_local(until):%Y-%m-%d %H:%M} "
          f"(it rotates every {rotation} s, with one window of grace).")
    if status != "active":
        print("Warning: the station is delisted; scans of its code are refused.")
    print("Production QR codes come from WeChat's QR API (qrcode/create), issued by the worker for each "
          "rotation window; this scene is for local testing: talenthome chat, then /scan SCENE.")
    url = asyncio.run(_wechat_qr_url(settings, code))
    if url:
        print(f"WeChat QR code issued by the worker: {url}")
    if args.png:
        try:
            write_qr_png(scene, args.png)
        except OSError as err:
            raise CliError(f"cannot write {args.png}: {err.strerror or err}") from None
        print(f"QR image (encodes the scene) written to {args.png}")
    print(scene)
    return 0


async def _find_station(settings: Any, code: str) -> tuple[str, str, str] | None:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from scoring.models import Station
    from talenthome.runtime import database

    try:
        async with database(settings) as sessions, sessions() as s:
            row = (await s.execute(select(Station.code, Station.name, Station.status)
                                   .where(Station.code == code))).first()
    except SQLAlchemyError as err:
        detail = str(getattr(err, "orig", None) or err).strip().splitlines()
        hint = " (has `talenthome migrate` been run?)" if "no such table" in str(err) else ""
        raise CliError(f"database error: {detail[0] if detail else type(err).__name__}{hint}") from None
    except OSError as err:
        raise CliError(f"cannot reach the database: {err}") from None
    return (row[0], row[1], row[2]) if row is not None else None


async def _wechat_qr_url(settings: Any, code: str) -> str | None:
    """The ticket URL of the worker's current WeChat QR for the station; None when there is none, or
    the worker's QR support or Redis is not there (this command never fails for it)."""
    try:
        from worker.push import current_qr
    except ImportError:
        return None
    from talenthome.runtime import PrivateRedis

    url = settings.redis_url or PrivateRedis(settings.var_dir).running_url()
    if not url:
        return None
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        async with asyncio.timeout(3):
            from scoring.kiosk import ask

            await ask(client, code)  # the worker issues tickets only for open kiosks and asked stations
            record = await current_qr(client, code)
    except Exception:
        return None
    finally:
        await client.aclose()
    return str(record.get("url") or "") or None if isinstance(record, dict) else None


def write_qr_png(data: str, path: str, *, box: int = 8, border: int = 4) -> None:
    """A QR code as a black-and-white PNG, written with zlib only (no imaging library needed)."""
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=border)
    qr.add_data(data)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    size = len(matrix) * box
    rows = []
    for line in matrix:
        pixels = b"".join(b"\x00" * box if dark else b"\xff" * box for dark in line)
        rows.extend([b"\x00" + pixels] * box)  # filter type 0 per scanline

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as fh:
        fh.write(png)


# -- chat -------------------------------------------------------------------------------------------------
def _signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _xml(fields: dict[str, Any]) -> str:
    def render(d: dict[str, Any]) -> str:
        return "".join(f"<{k}>{render(v)}</{k}>" if isinstance(v, dict)
                       else f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}>{_cdata(str(v))}</{k}>"
                       for k, v in d.items())

    return "<xml>" + render(fields) + "</xml>"


def _fields(body: str) -> dict[str, str]:
    root = ET.fromstring(body)  # the local bot's reply; it never carries a DTD
    return {child.tag: (child.text or "") for child in root}


class ChatClient:
    """Signs, optionally encrypts, posts; reads the reply back (decrypting it in safe mode)."""

    def __init__(self, url: str, token: str, appid: str, aes_key: str | None, openid: str):
        self.url, self.token, self.appid, self.openid = url, token, appid, openid
        self.aes_key = aes_key
        self._msg_ids: Iterator[int] = itertools.count(int(time.time() * 1000) * 1000)
        self._last_time = 0
        self._prp: Any = None
        self._crypto: Any = None
        if aes_key:
            from wechatpy.crypto import PrpCrypto, WeChatCrypto

            self._prp = PrpCrypto(base64.b64decode(aes_key + "="))
            self._crypto = WeChatCrypto(token, aes_key, appid)

    def _create_time(self) -> int:
        # Strictly increasing: WeChat's event de-duplication is by sender + CreateTime + event.
        self._last_time = max(int(time.time()), self._last_time + 1)
        return self._last_time

    def text(self, content: str) -> str:
        return self.post({"ToUserName": ACCOUNT, "FromUserName": self.openid, "CreateTime": self._create_time(),
                          "MsgType": "text", "Content": content, "MsgId": next(self._msg_ids)})

    def event(self, event: str, key: str | None = None, **extra: Any) -> str:
        fields: dict[str, Any] = {"ToUserName": ACCOUNT, "FromUserName": self.openid,
                                  "CreateTime": self._create_time(), "MsgType": "event", "Event": event}
        if key is not None:
            fields["EventKey"] = key
        fields.update(extra)
        return self.post(fields)

    def post(self, fields: dict[str, Any]) -> str:
        xml = _xml(fields)
        ts, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        query = {"timestamp": ts, "nonce": nonce, "signature": _signature(self.token, ts, nonce),
                 "openid": self.openid}
        if self._prp is not None:
            encrypted = self._prp.encrypt(xml, self.appid)
            encrypted = encrypted.decode() if isinstance(encrypted, bytes) else encrypted
            query |= {"encrypt_type": "aes", "msg_signature": _signature(self.token, ts, nonce, encrypted)}
            xml = _xml({"ToUserName": ACCOUNT, "Encrypt": encrypted})
        request = urllib.request.Request(f"{self.url}?{urlencode(query)}", data=xml.encode(), method="POST",
                                         headers={"Content-Type": "text/xml; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                body = resp.read().decode("utf-8", "replace").strip()
        except urllib.error.HTTPError as err:
            return f"(the bot answered HTTP {err.code}: {err.read().decode('utf-8', 'replace')[:100]})"
        if not body.startswith("<"):
            return ""  # "success" or empty: no reply
        reply = _fields(body)
        if self._crypto is not None and "Encrypt" in reply:
            plain = self._crypto.decrypt_message(body, reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"])
            reply = _fields(plain)
        if reply.get("MsgType") == "text":
            return reply.get("Content", "")
        return f"({reply.get('MsgType', '?')} reply) " + " ".join(
            v for k, v in reply.items() if k in ("Title", "Description", "Url"))


def _default_openid() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "someone"
    return "oChat" + hashlib.sha1(user.encode()).hexdigest()[:22]


def chat(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    from scoring.settings import Settings

    settings = Settings()
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    url = args.url or f"http://{settings.bot_host}:{settings.bot_port}/wechat"
    aes = None if args.plain or settings.wechat_aes_key is None else settings.wechat_aes_key.get_secret_value()
    client = ChatClient(url, settings.wechat_token.get_secret_value(), settings.wechat_appid, aes,
                        args.openid or _default_openid())
    interactive = stdin.isatty()

    def say(text: str) -> None:
        print(text, file=stdout, flush=True)

    say(f"Chatting with {url} as {client.openid} ({'safe mode, encrypted' if aes else 'plain mode'}). "
        "/help lists the commands, /quit leaves.")
    failures = 0
    while True:
        if interactive:
            stdout.write("你> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            if head in ("/quit", "/exit", "/q"):
                break
            if head == "/help":
                say(CHAT_HELP)
                continue
            if head == "/openid":
                if rest:
                    client.openid = rest
                say(f"You are {client.openid}.")
                continue
            if head == "/scan":
                if not rest:
                    say("Usage: /scan SCENE  (a station's scene: talenthome qr station CODE)")
                    continue
                answer = client.event("SCAN", rest, Ticket="local-chat")
            elif head == "/follow":
                answer = client.event("subscribe", f"qrscene_{rest}" if rest else None,
                                      **({"Ticket": "local-chat"} if rest else {}))
            elif head == "/unfollow":
                answer = client.event("unsubscribe")
            elif head == "/scancode":
                answer = client.event("scancode_waitmsg", "scan", ScanCodeInfo={
                    "ScanType": "qrcode", "ScanResult": rest})
            elif head == "/menu":
                answer = client.event("CLICK", rest)
            else:
                answer = client.text(line)
        except (urllib.error.URLError, OSError) as err:
            failures += 1
            reason = getattr(err, "reason", err)
            say(f"(cannot reach the bot at {url}: {reason}; is `talenthome serve` or `make run` running?)")
            continue
        say(answer if answer else "(no reply)")
    return 1 if failures else 0
