"""Expected failures of the real `talenthome` script: one line on stderr that says what is wrong and what to do,
a non-zero exit status, and never a Python traceback (issue 9)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from talenthome.servers import free_port
from tests.cli import EXE, Result, run_cli


def one_line_error(result: Result) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("talenthome: error: "), result.stderr
    return lines[0]


@pytest.fixture
def clean_env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    """A migrated SQLite database, no Redis; each test adds what it breaks."""
    return {"DATABASE_URL": sqlite_url, "REDIS_URL": "", "VAR_DIR": str(tmp_path / "var")}


def closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


async def test_unreachable_database_names_the_setting_and_hides_the_password(clean_env: dict[str, str]) -> None:
    url = f"postgresql+asyncpg://talent:s3cret@127.0.0.1:{closed_port()}/x"
    for argv in (["month-close", "2026-11"], ["rate", "2026"], ["migrate"], ["show", "dead"]):
        line = one_line_error(await run_cli(*argv, env={**clean_env, "DATABASE_URL": url}))
        assert "DATABASE_URL" in line and "s3cret" not in line, (argv, line)


async def test_unusable_sqlite_path_and_unsupported_url(clean_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    line = one_line_error(await run_cli("month-close", "2026-11",
                                        env={**clean_env, "DATABASE_URL": f"sqlite+aiosqlite:///{blocker}/x.db"}))
    assert str(blocker) in line
    line = one_line_error(await run_cli("month-close", "2026-11", env={**clean_env, "DATABASE_URL": "mysql://x/y"}))
    assert "DATABASE_URL" in line and "sqlite+aiosqlite" in line


async def test_bad_dotenv_values(clean_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "cwd"
    folder.mkdir()
    env = {k: v for k, v in clean_env.items() if k != "REDIS_URL"}
    for bad, name in (("BOT_PORT=eighty", "BOT_PORT"), ("WECHAT_AES_KEY=tooshort", "WECHAT_AES_KEY"),
                      ("RATING_COHORT=district", "RATING_COHORT")):
        (folder / ".env").write_text(bad + "\n")
        proc = await asyncio.create_subprocess_exec(
            EXE, "show", "dead", cwd=folder, env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        line = one_line_error(Result(proc.returncode or 0, out.decode(), err.decode()))
        assert name in line and ".env" in line, line
        assert "tooshort" not in line  # secrets are never echoed


async def test_missing_redis_service(clean_env: dict[str, str]) -> None:
    env = {**clean_env, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}
    line = one_line_error(await run_cli("rebuild-boards", env=env))
    assert "Redis" in line or "REDIS_URL" in line


async def test_port_in_use(clean_env: dict[str, str], redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(await run_cli("serve", env={**clean_env, "REDIS_URL": redis_url,
                                                          "BOT_PORT": str(port)}))
    assert f"127.0.0.1:{port}" in line and "BOT_PORT" in line


async def test_servers_refuse_a_database_without_schema(clean_env: dict[str, str], tmp_path: Path,
                                                        redis_url: str) -> None:
    env = {**clean_env, "REDIS_URL": redis_url, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/empty.db"}
    for argv in (["serve"], ["worker", "--burst"]):
        line = one_line_error(await run_cli(*argv, env=env))
        assert "talenthome migrate" in line, line


def test_closed_pipe(clean_env: dict[str, str]) -> None:
    """`talenthome month-close 2026-11 | head -0`: the reader is gone before the command writes."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([EXE, "month-close", "2026-11"], stdout=write_end, stderr=subprocess.PIPE,
                              env={**os.environ, **clean_env}, text=True, timeout=60)
    finally:
        os.close(write_end)
    line = one_line_error(Result(proc.returncode, "", proc.stderr))
    assert proc.returncode == 141 and "pipe" in line


async def test_ctrl_c(clean_env: dict[str, str]) -> None:
    """Ctrl-C while `talenthome chat` waits for input."""
    proc = await asyncio.create_subprocess_exec(
        EXE, "chat", "--url", f"http://127.0.0.1:{closed_port()}/wechat", env={**os.environ, **clean_env},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 30)  # the greeting: it is now reading stdin
    assert first.startswith(b"Chatting with")
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    line = one_line_error(Result(proc.returncode or 0, out.decode(), err.decode()))
    assert proc.returncode == 130 and "Ctrl-C" in line
