"""Run the real `talenthome` console script from async tests without blocking the event loop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass

EXE = os.path.join(os.path.dirname(sys.executable), "talenthome")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str], stdin: str | None = None, limit_s: float = 60) -> Result:
    proc = await asyncio.create_subprocess_exec(
        EXE, *args, env={**os.environ, **env}, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), limit_s)
    return Result(proc.returncode or 0, out.decode(), err.decode())


def run_many(url: str, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run `talenthome` once per argv list against DATABASE_URL=url, side by side (from sync tests; the
    commands must not depend on each other)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "RATING_COHORT")}
    env["DATABASE_URL"] = url
    procs = [(argv, subprocess.Popen([EXE, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)) for argv in commands]
    out = []
    for argv, proc in procs:
        stdout, stderr = proc.communicate(timeout=60)
        out.append(subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr))
    return out
