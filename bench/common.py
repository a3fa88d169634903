"""Pieces shared by the bench scripts: machine info, timers, temporary folders and PostgreSQL clusters,
a plain-text table, and replacing one section of BENCHMARKS.md.

Bench scripts are run as files (`python bench/x.py`); they put the repository root on sys.path first
(see `ROOT`) so that `bench.common`, `scoring` and `talenthome` import from the checkout.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from talenthome.servers import PostgresServer, ServerUnavailable, pg_bindir, server_env  # noqa: E402

# -- machine ----------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews absolute figures."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def postgres_version() -> str | None:
    bindir = pg_bindir()
    if bindir is None:
        return None
    try:
        out = subprocess.run([os.path.join(bindir, "postgres"), "--version"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\d+(\.\d+)+", out)
    return m.group(0) if m else None


def machine_info() -> dict[str, str]:
    mem = memory_gib()
    info = {
        "nproc": str(nproc()),
        "cpu": cpu_model(),
        "memory": f"{mem:.1f} GiB" if mem is not None else "?",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
        "sqlite": sqlite3.sqlite_version,
    }
    pg = postgres_version()
    if pg:
        info["postgresql"] = pg
    try:
        import sqlalchemy

        info["sqlalchemy"] = sqlalchemy.__version__
    except ImportError:
        pass
    return info


def print_machine(info: dict[str, str] | None = None) -> None:
    info = info or machine_info()
    width = max(len(k) for k in info)
    for k, v in info.items():
        print(f"  {k:<{width}}  {v}")


# -- timing -----------------------------------------------------------------------------------------


@dataclass
class Stopwatch:
    """Accumulates the time spent inside `with sw:` blocks (several laps add up)."""

    seconds: float = 0.0
    laps: int = 0
    _t0: float = field(default=0.0, repr=False)

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.laps += 1

    @property
    def ms(self) -> float:
        return self.seconds * 1000


@contextmanager
def timed(label: str, *, quiet: bool = False) -> Iterator[Stopwatch]:
    """Time one block and print `label ... 1.23 s` when it ends (unless quiet)."""
    sw = Stopwatch()
    with sw:
        yield sw
    if not quiet:
        print(f"  {label} ... {sw.seconds:.2f} s", flush=True)


async def median_ms(fn: Callable[[], Awaitable[Any]], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of `await fn()` in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


# -- temporary places and servers -------------------------------------------------------------------


def stop_on_sigterm() -> None:
    """Turn SIGTERM (and SIGHUP) into SystemExit so `finally` blocks stop servers and remove folders."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)


@contextmanager
def temp_dir(prefix: str = "talenthome-bench-") -> Iterator[str]:
    """A folder that is removed afterwards, whatever happens. World-traversable, so that a PostgreSQL
    cluster started below it as the `postgres` user (when we are root) can reach its own folder."""
    folder = tempfile.mkdtemp(prefix=prefix)
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def temp_postgres(prefix: str = "talenthome-bench-pg-") -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster (fsync off, as in the tests), stopped and deleted afterwards.

    Raises ServerUnavailable when the PostgreSQL binaries are not installed."""
    if pg_bindir() is None:
        raise ServerUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found")
    with temp_dir(prefix) as folder:
        server = PostgresServer(folder)
        try:
            server.start()
            yield server
        finally:
            server.stop()


async def create_pg_database(server: PostgresServer, name: str) -> str:
    """CREATE DATABASE `name` on the cluster; returns its SQLAlchemy (asyncpg) URL."""
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="postgres", database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.url(name)


# -- output -----------------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table, readable as plain text too."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def replace_section(path: str, heading: str, body: str) -> None:
    """Write `heading` + `body` into a Markdown file, replacing the section that starts with exactly
    `heading` (up to the next heading of the same or a higher level) or appending it; the rest of the
    file is kept. The write is atomic (temp file + rename)."""
    level = len(heading) - len(heading.lstrip("#"))
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        lines = ["# Benchmarks", ""]
    new = [heading, "", *body.strip("\n").splitlines(), ""]
    start = next((i for i, ln in enumerate(lines) if ln.strip() == heading.strip()), None)
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        out = [*lines, "", *new]
    else:
        end = start + 1
        while end < len(lines):
            m = re.match(r"(#{1,6}) ", lines[end])
            if m and len(m.group(1)) <= level:
                break
            end += 1
        out = [*lines[:start], *new, *lines[end:]]
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out).rstrip("\n") + "\n")
    os.replace(tmp, path)


# -- a PostgreSQL cluster kept between runs (bench/scale.py --keep) -----------------------------------------


@contextmanager
def kept_postgres(folder: str, options: str = "") -> Iterator[tuple[PostgresServer, bool]]:
    """A PostgreSQL cluster in `folder` that outlives the run: created (initdb, as temp_postgres) when the
    folder holds none, else started as it is. Yields (server, created); stopped (not deleted) afterwards.
    `options`: extra `-c name=value` server settings for this start."""
    bindir = pg_bindir()
    if bindir is None:
        raise ServerUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found")
    os.makedirs(folder, exist_ok=True)
    os.chmod(folder, 0o755)
    data = os.path.join(folder, "data")
    created = not os.path.exists(os.path.join(data, "PG_VERSION"))
    server = PostgresServer(folder)
    if created:
        server.start()
        server.stop()  # started once to initdb; restarted below with `options`
    import pwd

    if os.geteuid() == 0:
        user = "postgres"
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            user, pw = "nobody", pwd.getpwnam("nobody")
        os.makedirs(server.socket_dir, exist_ok=True)
        for d in (folder, server.socket_dir):
            os.chown(d, pw.pw_uid, pw.pw_gid)
        server._run_as = ["runuser", "-u", user, "--"]
    from talenthome.servers import free_port, server_env

    server.port = free_port()
    opts = (f"-p {server.port} -k {server.socket_dir} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off "
            f"-c full_page_writes=off -c max_connections=200 {options}")
    subprocess.run(server._cmd(os.path.join(bindir, "pg_ctl"), "-D", data, "-o", opts, "-l",
                               os.path.join(folder, "pg.log"), "-w", "-t", "120", "start"),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=server_env())
    server._bindir, server._data = bindir, data
    try:
        yield server, created
    finally:
        subprocess.run(server._cmd(os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "fast", "-t", "120", "-w",
                                   "stop"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env())


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
                 timeout: float = 3600) -> tuple[float, int, str]:
    """Run a command to its end: (wall seconds, peak RSS in KiB, stdout). Raises RuntimeError with its
    stderr when it fails. The peak is the child's VmHWM, read every 20 ms while it runs: wait4's ru_maxrss
    is no good here, as it counts the child's copy of this process between fork and exec."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        peak = 0
        while True:
            peak = max(peak, vm_hwm_kib(proc.pid) or 0)
            pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"{' '.join(cmd)}: no end after {timeout:.0f} s")
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {stderr.strip()[-2000:]}")
    return seconds, peak, stdout


def vm_hwm_kib(pid: int) -> int | None:
    """The peak resident set size of a running process (VmHWM in /proc), in KiB."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# -- soak helpers (bench/soak.py) -------------------------------------------------------------------


def restart_postgres(server: PostgresServer, down_s: float) -> None:
    """Stop a running throwaway cluster (`pg_ctl stop -m fast`: sessions are cut), keep it down for
    `down_s` seconds, and start it again on the same port and data directory (`pg_ctl start -w`)."""
    bindir, data = server._bindir, server._data  # set by PostgresServer.start()
    pg_ctl = os.path.join(bindir, "pg_ctl")
    env = server_env()
    subprocess.run(server._cmd(pg_ctl, "-D", data, "-m", "fast", "-t", "60", "-w", "stop"), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    time.sleep(down_s)  # the outage itself (this runs in a thread of the soak)
    opts = (f"-p {server.port} -k {server.socket_dir} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200")
    subprocess.run(server._cmd(pg_ctl, "-D", data, "-o", opts, "-l", os.path.join(server.folder, "pg.log"), "-w",
                               "-t", "60", "start"), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   env=env)


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process in KiB (psutil when installed, else /proc/<pid>/status VmRSS)."""
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process(pid).memory_info().rss // 1024)
    except ImportError:
        pass
    except Exception:  # the process is gone
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
