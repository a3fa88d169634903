"""Gift imports (scoring.imports.read_gifts / save_gifts) on SQLite and PostgreSQL: keyed by (name,
station), idempotent, all-or-nothing validation naming the line, unknown stations refused before writing."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select

from scoring import gifts, imports
from scoring.db import transaction
from scoring.imports import GiftImportResult, ImportFailed
from scoring.models import Gift
from tests import factories as f

GIFTS = [
    "name,cost,stock,station,description",
    "保温杯,20,5,,不锈钢 500ml",
    "茶叶,10,3,ST1,安溪铁观音",
    "茶叶,12,2,ST2,",
    "书,30,0,全市,",
]


def write(tmp_path: Path, lines: list[str], name: str = "gifts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


async def stored(sessions) -> list[tuple[object, ...]]:
    async with sessions() as s:
        rows = (await s.execute(select(Gift.name, Gift.cost, Gift.stock, Gift.station_id, Gift.description,
                                       Gift.active).order_by(Gift.id))).all()
    return [tuple(r) for r in rows]


async def stations(sessions):
    async with transaction(sessions) as s:
        return await f.station(s, "ST1"), await f.station(s, "ST2")


async def save(sessions, path: Path) -> GiftImportResult:
    rows = imports.read_gifts(path)
    async with transaction(sessions) as s:
        return await imports.save_gifts(s, rows)


async def test_import_then_reimport_updates_and_never_duplicates(sessions, tmp_path):
    st1, st2 = await stations(sessions)
    path = write(tmp_path, GIFTS)
    assert await save(sessions, path) == GiftImportResult(created=4)
    assert await stored(sessions) == [("保温杯", 20, 5, None, "不锈钢 500ml", True),
                                      ("茶叶", 10, 3, st1.id, "安溪铁观音", True),
                                      ("茶叶", 12, 2, st2.id, "", True), ("书", 30, 0, None, "", True)]
    assert await save(sessions, path) == GiftImportResult(unchanged=4)
    # a retired gift is updated but stays retired; a stocktake sets the count outright
    async with transaction(sessions) as s:
        book = await s.scalar(select(Gift).where(Gift.name == "书"))
        await gifts.retire_gift(s, book.id)
    changed = [*GIFTS[:2], GIFTS[2].replace(",3,", ",9,"), GIFTS[3], GIFTS[4].replace(",0,", ",4,"),
               "伞,8,1,ST2,"]
    assert await save(sessions, write(tmp_path, changed)) == GiftImportResult(created=1, updated=2, unchanged=2,
                                                                            retired=1)
    assert await stored(sessions) == [("保温杯", 20, 5, None, "不锈钢 500ml", True),
                                      ("茶叶", 10, 9, st1.id, "安溪铁观音", True),
                                      ("茶叶", 12, 2, st2.id, "", True), ("书", 30, 4, None, "", False),
                                      ("伞", 8, 1, st2.id, "", True)]


async def test_gift_added_by_an_admin_is_updated_by_an_import(sessions, tmp_path):
    st1, _ = await stations(sessions)
    async with transaction(sessions) as s:
        assert isinstance(await gifts.add_gift(s, name="茶叶", cost=5, stock=1, station_id=st1.id), Gift)
    assert await save(sessions, write(tmp_path, GIFTS[:3])) == GiftImportResult(created=1, updated=1)
    assert len(await stored(sessions)) == 2


@pytest.mark.parametrize("row, field, words", [
    (",20,5,,", "name", "is required"),
    ("杯,0,5,,", "cost", "from 1 to"),
    ("杯,-3,5,,", "cost", "from 1 to"),
    ("杯,二十,5,,", "cost", "whole number"),
    ("杯,2.5,5,,", "cost", "whole number"),
    ("杯,20,-1,,", "stock", "from 0 to"),
    ("杯,20,,,", "stock", "is required"),
    ("杯,20,5,ST 1,", "station", "station code"),
    ("茶叶,1,1,ST1,", "name", "duplicate name '茶叶 at ST1' (first on line 3)"),
])
def test_a_bad_row_names_its_line_and_field(tmp_path, row, field, words):
    with pytest.raises(ImportFailed) as err:
        imports.read_gifts(write(tmp_path, [*GIFTS[:3], row]))
    assert str(err.value).startswith(f"line 4, field {field}: ") and words in str(err.value)
    assert str(err.value).endswith("nothing was imported")


async def test_an_unknown_station_imports_nothing(sessions, tmp_path):
    await stations(sessions)
    rows = imports.read_gifts(write(tmp_path, [*GIFTS, "伞,8,1,NOPE,"]))
    async with sessions() as s, s.begin():
        with pytest.raises(ImportFailed) as err:
            await imports.save_gifts(s, rows)
    assert str(err.value) == "line 6, field station: unknown station 'NOPE'; nothing was imported"
    assert await stored(sessions) == []


async def test_xlsx_with_numbers_as_numbers(sessions, tmp_path):
    await stations(sessions)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["name", "cost", "stock", "station", "description"])
    sheet.append(["保温杯", 20, 5.0, None, None])
    sheet.append(["茶叶", 10, 3, "ST1", "铁观音"])
    path = tmp_path / "gifts.xlsx"
    book.save(path)
    steps: list[int] = []
    rows = imports.read_gifts(path)
    async with transaction(sessions) as s:
        assert await imports.save_gifts(s, rows, steps.append) == GiftImportResult(created=2)
    assert steps == [1, 1]
    assert [r[:3] for r in await stored(sessions)] == [("保温杯", 20, 5), ("茶叶", 10, 3)]
    sheet.append(["伞", 1, 1, "NOPE", None])
    book.save(path)
    rows = imports.read_gifts(path)
    async with transaction(sessions) as s:
        with pytest.raises(ImportFailed, match=r"^row 4, field station: unknown station 'NOPE'"):
            await imports.save_gifts(s, rows)
