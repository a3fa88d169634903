"""XLSX imports read a formula as the value Excel saved with it, never as text to store; a formula with
no saved value (written by a program, never opened in Excel) is refused naming its row and field."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from scoring import imports
from scoring.db import transaction
from scoring.imports import ImportFailed, ImportResult
from scoring.models import Talent

HEADER = ["cert_no", "name", "phone", "category", "county"]


def write(path: Path, rows: list[list[object]], cached: dict[str, str] | None = None) -> Path:
    """An XLSX file; `cached` gives formula cells (by coordinate) the value Excel would have saved."""
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    if cached:
        with zipfile.ZipFile(path) as z:
            members = {name: z.read(name) for name in z.namelist()}
        sheet = members["xl/worksheets/sheet1.xml"].decode()
        for ref, value in cached.items():
            sheet, n = re.subn(rf'<c r="{ref}"([^>]*)><f>(.*?)</f><v\s*/?>(?:</v>)?',
                               rf'<c r="{ref}" t="str"\1><f>\2</f><v>{value}</v>', sheet)
            assert n == 1, ref
        members["xl/worksheets/sheet1.xml"] = sheet.encode()
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    return path


async def talents(sessions) -> dict[str, str]:
    async with sessions() as s:
        return {t.cert_no: t.name for t in (await s.scalars(select(Talent))).all()}


async def test_formula_without_saved_value_is_refused(sessions, tmp_path):
    path = write(tmp_path / "t.xlsx", [HEADER, ["QZ1", "张三", "", "A", "鲤城区"],
                                       ["QZ2", '=HYPERLINK("http://evil.example/x","点我")', "", "A", "鲤城区"]])
    with pytest.raises(ImportFailed, match=r"^row 3, field name: holds a formula with no saved value "
                                           r"\('=HYPERLINK.*nothing was imported$"):
        imports.read_talents(path)
    async with transaction(sessions) as s:
        with pytest.raises(ImportFailed, match="row 3, field name"):
            await imports.import_talents(s, path)
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Talent)) == 0


async def test_formula_in_an_optional_field_is_refused_too(tmp_path):
    # read as its value, a formula without one would silently import an empty phone
    path = write(tmp_path / "t.xlsx", [HEADER, ["QZ1", "张三", "=1+1", "A", "鲤城区"]])
    with pytest.raises(ImportFailed, match=r"^row 2, field phone: holds a formula"):
        imports.read_talents(path)


async def test_formula_with_saved_value_imports_the_value(sessions, tmp_path):
    path = write(tmp_path / "t.xlsx", [HEADER, ["QZ1", '="张"&"三"', "", "A", "鲤城区"],
                                       ["QZ2", "李四", "", "B", "丰泽区"]], cached={"B2": "张三"})
    async with transaction(sessions) as s:
        assert await imports.import_talents(s, path) == ImportResult(created=2)
    assert await talents(sessions) == {"QZ1": "张三", "QZ2": "李四"}


async def test_text_that_looks_like_a_formula_is_text(sessions, tmp_path):
    book = openpyxl.Workbook()
    book.active.append(HEADER)
    book.active.append(["QZ1", "=A1", "", "A", "鲤城区"])
    book.active["B2"].data_type = "s"  # typed as text (Excel: a leading apostrophe)
    book.save(tmp_path / "t.xlsx")
    async with transaction(sessions) as s:
        assert await imports.import_talents(s, tmp_path / "t.xlsx") == ImportResult(created=1)
    assert await talents(sessions) == {"QZ1": "=A1"}


def test_file_without_formulas_is_read_once(tmp_path):
    path = write(tmp_path / "t.xlsx", [HEADER, ["QZ1", "张三", "13800000001", "A", "鲤城区"]])
    assert not imports._has_formulas(path)
    assert imports._has_formulas(write(tmp_path / "f.xlsx", [HEADER, ["QZ1", "=1", "", "", ""]]))
    assert [r.name for r in imports.read_talents(path)] == ["张三"]
