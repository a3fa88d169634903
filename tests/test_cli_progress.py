"""Long commands draw a progress bar on a terminal and stay quiet elsewhere (issue 9)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path

from tests.cli import EXE

STATIONS = ("code,name,kind,type,county,certified_on\n"
            + "".join(f"ST{i:04d},站点{i},home,comprehensive,鲤城,2025-03-01\n" for i in range(300)))


def _run(argv: list[str], env: dict[str, str], *, tty: bool) -> tuple[int, str, bytes]:
    """Run the script with stderr on a pseudo-terminal (tty) or a pipe; return (code, stdout, stderr)."""
    env = {**os.environ, **env, "TERM": "xterm", "COLUMNS": "100"}
    if not tty:
        proc = subprocess.run([EXE, *argv], env=env, capture_output=True, timeout=60)
        return proc.returncode, proc.stdout.decode(), proc.stderr
    master, slave = pty.openpty()
    proc2 = subprocess.Popen([EXE, *argv], env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc2.communicate(timeout=60)
    os.close(master)
    return proc2.returncode, out.decode(), seen


def test_import_shows_a_bar_on_a_terminal_only(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "stations.csv"
    path.write_text(STATIONS, encoding="utf-8")
    env = {"DATABASE_URL": sqlite_url}
    code, out, err = _run(["import-stations", str(path)], env, tty=True)
    assert code == 0 and "新增 300" in out
    assert "写入站点".encode() in err and "━".encode() in err  # the bar, on the terminal (stderr)
    code, out, err = _run(["import-stations", str(path)], env, tty=False)
    assert code == 0 and "未变 300" in out and err == b""  # not a terminal: nothing but the result


def test_rate_and_rebuild_quiet_off_a_terminal(sqlite_url: str, redis_url: str) -> None:
    env = {"DATABASE_URL": sqlite_url, "REDIS_URL": redis_url}
    for argv in (["rate", "2025"], ["rebuild-boards"]):
        code, out, err = _run(argv, env, tty=False)
        assert code == 0 and out and err == b"", (argv, err)
    code, _, err = _run(["rebuild-boards"], env, tty=True)
    assert code == 0 and "重建排行榜".encode() in err
