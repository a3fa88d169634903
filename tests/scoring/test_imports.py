"""Station and talent imports (scoring.imports) on SQLite and PostgreSQL: idempotent re-import that keeps
what the platform owns, all-or-nothing validation naming line and field, XLSX, BOM, duplicates, batching."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from scoring import imports
from scoring.db import transaction
from scoring.imports import ImportFailed, ImportResult
from scoring.models import Station, Talent

STATIONS = [
    "code,name,kind,type,county,certified_on",
    "QZ-LC-01,鲤城区人才之家,home,comprehensive,鲤城区,2020-05-01",
    "QZ-FZ-02,丰泽区人才社区,community,industry,丰泽区,2026-06-01",
    "QZ-JJ-03,晋江市人才之家,home,service,晋江市,2024/3/9",
]
TALENTS = [
    "cert_no,name,phone,category,county",
    "QZT0001,张三,13800000001,A,鲤城区",
    "QZT0002,李四,13800000002,B,丰泽区",
    "QZT0003,王五,,C,",
]


def write(tmp_path: Path, lines: list[str], name: str = "data.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\r\n".join(lines) + "\r\n").encode())
    return path


async def count(sessions: async_sessionmaker[AsyncSession], model: type[Station] | type[Talent]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_station_reimport_updates_and_keeps_stars_and_status(sessions, tmp_path):
    path = write(tmp_path, STATIONS)
    async with transaction(sessions) as s:
        assert await imports.import_stations(s, path) == ImportResult(created=3)
    async with transaction(sessions) as s:
        lc = await s.scalar(select(Station).where(Station.code == "QZ-LC-01"))
        lc.stars, lc.status, lc.demotion_streak = 5, "delisted", 2

    async with transaction(sessions) as s:
        assert await imports.import_stations(s, path) == ImportResult(unchanged=3)
    changed = [*STATIONS[:1], STATIONS[1].replace("鲤城区人才之家", "鲤城区人才之家（新址）"), *STATIONS[2:]]
    async with transaction(sessions) as s:
        assert await imports.import_stations(s, write(tmp_path, changed)) == ImportResult(updated=1, unchanged=2)

    assert await count(sessions, Station) == 3
    async with sessions() as s:
        by_code = {st.code: st for st in (await s.scalars(select(Station))).all()}
    lc, fz, jj = by_code["QZ-LC-01"], by_code["QZ-FZ-02"], by_code["QZ-JJ-03"]
    assert (lc.name, lc.stars, lc.status, lc.demotion_streak) == ("鲤城区人才之家（新址）", 5, "delisted", 2)
    assert (fz.kind, fz.type, fz.stars, fz.status) == ("community", "industry", 3, "active")
    # Eligible from local midnight of 1 January after the certification year, stored as naive UTC.
    assert fz.eligible_from == datetime(2026, 12, 31, 16, 0)
    assert jj.certified_on == date(2024, 3, 9)


async def test_talent_reimport_keeps_binding(sessions, tmp_path):
    async with transaction(sessions) as s:
        assert await imports.import_talents(s, write(tmp_path, TALENTS)) == ImportResult(created=3)
    async with transaction(sessions) as s:
        t = await s.scalar(select(Talent).where(Talent.cert_no == "QZT0001"))
        t.openid, t.bound_at = "o-bound-1", datetime(2026, 11, 1)

    changed = [*TALENTS[:1], "QZT0001,张三,13900000009,A,鲤城区", *TALENTS[2:], "QZT0004,赵六,,D,南安市"]
    async with transaction(sessions) as s:
        assert await imports.import_talents(s, write(tmp_path, changed)) == ImportResult(
            created=1, updated=1, unchanged=2)
    async with transaction(sessions) as s:
        assert await imports.import_talents(s, write(tmp_path, changed)) == ImportResult(unchanged=4)

    assert await count(sessions, Talent) == 4
    async with sessions() as s:
        t = await s.scalar(select(Talent).where(Talent.cert_no == "QZT0001"))
    assert (t.phone, t.openid, t.bound_at) == ("13900000009", "o-bound-1", datetime(2026, 11, 1))


BAD_ROWS = [
    ("QZ-X,某站,house,comprehensive,鲤城区,2020-05-01", "kind"),
    ("QZ-X,某站,home,comprehensive,鲤城区,2020-02-30", "certified_on"),
    ("QZ-X,,home,comprehensive,鲤城区,2020-05-01", "name"),
    ("QZ:X,某站,home,comprehensive,鲤城区,2020-05-01", "code"),
]


async def test_one_bad_row_imports_nothing_and_names_line_and_field(sessions, tmp_path):
    async with transaction(sessions) as s:
        await imports.import_stations(s, write(tmp_path, STATIONS[:2]))
    for bad_row, field in BAD_ROWS:
        lines = [*STATIONS[:3], bad_row, STATIONS[3]]
        async with transaction(sessions) as s:
            with pytest.raises(ImportFailed) as failed:
                await imports.import_stations(s, write(tmp_path, lines))
        message = str(failed.value)
        assert message.startswith(f"line 4, field {field}: "), message
        assert "nothing was imported" in message and "\n" not in message
        assert [(e.line, e.field) for e in failed.value.errors] == [(4, field)]
    async with sessions() as s:
        assert (await s.scalars(select(Station.code))).all() == ["QZ-LC-01"]


async def test_duplicate_key_in_one_file_is_an_error(sessions, tmp_path):
    lines = [*TALENTS, "QZT0002,李四（重复）,,B,丰泽区"]
    async with transaction(sessions) as s:
        with pytest.raises(ImportFailed, match=r"^line 5, field cert_no: duplicate cert_no 'QZT0002' \(first on "
                                               r"line 3\)"):
            await imports.import_talents(s, write(tmp_path, lines))
    assert await count(sessions, Talent) == 0


async def test_bom_csv_is_read(sessions, tmp_path):
    path = write(tmp_path, STATIONS, bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfcode,")
    async with transaction(sessions) as s:
        assert await imports.import_stations(s, path) == ImportResult(created=3)
    async with sessions() as s:
        codes = sorted((await s.scalars(select(Station.code))).all())
    assert codes == ["QZ-FZ-02", "QZ-JJ-03", "QZ-LC-01"]


async def test_xlsx_with_real_dates_and_numbers(sessions, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["code", "name", "kind", "type", "county", "certified_on"])
    sheet.append(["QZ-NA-01", "南安市人才之家", "人才之家", "专业型", "南安市", date(2025, 7, 15)])  # a real date cell
    sheet.append([1002, "安溪县人才社区", "community", "service", "安溪县", "2026-01-02"])  # a numeric code
    sheet.append([None] * 6)  # a blank row is skipped
    sheet.append(["QZ-DH-03", "德化县人才之家", "home", "comprehensive", "德化县", datetime(2019, 12, 31)])
    assert sheet.cell(row=2, column=6).is_date
    book.save(tmp_path / "stations.xlsx")
    talents = openpyxl.Workbook()
    talents.active.append(["cert_no", "name", "phone", "category", "county"])
    talents.active.append(["QZT9", "陈七", 13800000009, "A", "南安市"])  # Excel keeps phones as numbers
    talents.save(tmp_path / "talents.xlsx")

    async with transaction(sessions) as s:
        assert await imports.import_stations(s, tmp_path / "stations.xlsx") == ImportResult(created=3)
        assert await imports.import_talents(s, tmp_path / "talents.xlsx") == ImportResult(created=1)
    async with transaction(sessions) as s:
        assert await imports.import_stations(s, tmp_path / "stations.xlsx") == ImportResult(unchanged=3)
    async with sessions() as s:
        rows = {st.code: st for st in (await s.scalars(select(Station))).all()}
        phone = await s.scalar(select(Talent.phone).where(Talent.cert_no == "QZT9"))
    assert (rows["QZ-NA-01"].kind, rows["QZ-NA-01"].type) == ("home", "professional")
    assert rows["QZ-NA-01"].certified_on == date(2025, 7, 15)
    assert rows["1002"].certified_on == date(2026, 1, 2)
    assert rows["QZ-DH-03"].eligible_from == datetime(2019, 12, 31, 16, 0)
    assert phone == "13800000009"


async def test_xlsx_bad_row_names_sheet_row(sessions, tmp_path):
    book = openpyxl.Workbook()
    book.active.append(["code", "name", "kind", "type", "county", "certified_on"])
    book.active.append(["QZ-1", "一号站", "home", "service", "鲤城区", date(2024, 1, 1)])
    book.active.append(["QZ-2", "二号站", "home", "sports", "鲤城区", date(2024, 1, 1)])
    book.save(tmp_path / "bad.xlsx")
    async with transaction(sessions) as s:
        with pytest.raises(ImportFailed, match=r"^row 3, field type: must be one of "):
            await imports.import_stations(s, tmp_path / "bad.xlsx")
    assert await count(sessions, Station) == 0


async def test_large_import_is_batched(engine: AsyncEngine, sessions, tmp_path):
    """6,000 talents: a handful of statements each way (keys loaded in chunks, multi-row writes),
    never a round trip per row."""
    n = 6_000
    lines = ["cert_no,name,phone,category,county", *(f"B{i:06d},人才{i},138{i:08d},A,鲤城区" for i in range(n))]
    statements = 0

    def counter(*_args: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine.sync_engine, "before_cursor_execute", counter)
    try:
        async with transaction(sessions) as s:
            assert await imports.import_talents(s, write(tmp_path, lines)) == ImportResult(created=n)
        first = statements
        half = [lines[0], *(ln.replace(",A,", ",B,") if i % 2 else ln for i, ln in enumerate(lines[1:]))]
        async with transaction(sessions) as s:
            assert await imports.import_talents(s, write(tmp_path, half)) == ImportResult(
                updated=n // 2, unchanged=n // 2)
        second = statements - first
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", counter)
    assert first <= 30 and second <= 30, (first, second)
    assert await count(sessions, Talent) == n


# -- file-level problems (no database) -------------------------------------------------------------
def test_file_problems_are_one_line_errors(tmp_path):
    with pytest.raises(ImportFailed, match=r"^no such file; nothing was imported$"):
        imports.read_stations(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ImportFailed, match=r"^the file is empty"):
        imports.read_talents(tmp_path / "empty.csv")
    write(tmp_path, ["cert_no,name,phone", "QZ1,张三,1"], "short.csv")
    with pytest.raises(ImportFailed, match=r"^line 1, field category: the header lacks column\(s\) category, county"):
        imports.read_talents(tmp_path / "short.csv")
    (tmp_path / "gbk.csv").write_bytes("cert_no,name,phone,category,county\nQZ1,张三,,A,\n".encode("gb18030"))
    with pytest.raises(ImportFailed, match=r'^line 2: the file is not UTF-8 text; save it as "CSV UTF-8"'):
        imports.read_talents(tmp_path / "gbk.csv")
    (tmp_path / "fake.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ImportFailed, match=r"^not a readable \.xlsx workbook"):
        imports.read_talents(tmp_path / "fake.xlsx")


def test_every_bad_row_is_counted_in_one_line(tmp_path):
    lines = [TALENTS[0], *(f"QZ{i},,,," for i in range(30))]
    with pytest.raises(ImportFailed) as failed:
        imports.read_talents(write(tmp_path, lines))
    assert str(failed.value) == "line 2, field name: is required (and 29 more problems); nothing was imported"
    assert len(failed.value.errors) == imports.MAX_REPORTED and failed.value.total == 30
