"""`talenthome import-services FILE` (CSV and XLSX): all rows checked first, errors name the line and field,
nothing written on error, re-import updates without duplicating, an audit row as cli:<user>."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from sqlalchemy import select

from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import AuditLog, ServiceItem
from tests import factories as f
from tests.conftest import run_sync
from tests.test_cli_gifts import cli  # noqa: F401 - the in-process CLI fixture

HEADER = "station,name,description,schedule,bookable,capacity\n"


async def _seed(url: str) -> None:
    engine = make_engine(url)
    async with transaction(make_sessionmaker(engine)) as s:
        await f.station(s, "QZ001")
    await engine.dispose()


async def _rows(url: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as s:
        rows = [tuple(r) for r in (await s.execute(select(
            ServiceItem.station_id, ServiceItem.name, ServiceItem.description, ServiceItem.bookable,
            ServiceItem.capacity).order_by(ServiceItem.id))).all()]
        rows.append(tuple((await s.scalars(select(AuditLog.command))).all()))
    await engine.dispose()
    return rows


def test_import_services_csv_and_xlsx(cli, sqlite_url: str, tmp_path: Path) -> None:  # noqa: F811
    run_sync(_seed(sqlite_url))
    good = tmp_path / "services.csv"
    good.write_text(HEADER + ",人才公寓指引,全市通用,,否,\n"
                    "QZ001,创业辅导,一对一,每周三下午,是,3\n", encoding="utf-8")
    first = cli(sqlite_url, "import-services", str(good))
    assert first.code == 0 and "新增 2" in first.out
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "QZ001,法律咨询,,,是,\nQZ001,税务咨询,,,也许,2\n", encoding="utf-8")
    cli(sqlite_url, "import-services", str(bad)).one_line_error("bad.csv: line 2, field capacity",
                                                                "nothing was imported")
    nope = tmp_path / "nope.csv"
    nope.write_text(HEADER + "QZ001,法律咨询,,,否,\nQZ999,税务咨询,,,否,\n", encoding="utf-8")
    cli(sqlite_url, "import-services", str(nope)).one_line_error("nope.csv: line 3, field station: unknown station")
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["station", "name", "description", "schedule", "bookable", "capacity"])
    ws.append(["QZ001", "创业辅导", "一对一，含路演辅导", "每周三下午", "yes", 4])
    xlsx = tmp_path / "services.xlsx"
    wb.save(xlsx)
    again = cli(sqlite_url, "import-services", str(xlsx))
    assert again.code == 0 and "更新 1" in again.out
    *items, audit = run_sync(_rows(sqlite_url))
    assert items == [(None, "人才公寓指引", "全市通用", False, None), (1, "创业辅导", "一对一，含路演辅导", True, 4)]
    assert audit == (f"import-services {good}", f"import-services {xlsx}")
