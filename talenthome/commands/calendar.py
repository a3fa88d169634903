"""`talenthome month-close YYYY-MM` and `talenthome rate YEAR [--confirm | --reverse]` (the admin's calendar).

`rate YEAR` previews (and stores the preview) unless the year is confirmed, in which case it shows the
confirmed outcome; `--confirm` previews and confirms in one transaction, so what it prints is what it
applies; `--reverse` undoes a confirmed year. Refusals are one line on stderr with exit status 2.

Audit: `month-close`, `rate --confirm` and `rate --reverse` leave exactly one audit row each (actor
`cli:<user>`, role admin; refusals too), as the bot's `月结` and `评星` do, in the command's own transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
from typing import Literal

from scoring import rating, staff
from scoring.calendar import CloseRefused, MonthClosed, month_close
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.rating import Outcome, RatingRefused
from scoring.settings import Settings
from talenthome.progress import progress
from talenthome.runtime import CliError, database

MOVE_WORDS = {"up": "up", "down": "down", "same": "="}
SUBSIDY_WORDS = {"top": "top 20%", "new_home": "new talent home", "new_community": "new talent community"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("month-close", help="close a month: snapshot its station board, feature its first station",
                       description="Close month YYYY-MM (allowed from 00:00 Asia/Shanghai on the next month's "
                                   "day 1): snapshot the station board, record the station featured next month, "
                                   "queue the month reports. Running it again changes nothing.")
    p.add_argument("month", metavar="YYYY-MM", help="the month to close, e.g. 2026-11")
    p.add_argument("--actor", default=None, help="who closes, for the audit row (default: cli:<login name>)")
    p.set_defaults(func=month_close_command)

    p = sub.add_parser("rate", help="annual star rating: preview, --confirm or --reverse",
                       description="Preview the year's star rating (moves, delistings, subsidy list); --confirm "
                                   "applies it exactly once; --reverse undoes a confirmed year.")
    p.add_argument("year", metavar="YEAR", help="the year to rate, e.g. 2026")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--confirm", action="store_true", help="apply the rating (stars, streaks, delistings)")
    action.add_argument("--reverse", action="store_true", help="undo a confirmed rating of YEAR")
    p.add_argument("--actor", default=None, help="who confirms or reverses (default: cli:<login name>)")
    p.set_defaults(func=rate_command)


def _actor(args: argparse.Namespace) -> str:
    if args.actor:
        return str(args.actor)
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def month_close_command(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
        raise CliError(f"month must look like 2026-11, got {args.month!r}")
    return asyncio.run(_month_close(Settings(), args.month, _actor(args)))


async def _month_close(settings: Settings, key: str, actor: str) -> int:
    async with database(settings) as sessions, transaction(sessions) as s:
        result = await month_close(s, key, utcnow())
        await staff.audit(s, actor, staff.Role.ADMIN, f"month-close {key}", _month_outcome(result))
    if isinstance(result, CloseRefused):
        raise CliError(result.detail)
    print_month(result)
    return 0


def _month_outcome(result: MonthClosed | CloseRefused) -> str:
    if isinstance(result, CloseRefused):
        return f"refused: {result.detail}"
    top = next((r for r in result.board if r.station_id == result.featured_station_id), None)
    featured = f"featured in {result.featured_month}: {top.code if top else 'none'}"
    return f"already closed; {featured}" if result.already else f"closed; {featured}; {result.notified} reports"


def print_month(result: MonthClosed) -> None:
    head = "already closed; nothing changed" if result.already else f"closed; {result.notified} reports queued"
    print(f"month {result.period}: {head}")
    print(f"{'rank':>4}  {'code':<12} {'points':>7}  name")
    for row in result.board:
        print(f"{row.rank:>4}  {row.code:<12} {row.points:>7}  {row.name}")
    top = next((r for r in result.board if r.station_id == result.featured_station_id), None)
    print(f"featured in {result.featured_month}: " + (f"{top.code} {top.name}" if top else "none (no station scored)"))


def rate_command(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"\d{4}", args.year):
        raise CliError(f"year must look like 2026, got {args.year!r}")
    mode: Literal["preview", "confirm", "reverse"] = "confirm" if args.confirm else "reverse" if args.reverse \
        else "preview"
    with progress(f"{args.year} 年评星"):
        return asyncio.run(_rate(Settings(), int(args.year), mode, _actor(args)))


async def _rate(settings: Settings, year: int, mode: Literal["preview", "confirm", "reverse"], actor: str) -> int:
    async with database(settings) as sessions:
        async with transaction(sessions) as s:
            result = await rating.rate(s, year, settings, mode=mode, actor=actor)
            if mode != "preview":
                await staff.audit(s, actor, staff.Role.ADMIN, f"rate {year} --{mode}", _rate_outcome(result))
    if isinstance(result, RatingRefused):
        raise CliError(result.detail)
    print_outcome(result, settings)
    if mode == "confirm" and result.already:
        print(f"{year} was confirmed already; nothing changed")
    elif mode == "confirm":
        print(f"{year} confirmed; {result.notified} notifications queued")
    elif mode == "reverse":
        print(f"{year} reversed: stars, streaks and status restored; preview and confirm again when ready")
    elif result.status == "preview":
        print(f"this is a preview; apply it with: talenthome rate {year} --confirm")
    return 0


def _rate_outcome(result: Outcome | RatingRefused) -> str:
    if isinstance(result, RatingRefused):
        return f"refused: {result.detail}"
    if result.status == "reversed":
        return f"reversed, now r{result.revision}"
    if result.already:
        return f"already confirmed r{result.revision}"
    return f"confirmed r{result.revision}: {result.summary()}"


def print_outcome(out: Outcome, settings: Settings) -> None:
    ranked = [x for x in out.lines if x.rank is not None]
    cohort = ", ".join(sorted({x.cohort for x in ranked})) or settings.rating_cohort
    print(f"rating {out.year} ({out.status}, revision {out.revision}; cohort {cohort}): {len(ranked)} stations rated")
    moved = [x for x in ranked if x.move != "same"]
    if moved:
        print(f"{'cohort':<14} {'rank':>4}  {'code':<12} {'points':>7}  {'stars':<6} {'move':<5} name")
        for x in moved:
            stars = f"{x.stars_before}->{x.stars_after}"
            note = "  DELISTED" if x.delisted else ""
            print(f"{x.cohort:<14} {x.rank:>4}  {x.code:<12} {x.points:>7}  {stars:<6} {MOVE_WORDS[x.move]:<5} "
                  f"{x.name}{note}")
    s = out.summary()
    print(f"moves: {s['up']} up, {s['down']} down, {len(ranked) - len(moved)} unchanged")
    print("delisted: " + (", ".join(f"{x.code} {x.name}" for x in out.delisted) or "none"))
    print(f"subsidy list ({len(out.subsidies)} stations, CNY; top 20% amounts are caps):")
    for x in out.subsidies:
        print(f"  {x.code:<12} {SUBSIDY_WORDS.get(x.subsidy_reason or '', ''):<22} {x.subsidy_cny:>9}  {x.name}")
    print(f"  {'total':<35} {out.subsidy_total:>9}")
