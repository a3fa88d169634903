"""`talenthome import-services FILE`: service lists (服务清单, policy measure 7) from CSV or XLSX.

Columns station,name,description,schedule,bookable,capacity. station: a station code, or empty (全市) for the
city-wide common list. An item with the same name on the same list is updated, never duplicated. Every row
is checked first; one bad row (named by line and field) and nothing is imported. Leaves an audit row as
`cli:<user>`, like the other imports.
"""

from __future__ import annotations

import argparse

from sqlalchemy.exc import IntegrityError

from scoring import imports, services, staff
from scoring.clock import utcnow
from scoring.db import transaction
from talenthome.commands.data import Sessions, _actor, _run
from talenthome.runtime import CliError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import-services", help="import or update service lists from CSV or XLSX",
        description="Import service-list items from a CSV (UTF-8, header row) or XLSX file (first sheet) with "
                    "the columns station,name,description,schedule,bookable,capacity. station: a station code, "
                    "or empty for the city-wide common list; bookable: yes|no (是|否); capacity: talents per "
                    "one-hour slot, required when bookable. An item with the same name on the same list is "
                    "updated, never duplicated. One bad row and nothing is imported.")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=import_services)


def import_services(args: argparse.Namespace) -> int:
    path = args.file
    try:
        rows = services.read_services(path)
    except imports.ImportFailed as err:
        raise CliError(f"{path}: {err}") from None

    async def body(sessions: Sessions) -> imports.ImportResult:
        try:
            async with transaction(sessions) as s:
                result = await services.save_services(s, rows, utcnow())
                await staff.audit(s, _actor(), staff.Role.ADMIN, f"import-services {path}",
                                  f"created {result.created}, updated {result.updated}, "
                                  f"unchanged {result.unchanged}")
        except imports.ImportFailed as err:
            raise CliError(f"{path}: {err}") from None
        except IntegrityError:
            raise CliError(f"{path}: the data changed while importing (another import?); nothing was "
                           "imported, run it again") from None
        return result

    result = _run(body)
    print(f"服务清单导入完成：新增 {result.created}，更新 {result.updated}，未变 {result.unchanged}"
          f"（共 {result.total} 行）")
    return 0
