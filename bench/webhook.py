"""Webhook benchmark (SPEC 7; issue 3, "Benchmark").

Signed WeChat `SCAN` callbacks of bound talents at station codes, at 64 concurrent connections, against:

  (a) the bot: `talenthome serve` on SQLite (a file in a temporary folder) and a private Redis. Every request
      is a new (talent, station) pair of the day, so every one verifies, parses, de-duplicates, records an
      accepted visit (group commit, bot/batcher.py) and enqueues its visit job (`apply`) before it is answered;
  (b) the baseline, in the same run: a bare aiohttp handler that checks the signature, parses with wechatpy
      and renders a text reply (in safe mode it also decrypts and encrypts, as the bot must).

Load comes from wrk (one thread, keep-alive connections, requests prepared just before each run and
signed with fresh timestamps and unique nonces); both servers are single processes on the same machine,
measured in alternating rounds (the median round is reported, with each server's CPU time per request).
After the runs the database and the arq queue are checked: one accepted visit and one queued job per
request. Target: bot req/s >= 0.5x the bare handler's, p99 < 100 ms.

    .venv/bin/python bench/webhook.py                      # plain and safe mode, 10 s each, writes BENCHMARKS.md
    .venv/bin/python bench/webhook.py --mode plain --duration 5 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import resource
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.common import (  # noqa: E402
    create_pg_database,
    fmt_int,
    format_table,
    machine_info,
    print_machine,
    replace_section,
    stop_on_sigterm,
    temp_dir,
    temp_postgres,
)
from talenthome.servers import RedisServer, free_port, pg_bindir  # noqa: E402

TOKEN = "benchtoken"
APPID = "wxbench000000001"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_bench00000001"
REPLY = "打卡成功！鲤城人才之家：站点和您各得 1 积分，稍后到账。发送“积分”可查看。"
HEADING = "## Webhook"

WRK_SCRIPT = r"""
local reqs = {}
local idx = 0
local wrapped = 0
init = function(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local path, body = line:match("^([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", path, {["Content-Type"] = "text/xml"}, body)
  end
  f:close()
end
request = function()
  idx = idx + 1
  if idx > #reqs then idx = 1; wrapped = wrapped + 1 end
  return reqs[idx]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"status": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


# -- the bare baseline ----------------------------------------------------------------------------------------
def bare_server(port: int, aes: bool, use_uvloop: bool) -> None:
    """Check the signature, parse with wechatpy, render a text reply (decrypt/encrypt in safe mode). On
    asyncio's own event loop unless `--bare-loop uvloop`."""
    from aiohttp import web
    from wechatpy import parse_message
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.replies import TextReply

    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID) if aes else None

    def signed(q: Any, *extra: str, field: str = "signature") -> bool:
        expected = hashlib.sha1("".join(sorted([TOKEN, q.get("timestamp", ""), q.get("nonce", ""), *extra]))
                                .encode()).hexdigest()
        return hmac.compare_digest(q.get(field, "").encode(), expected.encode())

    async def handle(request: web.Request) -> web.Response:
        q = request.query
        if not signed(q):
            return web.Response(status=403)
        body = await request.read()
        if crypto is not None:
            xml = crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        else:
            xml = body
        msg = parse_message(xml)
        reply = TextReply(message=msg, content=REPLY).render()
        if crypto is not None:
            reply = crypto.encrypt_message(reply, q["nonce"], q["timestamp"])
        return web.Response(text=reply, content_type="application/xml")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/wechat", handle)
    app.router.add_get("/healthz", healthz)
    loop = None
    if use_uvloop:
        import uvloop
        loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=port, print=lambda *_: None, access_log=None, loop=loop)


# -- data and requests ----------------------------------------------------------------------------------------
def seed(db_path: str, stations: int, talents: int) -> None:
    """Schema and rows, written with the models' metadata through plain sqlite3 (fast, synchronous)."""
    from scoring import periods
    from scoring.clock import utcnow
    from scoring.db import make_engine
    from scoring.models import Base

    engine = make_engine(f"sqlite:///{db_path}", sync=True)
    Base.metadata.create_all(engine)
    engine.dispose()
    now = utcnow().isoformat(sep=" ")
    certified = date(2020, 5, 1)
    eligible = periods.eligible_from(certified).isoformat(sep=" ")
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executemany(
            "INSERT INTO stations (id, code, name, kind, type, county, certified_on, eligible_from, stars, status,"
            " demotion_streak, created_at, updated_at) VALUES (?, ?, ?, 'home', 'comprehensive', '鲤城区', ?, ?,"
            " 3, 'active', 0, ?, ?)",
            [(i, f"B{i:05d}", f"人才之家{i:05d}", certified.isoformat(), eligible, now, now)
             for i in range(1, stations + 1)])
        db.executemany(
            "INSERT INTO talents (id, cert_no, name, phone, category, county, openid, bound_at, created_at)"
            " VALUES (?, ?, ?, '', 'A', '丰泽区', ?, ?, ?)",
            [(i, f"QZ{i:07d}", f"人才{i}", f"oBench{i:07d}", now, now) for i in range(1, talents + 1)])


async def seed_postgres(url: str, stations: int, talents: int) -> None:
    """The same schema and rows on PostgreSQL (the models' metadata, Core executemany)."""
    from scoring import periods
    from scoring.clock import utcnow
    from scoring.db import make_engine
    from scoring.models import Base, Station, Talent

    engine = make_engine(url)
    now = utcnow()
    certified = date(2020, 5, 1)
    eligible = periods.eligible_from(certified)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
            await conn.execute(Station.__table__.insert(), [
                {"id": i, "code": f"B{i:05d}", "name": f"人才之家{i:05d}", "kind": "home", "type": "comprehensive",
                 "county": "鲤城区", "certified_on": certified, "eligible_from": eligible, "stars": 3,
                 "status": "active", "demotion_streak": 0, "created_at": now, "updated_at": now}
                for i in range(1, stations + 1)])
            await conn.execute(Talent.__table__.insert(), [
                {"id": i, "cert_no": f"QZ{i:07d}", "name": f"人才{i}", "phone": "", "category": "A",
                 "county": "丰泽区", "openid": f"oBench{i:07d}", "bound_at": now, "created_at": now}
                for i in range(1, talents + 1)])
    finally:
        await engine.dispose()


async def count_postgres(url: str) -> tuple[int, int]:
    """(accepted visits, rejected visits) in a PostgreSQL bench database."""
    from sqlalchemy import text

    from scoring.db import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT COUNT(*) FILTER (WHERE status = 'accepted'),"
                                           " COUNT(*) FILTER (WHERE status = 'rejected') FROM visits"))).one()
    finally:
        await engine.dispose()
    return int(row[0]), int(row[1])


def _signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _cdata(value: str) -> str:
    return "<![CDATA[" + value + "]]>"


def write_requests(path: str, first: int, count: int, stations: int, talents: int, aes: bool) -> None:
    """`count` signed SCAN callbacks, one per line (`path?query<TAB>body`), pair numbers first.. on:
    pair n is talent n % talents + 1 at station (n // talents) % stations + 1, so no pair repeats."""
    from wechatpy.crypto import PrpCrypto

    from scoring.settings import Settings
    from scoring.tokens import station_scene

    settings = Settings(_env_file=None, wechat_token=TOKEN, wechat_appid=APPID,  # type: ignore[call-arg]
                        wechat_secret="benchsecret")
    key, now = settings.scene_key, time.time()
    scenes = {s: station_scene(key, f"B{s:05d}", now, settings.station_code_rotation_s)
              for s in range(1, stations + 1)}
    prp = PrpCrypto(base64.b64decode(AES_KEY + "=")) if aes else None
    ts = str(int(now))
    with open(path, "w", encoding="utf-8") as fh:
        for n in range(first, first + count):
            t, s = n % talents + 1, (n // talents) % stations + 1
            xml = ("<xml>" f"<ToUserName>{_cdata(ACCOUNT)}</ToUserName>"
                   f"<FromUserName>{_cdata(f'oBench{t:07d}')}</FromUserName>"
                   f"<CreateTime>{int(now)}</CreateTime><MsgType>{_cdata('event')}</MsgType>"
                   f"<Event>{_cdata('SCAN')}</Event><EventKey>{_cdata(scenes[s])}</EventKey>"
                   f"<Ticket>{_cdata('gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2tUZWtpeTdsdW5zT0c')}</Ticket>"
                   "</xml>")
            nonce = f"{n}{secrets.randbelow(10**6):06d}"
            query = f"timestamp={ts}&nonce={nonce}&signature={_signature(TOKEN, ts, nonce)}&openid=x"
            if prp is not None:
                enc = prp.encrypt(xml, APPID)
                enc = enc.decode() if isinstance(enc, bytes) else enc
                query += f"&encrypt_type=aes&msg_signature={_signature(TOKEN, ts, nonce, enc)}"
                xml = f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><Encrypt>{_cdata(enc)}</Encrypt></xml>"
            fh.write(f"/wechat?{query}\t{xml}\n")


# -- running ----------------------------------------------------------------------------------------------------
@dataclass
class Run:
    label: str
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    wrapped: bool
    cpu_s: float = 0.0  # CPU time (user + system) the server process used during the run
    others: dict[str, float] = field(default_factory=dict)  # CPU s of wrk, Redis, PostgreSQL in the run

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / max(1, self.requests)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and its children (PostgreSQL's postmaster and its backends)."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(name) == root or int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children_cpu_seconds() -> float:
    """CPU time of this process's waited-for children (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_healthy(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} not healthy after {seconds:.0f} s")


def wrk(label: str, port: int, requests_file: str, script: str, duration: float, connections: int,
        count: int) -> Run:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "5s",
                          "-s", script, f"http://127.0.0.1:{port}/wechat", "--", requests_file],
                         capture_output=True, text=True, timeout=duration + 120, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    errors = r["status"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    return Run(label, r["requests"], r["duration_us"] / 1e6, r["p50_us"] / 1000, r["p90_us"] / 1000,
               r["p99_us"] / 1000, r["max_us"] / 1000, errors, r["requests"] > count)


def verify(db_path: str, redis_url: str) -> tuple[int, int, int]:
    """(accepted visits, rejected visits, queued visit jobs); `db_path` a SQLite file or a PostgreSQL URL."""
    import redis

    if db_path.startswith("postgresql"):
        accepted, rejected = asyncio.run(count_postgres(db_path))
    else:
        with sqlite3.connect(db_path) as db:
            accepted, rejected = (db.execute("SELECT COALESCE(SUM(status = 'accepted'), 0),"
                                             " COALESCE(SUM(status = 'rejected'), 0) FROM visits").fetchone())
    client = redis.Redis.from_url(redis_url)
    try:
        jobs = int(client.zcard("arq:queue"))
    finally:
        client.close()
    return int(accepted), int(rejected), jobs


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def start_server(target: str, mode: str, folder: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if target == "bot":
        cmd = [sys.executable, "-m", "talenthome.cli", "serve"]
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--bare-server", str(port)]
        cmd += ["--aes"] if mode == "safe" else []
        cmd += ["--bare-uvloop"] if env.get("BENCH_BARE_LOOP") == "uvloop" else []
    with open(os.path.join(folder, f"{target}-{mode}.log"), "w") as log:
        proc = subprocess.Popen(cmd, env=env | {"BOT_PORT": str(port)}, cwd=folder, stdout=subprocess.DEVNULL,
                                stderr=log)
    wait_healthy(port, proc)
    return proc, port


def listening(pid: int, port: int) -> bool:
    """Does process `pid` hold a socket listening on `port` (IPv4)? From /proc/net/tcp and /proc/PID/fd."""
    inodes = set()
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(f"/proc/{pid}/fd/{name}") in inodes:
                return True
        except OSError:
            continue
    return False


def start_bots(count: int, folder: str, env: dict[str, str], name: str) -> tuple[list[subprocess.Popen[bytes]], int]:
    """`count` `talenthome serve` processes sharing one port (SO_REUSEPORT, as `talenthome run --bots N`
    starts them), each listening before this returns."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    for i in range(count):
        with open(os.path.join(folder, f"{name}-{i + 1}.log"), "w") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "talenthome.cli", "serve"],
                                          env=env | {"BOT_PORT": str(port), "BOT_REUSE_PORT": "1"}, cwd=folder,
                                          stdout=subprocess.DEVNULL, stderr=log))
    deadline = time.monotonic() + 60
    for proc in procs:
        while not listening(proc.pid, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: a bot process did not start (see {name}-*.log)")
            time.sleep(0.1)
        wait_healthy(port, proc)
    return procs, port


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def profile(pid: int, args: argparse.Namespace, name: str) -> subprocess.Popen[bytes] | None:
    """`--py-spy DIR`: py-spy samples the server through the run (collapsed stacks, one file per run, GIL
    holder only, idle frames left out); `bench/spy_summary.py` (or any flame-graph tool) reads them."""
    if not args.py_spy:
        return None
    os.makedirs(args.py_spy, exist_ok=True)
    out = os.path.join(args.py_spy, f"{name}-{time.strftime('%H%M%S')}.txt")
    exe = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return subprocess.Popen([exe if os.path.exists(exe) else "py-spy", "record", "--pid", str(pid),
                             "--format", "raw", "--gil", "--threads",
                             "--rate", "250", "-d", str(max(1, round(args.duration))), "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def median_run(runs: list[Run]) -> Run:
    """The run with the median throughput (its own latencies go with it)."""
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


def bench_mode(folder: str, mode: str, args: argparse.Namespace, redis_url: str, script: str) -> dict[str, Any]:
    """Both servers up side by side; warm-ups, then `rounds` alternating measured runs (bare, bot, bare,
    bot, ...) so that a change in the machine's load hits both alike. Every bot request is a new pair."""
    aes = mode == "safe"
    db_path = os.path.join(folder, f"bench-{mode}.db")
    seed(db_path, args.stations, args.talents)
    per_run, warm = int(args.duration * args.max_rate), int(args.warmup * args.max_rate)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "DATABASE_", "REDIS_", "BOT_"))}
    env |= {"DATABASE_URL": f"sqlite+aiosqlite:///{db_path}", "REDIS_URL": redis_url, "WECHAT_TOKEN": TOKEN,
            "WECHAT_APPID": APPID, "WECHAT_SECRET": "benchsecret", "BOT_HOST": "127.0.0.1",
            "BOT_UVLOOP": "1" if args.bot_loop == "uvloop" else "0", "BENCH_BARE_LOOP": args.bare_loop}
    if aes:
        env["WECHAT_AES_KEY"] = AES_KEY
    servers = {target: start_server(target, mode, folder, env) for target in ("bare", "bot")}
    runs: dict[str, list[Run]] = {"bare": [], "bot": []}
    loads: list[float] = []
    next_pair = 0
    try:
        for target, (_, port) in servers.items():
            path = os.path.join(folder, f"warm-{mode}-{target}.txt")
            write_requests(path, next_pair, warm, args.stations, args.talents, aes)
            next_pair += warm
            wrk(f"{target} warm-up", port, path, script, args.warmup, args.connections, warm)
        for _ in range(args.rounds):
            for target, (proc, port) in servers.items():
                path = os.path.join(folder, f"req-{mode}-{target}.txt")
                # Signed just before the run: fresh timestamps (the bot refuses > 300 s) and station codes.
                write_requests(path, next_pair, per_run, args.stations, args.talents, aes)
                next_pair += per_run
                cpu_before = cpu_seconds(proc.pid)
                spy = profile(proc.pid, args, f"{mode}-{target}") if target == "bot" else None
                run = wrk(target, port, path, script, args.duration, args.connections, per_run)
                run.cpu_s = cpu_seconds(proc.pid) - cpu_before
                if spy is not None:
                    spy.wait()
                loads.append(load_average())
                runs[target].append(run)
                print(f"  {mode:5} {target:5} {fmt_int(run.rps):>7} req/s  p50 {run.p50_ms:6.1f} ms  "
                      f"p99 {run.p99_ms:6.1f} ms  CPU {run.cpu_ms_per_request:.2f} ms/req  errors {run.errors}"
                      + ("  (requests wrapped!)" if run.wrapped else ""), flush=True)
    finally:
        for proc, _ in servers.values():
            stop_server(proc)
    # With the bot stopped, every answered scan (warm-ups included) must be one accepted visit with one job.
    visits = verify(db_path, redis_url)
    answered = sum(r.requests for r in runs["bot"])
    print(f"        bot recorded {visits[0]} accepted visits ({visits[1]} rejected), {visits[2]} visit jobs "
          f"queued, warm-ups included; wrk counted {answered} answers in the measured runs", flush=True)
    return {"mode": mode, "bare": median_run(runs["bare"]), "bot": median_run(runs["bot"]), "runs": runs,
            "visits": visits, "answered": answered, "load": sum(loads) / len(loads)}


def bench_postgres(folder: str, args: argparse.Namespace, redis_url: str, script: str, pg_url: str,
                   meters: dict[str, Any]) -> dict[str, Any]:
    """Plain mode on PostgreSQL: one bot process and `--pg-bots` processes on one port, both groups up side
    by side, measured in alternating rounds like bench_mode. Every request is a new pair (one database)."""
    asyncio.run(seed_postgres(pg_url, args.stations, args.talents))
    per_run, warm = int(args.duration * args.max_rate), int(args.warmup * args.max_rate)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "DATABASE_", "REDIS_", "BOT_"))}
    env |= {"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "WECHAT_TOKEN": TOKEN, "WECHAT_APPID": APPID,
            "WECHAT_SECRET": "benchsecret", "BOT_HOST": "127.0.0.1",
            "BOT_UVLOOP": "1" if args.bot_loop == "uvloop" else "0"}
    labels = {1: "1 bot", args.pg_bots: f"{args.pg_bots} bots"}
    groups: dict[str, tuple[list[subprocess.Popen[bytes]], int]] = {}
    runs: dict[str, list[Run]] = {label: [] for label in labels.values()}
    loads: list[float] = []
    next_pair = 10_000_000  # far from the SQLite modes' pairs (another database, but the same Redis keys)
    try:
        for count, label in labels.items():
            groups[label] = start_bots(count, folder, env, f"pg-{count}")
        for label, (_, port) in groups.items():
            path = os.path.join(folder, f"warm-pg-{label[0]}.txt")
            write_requests(path, next_pair, warm, args.stations, args.talents, False)
            next_pair += warm
            wrk(f"{label} warm-up", port, path, script, args.warmup, args.connections, warm)
        for _ in range(args.rounds):
            for label, (procs, port) in groups.items():
                path = os.path.join(folder, f"req-pg-{label[0]}.txt")
                write_requests(path, next_pair, per_run, args.stations, args.talents, False)
                next_pair += per_run
                cpu_before = sum(cpu_seconds(p.pid) for p in procs)
                others_before = {name: meter() for name, meter in meters.items()}
                run = wrk(label, port, path, script, args.duration, args.connections, per_run)
                run.cpu_s = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
                run.others = {name: meter() - others_before[name] for name, meter in meters.items()}
                loads.append(load_average())
                runs[label].append(run)
                others = "  ".join(f"{name} {1000 * cpu / max(1, run.requests):.2f}"
                                   for name, cpu in run.others.items())
                print(f"  pg    {label:7} {fmt_int(run.rps):>7} req/s  p50 {run.p50_ms:6.1f} ms  "
                      f"p99 {run.p99_ms:6.1f} ms  CPU {run.cpu_ms_per_request:.2f} ms/req (others: {others})  "
                      f"errors {run.errors}" + ("  (requests wrapped!)" if run.wrapped else ""), flush=True)
    finally:
        for procs, _ in groups.values():
            for proc in procs:
                stop_server(proc)
    visits = verify(pg_url, redis_url)
    answered = sum(r.requests for rs in runs.values() for r in rs)
    print(f"        bots recorded {visits[0]} accepted visits ({visits[1]} rejected), {visits[2]} visit jobs "
          f"queued, warm-ups included; wrk counted {answered} answers in the measured runs", flush=True)
    one, many = (median_run(runs[label]) for label in labels.values())
    ratios = [b.rps / a.rps for a, b in zip(*runs.values(), strict=True)]
    return {"labels": list(labels.values()), "one": one, "many": many, "runs": runs, "ratios": ratios,
            "visits": visits, "answered": answered, "load": sum(loads) / len(loads)}


def cpu_budget(run: Run) -> dict[str, float]:
    """CPU ms per answered request of the bots, wrk, Redis and PostgreSQL in one run."""
    per = {"bots": run.cpu_ms_per_request}
    per |= {name: 1000 * cpu / max(1, run.requests) for name, cpu in run.others.items()}
    return per


def pg_report(r: dict[str, Any], args: argparse.Namespace, cores: int) -> str:
    one, many = r["one"], r["many"]
    n = args.pg_bots
    ratio = many.rps / one.rps
    rows = []
    for label, run in ((r["labels"][0], one), (r["labels"][1], many)):
        per = cpu_budget(run)
        rows.append([f"PostgreSQL, plain: {label}", fmt_int(run.rps), f"{run.p50_ms:.1f}", f"{run.p99_ms:.1f}",
                     *(f"{per.get(k, float('nan')):.2f}" for k in ("bots", "wrk", "redis", "postgres")),
                     f"{sum(per.values()):.2f}"])
    table = format_table(["run (median of the rounds)", "req/s", "p50 ms", "p99 ms", "CPU ms/req: bots", "wrk",
                          "Redis", "PostgreSQL", "all"], rows)
    # The model: a request costs `bot` ms of one bot process's CPU (one process runs on one core at a time)
    # and `total` ms of CPU in all (bots, load generator, Redis, PostgreSQL), all on the same cores.
    per = cpu_budget(many)
    bot, total = per["bots"], sum(per.values())

    def bound(bots: int, cpus: int) -> float:
        return min(bots * 1000 / bot, cpus * 1000 / total)

    limits = ", ".join(f"{c} cores: {fmt_int(bound(1, c))} req/s with 1 bot, {fmt_int(bound(n, c))} with {n} "
                       f"({bound(n, c) / bound(1, c):.2f}x), {fmt_int(c * 1000 / total)} with enough bots"
                       for c in sorted({cores, 8}))
    return f"""{table}

{r['labels'][1]} / 1 bot: {ratio:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in r['ratios'])}; target >= 1.6);
one-minute load average {r['load']:.1f}. Checked after the runs: {r['visits'][0]:,} accepted visits,
{r['visits'][1]} rejected, {r['visits'][2]:,} queued jobs (warm-ups included; wrk counted {r['answered']:,}
answers in the measured runs).

CPU budget (from the {n}-bot run): a callback costs {bot:.2f} ms of bot CPU and {total:.2f} ms of CPU in all
(bots, wrk, Redis, PostgreSQL on the same machine). A bot process runs on one core at a time, so N bots
answer at most N x {fmt_int(1000 / bot)} req/s; all of them together with wrk, Redis and PostgreSQL at most
cores x {fmt_int(1000 / total)} req/s. Bounds, on a machine with nothing else running: {limits}.
On {cores} cores the bots share the cores with wrk, Redis and PostgreSQL, so the {n}-bot/1-bot ratio is at
most min({n}, cores x bot / all) = {min(n, cores * bot / total):.2f} here (with 2 bots on 2 cores, below 1.6
as soon as the others take more than a fifth of all the CPU). On 8 cores the bots no longer compete with them:
{n} bots give close to {n}x (PostgreSQL's commits and Redis are far from busy at these rates), and the
machine's CPU runs out near 8 x {fmt_int(1000 / total)} req/s (without wrk, which a real deployment does not
run, more).
"""


def report(results: list[dict[str, Any]], args: argparse.Namespace, info: dict[str, str], command: str) -> str:
    rows = []
    for r in results:
        bare, bot = r["bare"], r["bot"]
        ratio = bot.rps / bare.rps
        cpu_ratio = bare.cpu_ms_per_request / bot.cpu_ms_per_request if bot.cpu_ms_per_request else float("nan")
        ok = "yes" if ratio >= 0.5 and bot.p99_ms < 100 and bot.errors == 0 else "no"
        all_ratios = ", ".join(f"{b.rps / a.rps:.2f}" for a, b in zip(r["runs"]["bare"], r["runs"]["bot"],
                                                                        strict=True))
        rows.append([f"{r['mode']}: bare handler", fmt_int(bare.rps), f"{bare.p50_ms:.1f}", f"{bare.p99_ms:.1f}",
                     f"{bare.cpu_ms_per_request:.2f}", "1.00", ""])
        rows.append([f"{r['mode']}: bot (visit recorded, job queued)", fmt_int(bot.rps), f"{bot.p50_ms:.1f}",
                     f"{bot.p99_ms:.1f}", f"{bot.cpu_ms_per_request:.2f}",
                     f"{ratio:.2f} (rounds: {all_ratios}; CPU: {cpu_ratio:.2f})", ok])
    table = format_table(["run (median of the rounds)", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "ratio",
                          "target met"], rows)
    checks = "; ".join(f"{r['mode']}: {r['visits'][0]:,} accepted visits, {r['visits'][1]} rejected, "
                       f"{r['visits'][2]:,} queued jobs (warm-ups included; wrk counted {r['answered']:,} answers "
                       "in the measured runs)" for r in results)
    loads = ", ".join(f"{r['mode']} {r['load']:.1f}" for r in results)
    machine = ", ".join(f"{k} {v}" for k, v in info.items())
    return f"""Measured {time.strftime('%Y-%m-%d %H:%M')} by `{command}` on: {machine}.
One-minute load average during the runs: {loads} (on {info.get('nproc', '?')} cores; other work on the machine
shows up here and hits the bot, whose reply waits on Redis and a database thread, more than the bare handler).

Signed `SCAN` callbacks of bound talents at station codes, {args.connections} keep-alive connections, wrk with
one thread, {args.rounds} rounds of {args.duration:g} s per server, bare and bot alternating, after warm-ups;
{args.stations} stations and {args.talents:,} bound talents. Every request is a new (talent, station) pair, so
each is an accepted visit written to SQLite (WAL) and a visit job (`apply`) queued in Redis before its reply.
Baseline in the same run: a bare aiohttp handler that checks the signature, parses with wechatpy and renders
a text reply (in safe mode it decrypts and encrypts too). Both servers are single processes, sharing the
cores with wrk and Redis. "CPU ms/req" is the server process's own CPU time (user + system, all threads)
per answered request; the CPU ratio (bare / bot) is what the throughput ratio approaches when both servers
are CPU-bound with a core each (on a busy machine the bot also waits on Redis and its database thread).
Target (SPEC 7): ratio >= 0.5 and p99 < 100 ms.

{table}

Checked after the runs: {checks}.

What a check-in callback does beyond the baseline: the XML size/DTD guard, one Redis call that is both the
replay guard on (timestamp, nonce) and the de-duplication claim, the scene's HMAC, a share of one group
commit (bot/batcher.py: the scans that arrive while the previous batch is written go together, in one
transaction on a database thread: two SELECTs, one `INSERT .. ON CONFLICT DO NOTHING RETURNING`, one commit),
a share of one Lua call that enqueues all the batch's jobs, and the reply cached for WeChat's retries. The
bot's small Redis commands are pipelined automatically across concurrent callbacks (bot/redis_pipe.py). Each
reply still waits for its own committed row and queued job.

How the bot runs (issue 14): on uvloop (BOT_UVLOOP, default on; the bare handler stays on asyncio's own
loop unless `--bare-loop uvloop`); the XML parsed on expat directly (bot/xmlsafe.py, xmltodict's dict);
Lua scripts sent as EVALSHA and commands packed by hiredis (bot/redis_pipe.py); after startup the app's
long-lived objects are frozen out of the garbage collector's sight (bot/loop.py). `--py-spy DIR` profiles
the bot's runs; `bench/spy_summary.py` sums the samples. In such a profile (plain mode, samples of the
thread holding the GIL) the bot's time went to: writing responses and Redis commands to their sockets
(system calls, as in the baseline) about a quarter, redis-py's pipelines about 14%, routing and the check-in
handler about 8%, the database thread about 6%, the XML parse about 4%; the rest is aiohttp and the loop.

What limits it: the single Python process's CPU (HTTP, XML, HMAC, redis-py and SQLAlchemy all run under one
GIL; SQLite commits are no longer the limit, a batch commits dozens of visits at once), and on a busy machine
the scheduling of the processes a reply waits on (Redis, the database thread). CPU per request also grows
when the rate falls: fewer callbacks share a batch and a Redis round trip. More throughput comes from more
bot processes (no per-process state; the database's unique credit key arbitrates), on PostgreSQL, since
SQLite has one writer: see the PostgreSQL runs below.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("plain", "safe", "both", "none"), default="both",
                    help="the SQLite runs against the bare handler (none: only the PostgreSQL processes run)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--stations", type=int, default=200)
    ap.add_argument("--talents", type=int, default=5000)
    ap.add_argument("--max-rate", type=float, default=15000.0,
                    help="requests prepared per second of run (more than any server here answers)")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--py-spy", metavar="DIR", help="profile the bot's measured runs with py-spy into DIR")
    ap.add_argument("--bot-loop", choices=("uvloop", "asyncio"), default="uvloop",
                    help="the bot's event loop (BOT_UVLOOP; default uvloop, as `talenthome serve`)")
    ap.add_argument("--bare-loop", choices=("asyncio", "uvloop"), default="asyncio",
                    help="the bare handler's event loop (default asyncio's own, as a plain aiohttp app)")
    ap.add_argument("--pg-bots", type=int, default=2,
                    help="on PostgreSQL, compare this many bot processes on one port with one (0: skip)")
    ap.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--bare-uvloop", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--aes", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        bare_server(args.bare_server, args.aes, args.bare_uvloop)
        return 0
    if shutil.which("wrk") is None:
        print("bench/webhook.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    stop_on_sigterm()
    info = machine_info()
    print("machine:")
    print_machine(info)
    command = "python bench/webhook.py" + "".join(f" {a}" for a in sys.argv[1:])
    results = []
    pg_result: dict[str, Any] | None = None
    with temp_dir() as folder:
        script = os.path.join(folder, "scan.lua")
        with open(script, "w") as fh:
            fh.write(WRK_SCRIPT)
        redis_server = RedisServer(os.path.join(folder, "redis")).start(persist=False)
        try:
            for db, mode in enumerate({"both": ("plain", "safe"), "none": ()}.get(args.mode, (args.mode,))):
                # One Redis database per mode: each mode's SQLite file numbers its visits from 1 again.
                url = redis_server.url.rsplit("/", 1)[0] + f"/{db}"
                results.append(bench_mode(folder, mode, args, url, script))
            if args.pg_bots > 1 and pg_bindir() is not None:
                with temp_postgres() as pg:
                    pg_url = asyncio.run(create_pg_database(pg, "webhook_bench"))
                    with open(os.path.join(pg.folder, "data", "postmaster.pid")) as fh:
                        postmaster = int(fh.readline())
                    assert redis_server.proc is not None
                    redis_pid = redis_server.proc.pid
                    meters = {"wrk": children_cpu_seconds, "redis": lambda: cpu_seconds(redis_pid),
                              "postgres": lambda: tree_cpu_seconds(postmaster)}
                    pg_result = bench_postgres(folder, args, redis_server.url.rsplit("/", 1)[0] + "/5", script,
                                               pg_url, meters)
            elif args.pg_bots > 1:
                print("PostgreSQL binaries not found: no multi-process run", flush=True)
        finally:
            redis_server.stop()
    body = report(results, args, info, command) if results else (
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} by `{command}` on: "
        + ", ".join(f"{k} {v}" for k, v in info.items()) + ".\n")
    if pg_result is not None:
        body += "\n" + pg_report(pg_result, args, int(info.get("nproc", "2") or 2))
    print()
    print(body)
    if not args.no_write and results:
        replace_section(os.path.join(ROOT, "BENCHMARKS.md"), HEADING, body)
        print(f"BENCHMARKS.md: section {HEADING!r} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
