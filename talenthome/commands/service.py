"""`talenthome serve`, `worker`, `run` (both, with the private Redis), `qr`, `chat`."""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import subprocess
import sys

from scoring.migrate import upgrade
from scoring.settings import Settings
from talenthome.runtime import PrivateRedis, redis_url, require_schema

NO_TEMPLATES_WARNING = (
    "talenthome: warning: no template message is configured (WECHAT_TEMPLATES / WECHAT_TEMPLATE_NOTICE): "
    "operators and talents get pushes only inside WeChat's 48-hour customer-service window; see README, "
    "'Pushes'.")


def templates_configured(settings: Settings) -> bool:
    return bool(settings.wechat_templates or settings.wechat_template_notice)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the WeChat bot (aiohttp) on BOT_HOST:BOT_PORT")
    p.set_defaults(func=serve)
    p = sub.add_parser("worker", help="run the arq worker (points, boards, pushes, calendar)")
    p.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    p.set_defaults(func=worker)
    p = sub.add_parser("run", help="run bot and worker together (starts a private Redis when REDIS_URL is unset)")
    p.set_defaults(func=run)


def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import create_app

    settings = Settings()
    require_schema(settings)
    private = PrivateRedis(settings.var_dir)
    settings.redis_url = redis_url(settings, private)
    try:
        web.run_app(create_app(settings), host=settings.bot_host, port=settings.bot_port,
                    print=lambda *_: None, access_log=None, handle_signals=True)
    finally:
        private.stop()
    return 0


def worker(args: argparse.Namespace) -> int:
    from arq.worker import Worker

    from worker.settings import worker_settings

    settings = Settings()
    require_schema(settings)
    private = PrivateRedis(settings.var_dir)
    url = redis_url(settings, private)
    settings.redis_url = url
    try:
        asyncio.set_event_loop(asyncio.new_event_loop())
        Worker(**worker_settings(url, settings, burst=args.burst)).run()
    finally:
        private.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    """Start the private Redis (unless REDIS_URL is set), then the bot and the worker as child processes;
    Ctrl-C stops all three."""
    settings = Settings()
    upgrade(settings.database_url)  # what `talenthome migrate` does; a no-op when up to date
    if not templates_configured(settings):
        print(NO_TEMPLATES_WARNING, file=sys.stderr, flush=True)
    private = PrivateRedis(settings.var_dir)
    env = dict(os.environ, REDIS_URL=redis_url(settings, private))
    exe = [sys.executable, "-m", "talenthome.cli"]
    children = [subprocess.Popen([*exe, "serve"], env=env), subprocess.Popen([*exe, "worker"], env=env)]
    base = f"http://{settings.bot_host}:{settings.bot_port}"
    print(f"""
Talent Home bot and worker are running (Redis: {env['REDIS_URL']}, database: {settings.database_url}).
  WeChat callback URL:  {base}/wechat     (health: {base}/healthz)
  WeChat settings:      Token={settings.wechat_token.get_secret_value() if settings.wechat_token.get_secret_value()
                               .startswith('talenthome-demo') else '<WECHAT_TOKEN>'}  AppID={settings.wechat_appid}
                        EncodingAESKey={'<WECHAT_AES_KEY> (safe mode)' if settings.safe_mode else 'unset (plain mode)'}
  A sample city to look at:           .venv/bin/talenthome demo     (in another terminal; prints whom to be)
  Try it without an official account:  .venv/bin/talenthome chat     (type 帮助)
Ctrl-C stops everything.
""", flush=True)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    names = ("the bot (talenthome serve)", "the worker (talenthome worker)")
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
