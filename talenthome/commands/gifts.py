"""The gift catalogue from the shell: `talenthome gift add|edit|restock|retire|restore|list` and
`talenthome import-gifts FILE` (policy annex part 2: points are exchanged for gifts).

The same domain calls as the bot's admin words (scoring.gifts); each change leaves an audit row with actor
`cli:<user>`. Bad input, an unknown gift or station, a retired gift: one line on stderr, exit 2, nothing
changed. Retiring a retired gift or restoring an active one changes nothing and says so (exit 0), so
scripts may repeat them.
"""

from __future__ import annotations

import argparse
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import gifts, imports
from scoring.admin import station_by_code
from scoring.db import transaction
from scoring.models import AuditLog, Station
from talenthome.commands.data import Sessions, _actor, _print_json, _run, _table
from talenthome.progress import progress
from talenthome.runtime import CliError

CITY_WIDE = ("city", "全市", "全市通用", "-")
FIELD_NAMES = {"name": "名称", "cost": "积分", "stock": "库存", "station_id": "站点", "description": "说明"}


# -- registration ----------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gift = sub.add_parser("gift", help="manage the gift catalogue (talents redeem points for gifts)",
                          description="Manage the gifts talents may redeem points for. A gift is city-wide or "
                                      "offered (and picked up) at one station; (name, station) names one gift.")
    gift_sub = gift.add_subparsers(dest="gift_command", metavar="ACTION", required=True)

    p = gift_sub.add_parser("add", help="add a gift", description="Add a gift: its name, cost in points and "
                            "stock; --station CODE offers it at that station only (default: city-wide).")
    p.add_argument("name", metavar="NAME")
    p.add_argument("cost", metavar="COST", help="points, at least 1")
    p.add_argument("stock", metavar="STOCK", help="how many there are, 0 or more")
    p.add_argument("--station", metavar="CODE", help="the station that offers it (default: city-wide)")
    p.add_argument("--description", metavar="TEXT", default="", help="a short description")
    p.set_defaults(func=gift_add)

    p = gift_sub.add_parser("edit", help="change a gift's name, cost, stock, station or description",
                            description="Change the given fields of a gift that is on offer. --stock sets the "
                                        "count outright (a stocktake); --station city makes it city-wide.")
    p.add_argument("gift_id", metavar="ID")
    p.add_argument("--name", metavar="NAME")
    p.add_argument("--cost", metavar="COST")
    p.add_argument("--stock", metavar="STOCK")
    p.add_argument("--station", metavar="CODE|city")
    p.add_argument("--description", metavar="TEXT")
    p.set_defaults(func=gift_edit)

    p = gift_sub.add_parser("restock", help="add to a gift's stock",
                            description="Add N (at least 1) to the stock of a gift that is on offer.")
    p.add_argument("gift_id", metavar="ID")
    p.add_argument("add", metavar="N")
    p.set_defaults(func=gift_restock)

    p = gift_sub.add_parser("retire", help="take a gift off offer (下架)",
                            description="Take a gift off offer: talents no longer see it and requests not yet "
                                        "applied are refused. Nothing is deleted; `restore` offers it again.")
    p.add_argument("gift_id", metavar="ID")
    p.set_defaults(func=gift_retire)

    p = gift_sub.add_parser("restore", help="offer a retired gift again",
                            description="Offer a retired gift again, with its stock as it was.")
    p.add_argument("gift_id", metavar="ID")
    p.set_defaults(func=gift_restore)

    p = gift_sub.add_parser("list", help="every gift with its stock, station and redemptions",
                            description="Every gift (on offer first): cost, stock, redeemed and pending "
                                        "requests, where it is offered, retired or not.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=gift_list)

    p = sub.add_parser(
        "import-gifts", help="import or update gifts from CSV or XLSX",
        description="Import gifts from a CSV (UTF-8, header row) or XLSX file (first sheet) with the columns "
                    "name,cost,stock,station,description. station: a station code, or empty for a city-wide "
                    "gift. A gift with the same name at the same station is updated (its stock set to the "
                    "file's count), never duplicated; a retired one stays retired. One bad row and nothing is "
                    "imported.")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=import_gifts)


# -- helpers ---------------------------------------------------------------------------------------
def _whole(text: str, what: str) -> int:
    t = unicodedata.normalize("NFKC", text).strip()
    digits = t[1:] if t[:1] in "+-" else t
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 9:
        raise CliError(f"bad {what} {text!r}: expected a whole number")
    return int(t)


def _gift_id(text: str) -> int:
    t = unicodedata.normalize("NFKC", text).strip().lstrip("#")
    if not (t.isascii() and t.isdigit()) or len(t) > 12:
        raise CliError(f"bad gift id {text!r}: expected a number")
    return int(t)


def _refused(result: gifts.GiftRefused, gift_id: int | None = None) -> CliError:
    g = result.gift
    shown = g.id if g is not None else gift_id
    return CliError({
        gifts.GiftRefusal.BAD_NAME: f"the name must be 1 to {gifts.MAX_NAME} characters",
        gifts.GiftRefusal.BAD_COST: f"the cost must be a whole number from 1 to {gifts.MAX_COST}",
        gifts.GiftRefusal.BAD_STOCK: f"the stock must be from 0 to {gifts.MAX_STOCK} (a restock adds at least 1)",
        gifts.GiftRefusal.BAD_DESCRIPTION: f"the description must be at most {gifts.MAX_DESCRIPTION} characters",
        gifts.GiftRefusal.NO_STATION: "unknown station",
        gifts.GiftRefusal.NO_GIFT: f"unknown gift {shown} (see: talenthome gift list)",
        gifts.GiftRefusal.RETIRED: f"gift {shown} is retired; offer it again first: talenthome gift restore {shown}",
        gifts.GiftRefusal.ACTIVE: f"gift {shown} is on offer",
        gifts.GiftRefusal.EXISTS: f"gift {shown} ({g.name if g else ''}) is offered there already"
                                  f"{' (retired)' if g is not None and not g.active else ''}; "
                                  f"change it with: talenthome gift edit {shown}",
    }[result.reason])


async def _station(session: AsyncSession, code: str) -> Station:
    station = await station_by_code(session, code)
    if station is None:
        raise CliError(f"unknown station {code!r}")
    return station


async def _where(session: AsyncSession, station_id: int | None) -> str:
    station = await session.get(Station, station_id) if station_id is not None else None
    return f"{station.name}（{station.code}）" if station else "全市通用"


def _audit(session: AsyncSession, command: str, outcome: str) -> None:
    session.add(AuditLog(actor=_actor(), role="admin", command=command[:2000], outcome=outcome[:2000]))


# -- commands --------------------------------------------------------------------------------------
def gift_add(args: argparse.Namespace) -> int:
    cost, stock = _whole(args.cost, "cost"), _whole(args.stock, "stock")

    async def body(sessions: Sessions) -> str:
        async with transaction(sessions) as s:
            station = await _station(s, args.station) if args.station else None
            result = await gifts.add_gift(s, name=args.name, cost=cost, stock=stock,
                                          station_id=station.id if station else None, description=args.description)
            if isinstance(result, gifts.GiftRefused):
                raise _refused(result)
            where = await _where(s, result.station_id)
            _audit(s, f"gift add {result.name} {cost} {stock}" + (f" --station {args.station}" if station else ""),
                   f"created gift {result.id}")
            return f"已上架礼品 #{result.id}「{result.name}」：{cost} 分，库存 {stock}，{where}"

    print(_run(body))
    return 0


def gift_edit(args: argparse.Namespace) -> int:
    gift_id = _gift_id(args.gift_id)
    fields: dict[str, Any] = {}
    if args.name is not None:
        fields["name"] = args.name
    if args.cost is not None:
        fields["cost"] = _whole(args.cost, "cost")
    if args.stock is not None:
        fields["stock"] = _whole(args.stock, "stock")
    if args.description is not None:
        fields["description"] = args.description
    if not fields and args.station is None:
        raise CliError("nothing to change: give --name, --cost, --stock, --station or --description")

    async def body(sessions: Sessions) -> str:
        async with transaction(sessions) as s:
            if args.station is not None:
                city = args.station.strip().lower() in CITY_WIDE
                fields["station_id"] = None if city else (await _station(s, args.station.strip())).id
            result = await gifts.edit_gift(s, gift_id, **fields)
            if isinstance(result, gifts.GiftRefused):
                raise _refused(result, gift_id)
            g = result.gift
            changes = []
            for key, old in result.before.items():
                if key == "station_id":
                    was = await _where(s, old if isinstance(old, int) else None)
                    changes.append(f"站点 {was} → {await _where(s, g.station_id)}")
                else:
                    changes.append(f"{FIELD_NAMES[key]} {old or '（空）'} → {getattr(g, key) or '（空）'}")
            if not changes:
                return f"礼品 #{g.id}「{g.name}」没有变化"
            given = {k: getattr(args, k) for k in ("name", "cost", "stock", "station", "description")}
            _audit(s, f"gift edit {gift_id} " + " ".join(f"--{k} {v}" for k, v in given.items() if v is not None),
                   "changed " + ", ".join(f"{k} (was {v!r})" for k, v in result.before.items()))
            return f"已修改礼品 #{g.id}「{g.name}」：" + "，".join(changes)

    print(_run(body))
    return 0


def gift_restock(args: argparse.Namespace) -> int:
    gift_id, add = _gift_id(args.gift_id), _whole(args.add, "amount")

    async def body(sessions: Sessions) -> str:
        async with transaction(sessions) as s:
            result = await gifts.restock_gift(s, gift_id, add)
            if isinstance(result, gifts.GiftRefused):
                raise _refused(result, gift_id)
            _audit(s, f"gift restock {gift_id} {add}", f"stock {result.stock}")
            return f"礼品 #{result.id}「{result.name}」已补货 {add} 件，现有库存 {result.stock}"

    print(_run(body))
    return 0


def gift_retire(args: argparse.Namespace) -> int:
    return _switch(args, gifts.retire_gift, "retire", gifts.GiftRefusal.RETIRED,
                   "此前已下架，未做改动", lambda g: f"礼品 #{g.id}「{g.name}」已下架")


def gift_restore(args: argparse.Namespace) -> int:
    return _switch(args, gifts.restore_gift, "restore", gifts.GiftRefusal.ACTIVE,
                   "正在上架中，未做改动", lambda g: f"礼品 #{g.id}「{g.name}」已恢复上架，库存 {g.stock}")


def _switch(args: argparse.Namespace, change: Callable[[AsyncSession, int], Awaitable[Any]], action: str,
            already: gifts.GiftRefusal, unchanged: str, done: Callable[[Any], str]) -> int:
    """Retire or restore a gift: audited when it changes; a gift already in that state is not an error."""
    gift_id = _gift_id(args.gift_id)

    async def body(sessions: Sessions) -> str:
        async with transaction(sessions) as s:
            result = await change(s, gift_id)
            if isinstance(result, gifts.GiftRefused):
                if result.reason is already and result.gift is not None:
                    return f"礼品 #{gift_id}「{result.gift.name}」{unchanged}"
                raise _refused(result, gift_id)
            _audit(s, f"gift {action} {gift_id}", "retired" if action == "retire" else "restored")
            return done(result)

    print(_run(body))
    return 0


def gift_list(args: argparse.Namespace) -> int:
    async def body(sessions: Sessions) -> list[gifts.GiftView]:
        async with sessions() as s:
            return await gifts.gift_views(s)

    views = _run(body)
    if args.json:
        _print_json([{"id": v.id, "name": v.name, "cost": v.cost, "stock": v.stock, "active": v.active,
                      "station": v.station_code, "station_name": v.station_name, "description": v.description,
                      "redeemed": v.redeemed, "pending": v.pending} for v in views])
    elif not views:
        print("还没有礼品（新增：talenthome gift add 名称 积分 库存 [--station 站点编码]）")
    else:
        print(_table(["编号", "名称", "积分", "库存", "已兑", "待处理", "站点", "状态"],
                     [[v.id, v.name, v.cost, v.stock, v.redeemed, v.pending,
                       f"{v.station_name}（{v.station_code}）" if v.station_code else "全市通用",
                       "上架" if v.active else "已下架"] for v in views]))
    return 0


def import_gifts(args: argparse.Namespace) -> int:
    path = args.file
    try:
        rows = imports.read_gifts(path)
    except imports.ImportFailed as err:
        raise CliError(f"{path}: {err}") from None

    with progress("导入礼品", total=len(rows)) as step:
        async def body(sessions: Sessions) -> imports.GiftImportResult:
            try:
                async with transaction(sessions) as s:
                    result = await imports.save_gifts(s, rows, step)
                    _audit(s, f"import-gifts {path}", f"created {result.created}, updated {result.updated}, "
                                                      f"unchanged {result.unchanged}, retired {result.retired}")
            except imports.ImportFailed as err:
                raise CliError(f"{path}: {err}") from None
            except IntegrityError:
                raise CliError(f"{path}: the data changed while importing (another import?); nothing was "
                               "imported, run it again") from None
            return result

        result = _run(body)
    retired = f"；其中 {result.retired} 件已下架，仍保持下架" if result.retired else ""
    print(f"礼品导入完成：新增 {result.created}，更新 {result.updated}，未变 {result.unchanged}"
          f"（共 {result.total} 行）{retired}")
    return 0

