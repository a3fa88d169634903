"""`talenthome chat` piped against a running test bot, and `talenthome qr station` (as subprocesses)."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import pytest

from bot import texts
from scoring import kiosk
from scoring.tokens import parse_scene
from talenthome.cli import main
from talenthome.commands.tools import write_qr_png
from tests.bot import flows
from tests.bot.conftest import AES_KEY, APPID, TOKEN, Bot


def env_for(bot: Bot, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "DATABASE_", "REDIS_", "BOT_"))}
    env.update(WECHAT_TOKEN=TOKEN, WECHAT_APPID=APPID, WECHAT_SECRET="testsecret",
               DATABASE_URL=bot.settings.database_url, REDIS_URL=bot.settings.redis_url or "", **extra)
    if bot.settings.wechat_aes_key is not None:
        env["WECHAT_AES_KEY"] = AES_KEY
    return env


async def run_cli(args: list[str], env: dict[str, str], cwd: Path, stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "talenthome.cli", *args, env=env, cwd=str(cwd), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def chat_script(bot: Bot) -> str:
    return "\n".join(["帮助", "绑定 QZ1 张三", f"/scan {flows.scene(bot, 'ST1')}", "/follow", "/openid",
                      "/quit", "积分"]) + "\n"


async def check_chat(bot: Bot, code: int, out: str, err: str) -> None:
    assert code == 0, err
    assert texts.HELP in out
    assert texts.BIND_OK.format(name="张三") in out
    assert texts.VISIT_OK.format(station="鲤城人才之家", points=1) in out
    assert texts.WELCOME in out and "You are oChatter." in out
    assert "可用积分" not in out  # nothing after /quit is sent
    mode = "safe mode" if bot.settings.wechat_aes_key else "plain mode"
    assert mode in out.splitlines()[0]
    [v] = await flows.visits(bot)
    assert (v.openid, v.status) == ("oChatter", "accepted")


async def test_chat_piped_to_the_command_in_safe_mode(safe_bot: Bot, tmp_path: Path) -> None:
    await flows.station(safe_bot, "ST1", name="鲤城人才之家")
    await flows.talent(safe_bot, "QZ1", name="张三")
    code, out, err = await run_cli(["chat", "--url", safe_bot.url, "--openid", "oChatter"], env_for(safe_bot),
                                   tmp_path, chat_script(safe_bot))
    await check_chat(safe_bot, code, out, err)


async def test_chat_in_plain_mode(bot: Bot, tmp_path: Path, monkeypatch, capsys) -> None:
    """The same conversation in plain mode, in this process (the subprocess test covers the command)."""
    monkeypatch.chdir(tmp_path)
    await flows.station(bot, "ST1", name="鲤城人才之家")
    await flows.talent(bot, "QZ1", name="张三")
    code, out, err = await in_process(["chat", "--url", bot.url, "--openid", "oChatter"], env_for(bot), monkeypatch,
                                      capsys, chat_script(bot))
    await check_chat(bot, code, out, err)


async def in_process(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str], stdin: str = "") -> tuple[int, str, str]:
    """`talenthome ARGS` in this process (in a thread: the commands run their own event loop)."""
    for key in [k for k in os.environ if k.startswith(("WECHAT_", "DATABASE_", "REDIS_", "BOT_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = await asyncio.to_thread(main, args)
    out, err = capsys.readouterr()
    return code, out, err


async def test_chat_says_when_the_bot_is_not_there(bot: Bot, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = await in_process(["chat", "--url", "http://127.0.0.1:9/wechat"], env_for(bot), monkeypatch,
                                    capsys, "帮助\n")
    assert code == 1 and "cannot reach the bot" in out


async def test_qr_station_prints_the_scene_last(bot: Bot, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    await flows.station(bot, "ST1", name="鲤城人才之家")
    png = tmp_path / "st1.png"
    code, out, err = await in_process(["qr", "station", "ST1", "--png", str(png)], env_for(bot), monkeypatch, capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    scene = lines[-1]
    assert scene.startswith("st:ST1:") and len(scene) <= 64
    parsed = parse_scene(bot.settings.scene_key, scene, time.time())
    assert not isinstance(parsed, str) and parsed.ref == "ST1"
    assert any("WeChat's QR API" in line for line in lines[:-1])
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    # the scene it prints is accepted by the bot
    await flows.talent(bot, openid="oT")
    assert "打卡成功" in (await bot.wx.scan("oT", scene)).text


async def test_qr_station_prints_the_worker_ticket_url_when_issued(bot: Bot, tmp_path: Path, monkeypatch,
                                                                   capsys) -> None:
    monkeypatch.chdir(tmp_path)
    await flows.station(bot, "ST1")
    now = time.time()
    record = ('{"code": "ST1", "scene": "x", "ticket": "T", "url": "http://weixin.qq.com/q/abc", "content": "",'
              f' "window": {int(now) // 300}, "valid_from": {now - 10}, "valid_until": {now + 290},'
              f' "expires_at": {now + 590}}}')
    await bot.arq.set("th:qr:ST1", record)
    code, out, err = await in_process(["qr", "station", "ST1"], env_for(bot), monkeypatch, capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert any("http://weixin.qq.com/q/abc" in line for line in lines[:-1]) and lines[-1].startswith("st:ST1:")
    # Asking marks the station for the worker's QR run (tickets only for open kiosks and asked stations).
    assert await kiosk.open_codes(bot.arq) == {"ST1"}


async def test_qr_unknown_station_is_one_line_and_exit_2(bot: Bot, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = await in_process(["qr", "station", "NOPE"], env_for(bot), monkeypatch, capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "NOPE" in err


def test_png_encodes_the_qr_matrix(tmp_path: Path) -> None:
    import qrcode

    path = tmp_path / "x.png"
    write_qr_png("st:ST1:abc.def", str(path), box=2, border=4)
    data = path.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=4)
    qr.add_data("st:ST1:abc.def")
    qr.make(fit=True)
    matrix = qr.get_matrix()
    assert width == height == 2 * len(matrix)
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    raw = zlib.decompress(data[idat + 4:idat + 4 + length])
    stride = 1 + width
    for y in range(0, height, 2):
        row = raw[y * stride + 1:(y + 1) * stride]
        assert [row[x] == 0 for x in range(0, width, 2)] == list(matrix[y // 2])
