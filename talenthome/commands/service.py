"""`talenthome serve`, `worker`, `run` (both, with the private Redis), `qr`, `chat`."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import select
import signal
import subprocess
import sys

from scoring.migrate import upgrade
from scoring.settings import DEMO_SECRET, DEMO_TOKEN, Settings
from talenthome.errors import hide_password
from talenthome.runtime import CliError, PrivateRedis, redis_url, require_schema

NO_TEMPLATES_WARNING = (
    "talenthome: warning: no template message is configured (WECHAT_TEMPLATES / WECHAT_TEMPLATE_NOTICE): "
    "operators and talents get pushes only inside WeChat's 48-hour customer-service window; see README, "
    "'Pushes'.")


def templates_configured(settings: Settings) -> bool:
    return bool(settings.wechat_templates or settings.wechat_template_notice)


def is_loopback(host: str) -> bool:
    """Whether BOT_HOST listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name (or empty: every interface) may be reachable from outside


def demo_credentials(settings: Settings) -> list[str]:
    """The credentials still at their public demo values."""
    return [name for name, value, demo in (("WECHAT_TOKEN", settings.wechat_token, DEMO_TOKEN),
                                           ("WECHAT_SECRET", settings.wechat_secret, DEMO_SECRET))
            if value.get_secret_value() == demo]


def refuse_public_demo(settings: Settings) -> None:
    """The demo token and secret are in the public source: anyone could sign callbacks as any openid. They
    are for loopback only; on any other BOT_HOST the service does not start."""
    demo = demo_credentials(settings)
    if demo and not is_loopback(settings.bot_host):
        raise CliError(f"refusing to serve on BOT_HOST={settings.bot_host} with the public demo value of "
                       f"{' and '.join(demo)}: set the official account's own values, or listen on 127.0.0.1")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the WeChat bot (aiohttp) on BOT_HOST:BOT_PORT")
    p.set_defaults(func=serve)
    p = sub.add_parser("worker", help="run the arq worker (points, boards, pushes, calendar)")
    p.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    p.set_defaults(func=worker)
    p = sub.add_parser("run", help="run bot and worker together (starts a private Redis when REDIS_URL is unset)",
                       description="Run N bot processes sharing BOT_PORT (SO_REUSEPORT) and M arq workers, "
                                   "migrating the database first. They share no state in memory: the "
                                   "database and Redis arbitrate. Ctrl-C stops them all.")
    p.add_argument("--bots", type=_count, default=1, metavar="N", help="bot processes on the one port (default 1)")
    p.add_argument("--workers", type=_count, default=1, metavar="M", help="worker processes (default 1)")
    p.set_defaults(func=run)


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 64, got {text!r}")
    return int(text)


def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import create_app
    from bot.loop import new_event_loop, settle_heap_on_startup

    settings = Settings()
    refuse_public_demo(settings)
    require_schema(settings)
    private = PrivateRedis(settings.var_dir)
    settings.redis_url = redis_url(settings, private)
    try:
        app = create_app(settings)
        app.on_startup.append(settle_heap_on_startup)  # after the app's own startup: deps built
        web.run_app(app, host=settings.bot_host, port=settings.bot_port,
                    reuse_port=settings.bot_reuse_port or None, print=lambda *_: None, access_log=None,
                    handle_signals=True, loop=new_event_loop(settings.bot_uvloop))
    finally:
        private.stop()
    return 0


def worker(args: argparse.Namespace) -> int:
    from worker.settings import create

    settings = Settings()
    require_schema(settings)
    private = PrivateRedis(settings.var_dir)
    url = redis_url(settings, private)
    settings.redis_url = url
    try:
        asyncio.set_event_loop(asyncio.new_event_loop())
        create(url, settings, burst=args.burst).run()
    except asyncio.CancelledError:
        # Stopped (SIGTERM, Ctrl-C) while a job was running: arq cancels it on the way out. Not a failure:
        # every task is safe to run twice, and the job (or the sweeper) runs it again.
        print("talenthome: the worker stopped while a job was running; that job will run again",
              file=sys.stderr, flush=True)
    finally:
        private.stop()
    return 0


def banner(settings: Settings, redis: str) -> str:
    """What `run` prints: where to point WeChat and what to try. Never a secret: passwords in the URLs are
    masked and the Token is named, not shown (it is the value of WECHAT_TOKEN)."""
    base = f"http://{settings.bot_host}:{settings.bot_port}"
    demo = demo_credentials(settings)
    token = "the value of WECHAT_TOKEN" + (" (the demo value: loopback only)" if "WECHAT_TOKEN" in demo else "")
    aes = "the value of WECHAT_AES_KEY (safe mode)" if settings.safe_mode else "unset (plain mode)"
    return f"""
Talent Home bot and worker are running (Redis: {hide_password(redis)}, database: \
{hide_password(settings.database_url)}).
  WeChat callback URL:  {base}/wechat     (health: {base}/healthz)
  WeChat settings:      Token: {token}   AppID: {settings.wechat_appid}
                        EncodingAESKey: {aes}
  A sample city to look at:           .venv/bin/talenthome demo     (in another terminal; prints whom to be)
  Try it without an official account:  .venv/bin/talenthome chat     (type 帮助)
Ctrl-C stops everything.
"""


def run(args: argparse.Namespace) -> int:
    """Start the private Redis (unless REDIS_URL is set), then the bot and the worker as child processes;
    Ctrl-C stops all three."""
    settings = Settings()
    refuse_public_demo(settings)
    upgrade(settings.database_url)  # what `talenthome migrate` does; a no-op when up to date
    if not templates_configured(settings):
        print(NO_TEMPLATES_WARNING, file=sys.stderr, flush=True)
    private = PrivateRedis(settings.var_dir)
    env = dict(os.environ, REDIS_URL=redis_url(settings, private))
    if args.bots > 1:
        env["BOT_REUSE_PORT"] = "1"  # N processes on one port: the kernel spreads connections among them
    exe = [sys.executable, "-m", "talenthome.cli"]
    names = [f"bot {i + 1} (talenthome serve)" for i in range(args.bots)]
    names += [f"worker {i + 1} (talenthome worker)" for i in range(args.workers)]
    children = [subprocess.Popen([*exe, "serve"], env=env) for _ in range(args.bots)]
    children += [subprocess.Popen([*exe, "worker"], env=env) for _ in range(args.workers)]
    print(banner(settings, env["REDIS_URL"]), flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop and all(c.poll() is None for c in children):
            select.select([], [], [], 0.5)  # not time.sleep: EINVAL under libfaketime
        for name, child in zip(names, children, strict=True):
            if not stop and child.poll() is not None:
                print(f"talenthome: error: {name} stopped (exit code {child.returncode}, see above); "
                      "stopping the rest", file=sys.stderr, flush=True)
    finally:
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(15)
            except subprocess.TimeoutExpired:
                c.kill()
        private.stop()
    return 0 if stop else 1
