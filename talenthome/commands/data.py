"""Data commands: `import-stations`, `import-talents`, `staff add`, `show ...` and `board` (SPEC 5).

Every command is a sync `(args) -> int` that runs one async body against `DATABASE_URL`. Bad input
raises CliError (one line on stderr, exit 2) before or instead of any change. `--json` prints exactly
the SPEC 5 shapes (with a few extra keys); without it a short readable text or table is printed.
Current periods (the `year` and `month` figures) are those of now in Asia/Shanghai.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import imports
from scoring.boards import station_board, station_eligible, station_points, station_top, talent_board, talent_points
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.models import (
    Activity,
    Attendance,
    AuditLog,
    DeadLetter,
    Entry,
    MonthClose,
    Signup,
    Staff,
    Station,
    Talent,
)
from scoring.periods import Period, to_local
from scoring.settings import Settings
from talenthome.progress import progress
from talenthome.runtime import CliError, database

T = TypeVar("T")
Sessions = async_sessionmaker[AsyncSession]

ROLES = ("operator", "admin")
ROLE_NAMES = {"operator": "运营人员", "admin": "管理员"}
BOARD_KINDS = ("total", "year", "month")
KIND_NAMES = {"total": "总榜", "year": "年度榜", "month": "月度榜"}
STATUS_NAMES = {"active": "正常", "delisted": "已摘牌"}


# -- plumbing --------------------------------------------------------------------------------------
def _run(body: Callable[[Sessions], Awaitable[T]]) -> T:
    """Run `body` with a sessionmaker on DATABASE_URL. A bad setting or an unusable database propagates to
    talenthome.cli.main, which turns it into one line (talenthome/errors.py)."""
    settings = Settings()

    async def main() -> T:
        async with database(settings) as sessions:
            return await body(sessions)

    return asyncio.run(main())


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _local_iso(at: datetime | None) -> str | None:
    return None if at is None else to_local(at).isoformat()


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table whose columns line up with Chinese (double-width) text too."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON (SPEC 5 shape) instead of text")


# -- registration ----------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import-stations", help="import or update stations from CSV or XLSX",
        description="Import stations from a CSV (UTF-8, header row) or XLSX file (first sheet) with the "
                    "columns code,name,kind,type,county,certified_on. kind: home|community; type: "
                    "comprehensive|industry|professional|service; certified_on: YYYY-MM-DD. Existing "
                    "stations (same code) are updated; their stars and status are kept. One bad row and "
                    "nothing is imported.")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=import_stations)

    p = sub.add_parser(
        "import-talents", help="import or update talents from CSV or XLSX",
        description="Import talents from a CSV (UTF-8, header row) or XLSX file (first sheet) with the "
                    "columns cert_no,name,phone,category,county. Existing talents (same cert_no) are "
                    "updated; their WeChat binding is kept. One bad row and nothing is imported.")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=import_talents)

    staff = sub.add_parser("staff", help="manage staff: operators and admins",
                           description="Manage the staff who use the official account.")
    staff_sub = staff.add_subparsers(dest="staff_command", metavar="ACTION", required=True)
    p = staff_sub.add_parser(
        "add", help="add or update a staff member",
        description="Add a staff member by WeChat openid, or update one (role, station). An operator "
                    "belongs to one existing station (--station CODE); an admin to none.")
    p.add_argument("openid", metavar="OPENID")
    p.add_argument("--role", required=True, metavar="operator|admin", help="operator or admin")
    p.add_argument("--station", metavar="CODE", help="the operator's station code")
    p.set_defaults(func=staff_add)

    show = sub.add_parser("show", help="show a station, talent, activity or the dead-letter list",
                          description="Show one record with its figures (current periods in Asia/Shanghai).")
    show_sub = show.add_subparsers(dest="show_command", metavar="WHAT", required=True)
    p = show_sub.add_parser("station", help="a station: stars, status, points and ranks",
                            description="A station's stars, status, eligibility, carousel months, points "
                                        "and ranks (total, this year, this month).")
    p.add_argument("code", metavar="CODE")
    _add_json(p)
    p.set_defaults(func=show_station)
    p = show_sub.add_parser("talent", help="a talent: binding and points",
                            description="A talent's binding and points (total, this year, this month, "
                                        "balance after redemptions).")
    p.add_argument("cert_no", metavar="CERT_NO")
    _add_json(p)
    p.set_defaults(func=show_talent)
    p = show_sub.add_parser("activity", help="an activity: times, sign-ups, attendees, points",
                            description="An activity's times, capacity, sign-ups, attendees and the points "
                                        "its station earned for it (R1 activity + R2 media).")
    p.add_argument("activity_id", metavar="ID")
    _add_json(p)
    p.set_defaults(func=show_activity)
    p = show_sub.add_parser("dead", help="worker tasks that gave up (unresolved dead letters)",
                            description="Unresolved dead letters: worker tasks that gave up on a fact.")
    _add_json(p)
    p.set_defaults(func=show_dead)

    p = sub.add_parser(
        "board", help="a points board (ranking)",
        description="A board in display order: competition ranking (1224), ties by who reached the score "
                    "first. Station boards: total, year, month; talent boards: total and year.")
    p.add_argument("kind", metavar="total|year|month")
    p.add_argument("--period", metavar="2026|2026-11", help="the year or month (default: the current one)")
    p.add_argument("--scope", default="station", metavar="station|talent", help="station (default) or talent")
    p.add_argument("--limit", metavar="N", help="show only the first N lines")
    _add_json(p)
    p.set_defaults(func=board)


# -- imports ---------------------------------------------------------------------------------------
def _import(kind: str, path: str, read: Callable[[str], Sequence[Any]],
            save: Callable[..., Awaitable[imports.ImportResult]]) -> int:
    label = "站点" if kind == "stations" else "人才"
    with progress(f"读取并校验{label}文件"):
        try:
            rows = read(path)
        except imports.ImportFailed as err:
            raise CliError(f"{path}: {err}") from None

    async def body(sessions: Sessions) -> imports.ImportResult:
        try:
            async with transaction(sessions) as session:
                with progress(f"写入{label}", total=len(rows)) as step:
                    result = await save(session, rows, step)
                session.add(AuditLog(actor=_actor(), role="admin", command=f"import-{kind} {path}",
                                     outcome=f"created {result.created}, updated {result.updated}, "
                                             f"unchanged {result.unchanged}"))
        except IntegrityError:
            raise CliError(f"{path}: the data changed while importing (another import?); nothing was "
                           "imported, run it again") from None
        return result

    result = _run(body)
    print(f"{label}导入完成：新增 {result.created}，更新 {result.updated}，未变 {result.unchanged}"
          f"（共 {result.total} 行）")
    return 0


def import_stations(args: argparse.Namespace) -> int:
    return _import("stations", args.file, imports.read_stations, imports.save_stations)


def import_talents(args: argparse.Namespace) -> int:
    return _import("talents", args.file, imports.read_talents, imports.save_talents)


# -- staff -----------------------------------------------------------------------------------------
def staff_add(args: argparse.Namespace) -> int:
    openid, role, code = args.openid.strip(), args.role.strip().lower(), args.station
    if not openid or len(openid) > 64 or any(ch.isspace() for ch in openid):
        raise CliError(f"bad openid {args.openid!r}: 1 to 64 characters, no spaces")
    if role not in ROLES:
        raise CliError(f"bad role {args.role!r}: use --role operator or --role admin")
    if role == "admin" and code:
        raise CliError("an admin belongs to no station: leave out --station")
    if role == "operator" and not code:
        raise CliError("an operator needs --station CODE (an existing station)")

    async def body(sessions: Sessions) -> tuple[str, str | None]:
        async with transaction(sessions) as session:
            station_id = None
            station_name = None
            if code:
                station = await session.scalar(select(Station).where(Station.code == code))
                if station is None:
                    raise CliError(f"unknown station {code!r}")
                station_id, station_name = station.id, station.name
            staff = await session.scalar(select(Staff).where(Staff.openid == openid))
            outcome = "created" if staff is None else "updated"
            if staff is None:
                staff = Staff(openid=openid, role=role, station_id=station_id, active=True)
                session.add(staff)
            else:
                staff.role, staff.station_id, staff.active = role, station_id, True
            session.add(AuditLog(actor=_actor(), role="admin",
                                 command=f"staff add {openid} --role {role}" + (f" --station {code}" if code else ""),
                                 outcome=outcome))
            return outcome, station_name

    outcome, station_name = _run(body)
    verb = "已添加" if outcome == "created" else "已更新"
    where = f"（{station_name}，{code}）" if station_name else ""
    print(f"{verb}{ROLE_NAMES[role]} {openid}{where}")
    return 0


# -- show ------------------------------------------------------------------------------------------
async def station_view(session: AsyncSession, code: str, now: datetime) -> dict[str, Any]:
    station = await session.scalar(select(Station).where(Station.code == code))
    if station is None:
        raise CliError(f"unknown station {code!r}")
    ranks: dict[str, int | None] = {}
    for kind in BOARD_KINDS:
        ranked = await station_board(session, Period.parse(kind, now=now), now=now)
        ranks[kind] = next((r.rank for r in ranked if r.standing.id == station.id), None)
    featured = (await session.scalars(select(MonthClose.featured_month).where(
        MonthClose.featured_station_id == station.id).order_by(MonthClose.featured_month))).all()
    return {
        "code": station.code, "name": station.name, "kind": station.kind, "type": station.type,
        "county": station.county, "certified_on": station.certified_on.isoformat(),
        "eligible_from": to_local(station.eligible_from).date().isoformat(),
        "stars": station.stars, "status": station.status,
        "eligible": station_eligible(station, Period("total", "all"), now),
        "featured_months": sorted(set(featured)),
        "points": await station_points(session, station.id, now),
        "rank": ranks,
    }


def show_station(args: argparse.Namespace) -> int:
    async def body(sessions: Sessions) -> dict[str, Any]:
        async with sessions() as session:
            return await station_view(session, args.code, utcnow())

    view = _run(body)
    if args.json:
        _print_json(view)
        return 0
    pts, rank = view["points"], view["rank"]

    def r(kind: str) -> str:
        return "未排名" if rank[kind] is None else f"第 {rank[kind]} 名"

    print(f"{view['name']}（{view['code']}）")
    print(f"星级：{view['stars']}  状态：{STATUS_NAMES.get(view['status'], view['status'])}  "
          f"参与排名：{'是' if view['eligible'] else '否（自 ' + view['eligible_from'] + ' 起）'}")
    print(f"积分：总 {pts['total']}（{r('total')}）  本年 {pts['year']}（{r('year')}）  "
          f"本月 {pts['month']}（{r('month')}）")
    print(f"首屏轮播月份：{'、'.join(view['featured_months']) or '无'}")
    return 0


async def talent_view(session: AsyncSession, cert_no: str, now: datetime) -> dict[str, Any]:
    talent = await session.scalar(select(Talent).where(Talent.cert_no == cert_no))
    if talent is None:
        raise CliError(f"unknown talent {cert_no!r}")
    return {"cert_no": talent.cert_no, "name": talent.name, "category": talent.category,
            "county": talent.county, "bound": talent.openid is not None,
            "points": await talent_points(session, talent.id, now)}


def show_talent(args: argparse.Namespace) -> int:
    async def body(sessions: Sessions) -> dict[str, Any]:
        async with sessions() as session:
            return await talent_view(session, args.cert_no, utcnow())

    view = _run(body)
    if args.json:
        _print_json(view)
        return 0
    pts = view["points"]
    print(f"{view['name']}（{view['cert_no']}）  {'已绑定微信' if view['bound'] else '未绑定微信'}")
    print(f"积分：总 {pts['total']}  本年 {pts['year']}  本月 {pts['month']}  可用余额 {pts['balance']}")
    return 0


async def activity_view(session: AsyncSession, activity_id: int) -> dict[str, Any]:
    activity = await session.get(Activity, activity_id)
    if activity is None:
        raise CliError(f"unknown activity {activity_id}")
    code = await session.scalar(select(Station.code).where(Station.id == activity.station_id))
    signups = await session.scalar(select(func.count(Signup.id)).where(
        Signup.activity_id == activity.id, Signup.cancelled_at.is_(None)))
    attendees = await session.scalar(select(func.count(func.distinct(Attendance.talent_id))).where(
        Attendance.activity_id == activity.id))
    points = await session.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).where(
        Entry.fact_kind.in_(("activity", "media")), Entry.fact_id == activity.id, Entry.station_id.is_not(None)))
    return {"id": activity.id, "station": code, "title": activity.title, "status": activity.status,
            "starts_at": _local_iso(activity.starts_at), "ends_at": _local_iso(activity.ends_at),
            "published_at": _local_iso(activity.published_at), "capacity": activity.capacity,
            "signups": int(signups or 0), "attendees": int(attendees or 0), "points": int(points or 0)}


def show_activity(args: argparse.Namespace) -> int:
    raw = args.activity_id.strip()
    if not raw.isdigit() or len(raw) > 18:
        raise CliError(f"bad activity id {args.activity_id!r}: expected a number")

    async def body(sessions: Sessions) -> dict[str, Any]:
        async with sessions() as session:
            return await activity_view(session, int(raw))

    view = _run(body)
    if args.json:
        _print_json(view)
        return 0
    cap = "不限" if view["capacity"] is None else view["capacity"]
    print(f"活动 {view['id']}：{view['title']}（站点 {view['station']}）")
    print(f"时间：{view['starts_at']} 至 {view['ends_at']}")
    print(f"名额：{cap}  报名：{view['signups']}  签到：{view['attendees']}  站点得分：{view['points']}")
    return 0


def show_dead(args: argparse.Namespace) -> int:
    async def body(sessions: Sessions) -> list[dict[str, Any]]:
        async with sessions() as session:
            rows = (await session.scalars(select(DeadLetter).where(
                DeadLetter.resolved_at.is_(None)).order_by(DeadLetter.id))).all()
        return [{"id": d.id, "task": d.task, "fact_id": d.fact_id, "reason": d.reason, "attempts": d.attempts,
                 "created_at": _local_iso(d.created_at)} for d in rows]

    dead = _run(body)
    if args.json:
        _print_json(dead)
    elif not dead:
        print("没有未处理的失败任务")
    else:
        print(_table(["编号", "任务", "事实编号", "尝试次数", "时间", "原因"],
                     [[d["id"], d["task"], d["fact_id"], d["attempts"], d["created_at"], d["reason"]]
                      for d in dead]))
    return 0


# -- boards ----------------------------------------------------------------------------------------
def board(args: argparse.Namespace) -> int:
    kind, scope = args.kind.strip().lower(), args.scope.strip().lower()
    if kind not in BOARD_KINDS:
        raise CliError(f"unknown board {args.kind!r}: use total, year or month")
    if scope not in ("station", "talent"):
        raise CliError(f"bad --scope {args.scope!r}: use station or talent")
    if scope == "talent" and kind == "month":
        raise CliError("talent boards are total and year only; there is no monthly talent board")
    if kind == "total" and args.period:
        raise CliError("the total board takes no --period")
    try:
        period = Period.parse(kind, args.period, now=utcnow())
        period.bounds()  # a year the calendar cannot hold (0000, 9999) fails here, not mid-query
    except ValueError as err:
        raise CliError(f"bad --period: {err}") from None
    limit = None
    if args.limit is not None:
        if not args.limit.strip().isdigit() or int(args.limit) < 1:
            raise CliError(f"bad --limit {args.limit!r}: expected a whole number of at least 1")
        limit = int(args.limit)

    async def body(sessions: Sessions) -> list[dict[str, object]]:
        async with sessions() as session:
            if scope == "talent":
                ranked = await talent_board(session, period, limit=limit)
            elif limit is not None:  # the first N lines in SQL, not the whole board cut
                ranked = await station_top(session, period, limit, now=utcnow())
            else:
                ranked = await station_board(session, period, now=utcnow())
        return [r.as_json() for r in ranked]

    rows = _run(body)
    if args.json:
        _print_json(rows)
        return 0
    title = f"{'人才' if scope == 'talent' else '站点'}{KIND_NAMES[kind]}" + \
        ("" if period.kind == "total" else f"（{period.key}）")
    print(title)
    if not rows:
        print("暂无数据")
        return 0
    code_header, name_header = ("证书编号", "姓名") if scope == "talent" else ("站点编号", "站点名称")
    print(_table(["名次", code_header, name_header, "积分"],
                 [[r["rank"], r["code"], r["name"], r["points"]] for r in rows]))
    return 0
