"""`talenthome demo [--seed N] [--force]`: fill an empty database with a sample Quanzhou (talenthome/demo.py)
and say what to try next.

An empty database (no station, no talent) is filled; any other is refused, unless `--force`, which deletes
every row of every table first (the whole database: points, history, staff; what a user asking for a
demo on a used database expects is the demo, not a mix). The platform's Redis state and arq's queue are
dropped too, then the live boards are rebuilt from the new ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from scoring.clock import utcnow
from scoring.db import transaction
from scoring.periods import to_local
from scoring.settings import Settings
from talenthome import demo
from talenthome.progress import progress
from talenthome.runtime import CliError, PrivateRedis, database, redis_url

T = TypeVar("T")
DEFAULT_SEED = 1

DESCRIPTION = """\
Fill an EMPTY database (no station, no talent) with a sample Quanzhou to try the platform: about 40
stations over the 12 county-level districts, a few hundred talents (most bound to made-up openids),
check-ins, activities and reports since 1 January of last year, every month up to the last one closed,
last year's star rating confirmed, gifts, one check-in held by the fraud rule and one voided. Every point
is a real ledger entry made by the platform's own rules; the live boards are rebuilt from the ledger.
Dates are relative to now; the same --seed at the same moment builds the same city. It prints the openids
and the station code to try with `talenthome chat` and `talenthome qr station`. Run `talenthome migrate`
first; stop the bot and the worker while it runs."""

FORCE_HELP = ("on a database that an earlier `talenthome demo` built: DELETE EVERY ROW OF EVERY TABLE first "
              "(stations, talents, staff, the whole ledger and history) and drop the platform's Redis state and "
              "queue, then build the demo again. A database the demo did not build is never wiped")
NOT_A_DEMO = ("the database holds data that `talenthome demo` did not make ({} stations, {} talents): the demo "
              "never deletes a real city's data, even with --force; point DATABASE_URL at an empty database")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="fill an empty database with a sample Quanzhou to try the platform",
                       description=DESCRIPTION)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="N",
                   help=f"random seed: the same seed at the same moment builds the same city (default {DEFAULT_SEED})")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=demo_command)


@dataclass(frozen=True)
class Done:
    built: demo.Built
    boards: int
    wiped: tuple[int, int]  # (stations, talents) deleted by --force
    seconds: float


def demo_command(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as err:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ())).upper() or "settings"
        raise CliError(f"bad configuration: {where}: {first.get('msg', 'invalid value')}") from None
    now = utcnow()
    found, by_demo = _database_call(lambda: asyncio.run(_counts(settings)))
    if found != (0, 0) and args.force and not by_demo:
        raise CliError(NOT_A_DEMO.format(*found))
    if found != (0, 0) and not args.force:
        raise CliError(f"the database is not empty ({found[0]} stations, {found[1]} talents): the demo fills an "
                       "empty database only; `talenthome demo --force` deletes everything in it first")
    private = PrivateRedis(settings.var_dir)
    try:
        url = redis_url(settings, private)
        done = _database_call(lambda: asyncio.run(run(settings, url, now=now, seed=args.seed, force=args.force)))
    except (RedisError, OSError) as err:
        raise CliError(f"cannot build the demo: {type(err).__name__}: {err}") from None
    except demo.DemoError as err:
        raise CliError(f"cannot build the demo: {err}; nothing was written") from None
    finally:
        private.stop()
    report(done)
    return 0


def _database_call(call: Callable[[], T]) -> T:
    """Database failures as one-line errors."""
    try:
        return call()
    except SQLAlchemyError as err:
        text = str(getattr(err, "orig", None) or err).strip()
        missing = "no such table" in text or ("relation" in text and "does not exist" in text)
        hint = " (has `talenthome migrate` been run?)" if missing else ""
        raise CliError(f"database error: {text.splitlines()[0] if text else type(err).__name__}{hint}") from None


async def _counts(settings: Settings) -> tuple[tuple[int, int], bool]:
    async with database(settings) as sessions, sessions() as s:
        return await demo.counts(s), await demo.made_by_demo(s)


async def run(settings: Settings, url: str, *, now: datetime, seed: int, force: bool,
              size: demo.Size | None = None) -> Done:
    """Check (again, inside the transaction), wipe when forced, build, commit; then the live boards."""
    t0 = time.perf_counter()
    client = aioredis.from_url(url)
    try:
        async with database(settings) as sessions:
            with progress("生成演示数据") as step:
                async with transaction(sessions) as s:
                    found = await demo.counts(s)
                    if found != (0, 0):
                        if not force:
                            raise CliError(f"the database is not empty ({found[0]} stations, {found[1]} "
                                           "talents); `talenthome demo --force` deletes everything in it first")
                        if not await demo.made_by_demo(s):
                            raise CliError(NOT_A_DEMO.format(*found))
                        await demo.wipe(s)
                    built = await demo.build(s, client, settings, now=now, seed=seed, size=size, step=step)
                step(0, description="从积分流水重建排行榜")
                rebuilt = await demo.rebuild_live(sessions, client)
    finally:
        await client.aclose()
    return Done(built, rebuilt.boards, found if force else (0, 0), time.perf_counter() - t0)


def report(done: Done) -> None:
    b = done.built
    closed = b.months_closed
    if done.wiped != (0, 0):
        print(f"已按 --force 清空原有数据（站点 {done.wiped[0]} 个、人才 {done.wiped[1]} 名及其全部记录）。")
    print(f"演示数据已生成（种子 {b.seed}，截至 {to_local(b.now):%Y-%m-%d %H:%M} 北京时间，"
          f"用时 {done.seconds:.1f} 秒）：")
    print(f"  站点 {b.stations} 个，分布在 {b.counties} 个县（市、区）；"
          f"人才 {b.talents} 名，其中 {b.bound} 名已绑定微信")
    print(f"  打卡 {b.visits} 次，活动 {b.activities} 场（{b.upcoming} 场即将开始，可报名），积分流水 {b.entries} 条")
    months = f"{closed[0]} 至 {closed[-1]}，共 {len(closed)} 个月" if closed else "无"
    print(f"  已月结：{months}；{b.rated_year} 年度评星已确认；排行榜已从积分流水重建（{done.boards} 个榜单）")
    print(f"  一次打卡因“30 分钟内在 3 个站点打卡”被暂扣（风险标记 #{b.hold_flag_id}，待管理员处理），一次打卡已被作废")
    talent_openid, cert_no, name = b.talent
    op_openid, op_code, op_station = b.operator
    code, station = b.station
    print("接下来（先在另一个终端运行 `talenthome serve` 和 `talenthome worker`，或 `make run`）：")
    print(f"  人才：  talenthome chat --openid {talent_openid}   （{name}，{cert_no}；发送 积分、排名、活动、礼品）")
    print(f"  运营：  talenthome chat --openid {op_openid}   （{op_station} {op_code}；发送 本站、我的活动）")
    print(f"  管理员：talenthome chat --openid {b.admin}   （发送 风险 查看暂扣的打卡）")
    print(f"  扫码打卡：talenthome qr station {code}   （{station}；在人才的 chat 里发送 /scan 加最后一行）")
