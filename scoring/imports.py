"""Import stations and talents from CSV or XLSX files (SPEC 5).

Stations: `code,name,kind,type,county,certified_on`; talents: `cert_no,name,phone,category,county`;
gifts: `name,cost,stock,station,description` (station: a station code, or empty for a city-wide gift).

- CSV is UTF-8 with a header row (a UTF-8 BOM, as Excel writes it, is accepted); XLSX is read from its
  first sheet, header in row 1, and its dates may be real Excel dates.
- A formula in an XLSX cell is read as its value (the result Excel saved with the file), never as text to
  store: a formula with no saved value (a file written by a program, not saved by Excel) is refused,
  naming its row and field, rather than imported as empty or as "=...".
- Every row is validated before anything is written: one bad row and nothing of the file is imported.
  The error names the line (CSV) or sheet row (XLSX) and the field. A key twice in one file is an error.
- Re-importing updates the imported fields of existing rows (by station code / cert_no) and never
  duplicates. It never touches what the platform itself keeps: stars, status, demotions, openid binding.
  A row missing from a later file is left alone (imports do not delete).
- Gifts are keyed by (name, station): a re-import sets the cost, stock (a stocktake: the count outright)
  and description of the gift it names and never adds a second one. A retired gift stays retired (the
  result counts them), as a station import keeps a station's status. An unknown station code is an error
  naming the line, found before anything is written.
- Reading and validating is plain sync code (`read_stations`, `read_talents`); writing is one call per
  file (`save_stations`, `save_talents`) inside the caller's transaction, in batches: the existing keys
  are loaded with a few chunked `IN` queries, new rows go in with multi-row INSERTs and changed rows with
  one executemany UPDATE per batch, so 200,000 talents take a few dozen round trips, not 200,000.
"""

from __future__ import annotations

import csv
import itertools
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

from sqlalchemy import ColumnElement, Select, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import gifts, periods
from scoring.clock import utcnow
from scoring.models import Gift, Station, Talent

STATION_FIELDS: Final = ("code", "name", "kind", "type", "county", "certified_on")
TALENT_FIELDS: Final = ("cert_no", "name", "phone", "category", "county")
GIFT_FIELDS: Final = ("name", "cost", "stock", "station", "description")
CITY_WIDE: Final = frozenset({"", "-", "全市", "全市通用", "city"})

KINDS: Final = {"home": "home", "community": "community", "人才之家": "home", "人才社区": "community"}
TYPES: Final = {
    "comprehensive": "comprehensive", "industry": "industry", "professional": "professional",
    "service": "service", "综合型": "comprehensive", "行业型": "industry", "专业型": "professional",
    "服务型": "service",
}
# Station codes appear inside QR scene strings `st:<code>:<token>` (at most 64 characters in all).
CODE_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
DATE_RE: Final = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")

CHUNK: Final = 5000  # keys per IN query and rows per write statement
MAX_REPORTED: Final = 20  # bad rows listed in ImportFailed.errors

T = TypeVar("T")


@dataclass(frozen=True)
class RowError:
    """One problem with a file: where (line or sheet row; 0 for the file itself), which field, what."""

    where: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        place = f"{self.where} {self.line}" if self.line else ""
        field = f"field {self.field}" if self.field else ""
        head = ", ".join(p for p in (place, field) if p)
        return f"{head}: {self.message}" if head else self.message


class ImportFailed(Exception):
    """The file was not imported. `errors` lists up to MAX_REPORTED problems; str() is one line."""

    def __init__(self, errors: Sequence[RowError], total: int | None = None):
        self.errors = list(errors)
        self.total = total if total is not None else len(self.errors)
        more = self.total - 1
        suffix = f" (and {more} more {'problem' if more == 1 else 'problems'})" if more > 0 else ""
        super().__init__(f"{self.errors[0]}{suffix}; nothing was imported")


@dataclass(frozen=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


class StationRow(NamedTuple):
    line: int
    code: str
    name: str
    kind: str
    type: str
    county: str
    certified_on: date


class TalentRow(NamedTuple):
    line: int
    cert_no: str
    name: str
    phone: str
    category: str
    county: str


@dataclass(frozen=True)
class GiftImportResult(ImportResult):
    retired: int = 0  # rows that named a retired gift (updated or not, it stays retired)


class GiftRow(NamedTuple):
    line: int
    name: str
    cost: int
    stock: int
    station: str  # a station code; "" for a city-wide gift
    description: str
    where: str = "line"  # line (CSV) or row (XLSX), for errors found when saving


# -- reading ---------------------------------------------------------------------------------------
class RawRow(NamedTuple):
    line: int
    values: dict[str, object]


def _fail(message: str, *, where: str = "", line: int = 0, field: str | None = None) -> ImportFailed:
    return ImportFailed([RowError(where, line, field, message)])


def _is_xlsx(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return True
    if suffix in (".csv", ".txt"):
        return False
    if suffix == ".xls":
        raise _fail("old .xls workbooks are not supported; save it as .xlsx or as CSV UTF-8")
    with path.open("rb") as f:
        return f.read(4) == b"PK\x03\x04"  # a zip container: XLSX


def _header(cells: Sequence[object], where: str, expected: Sequence[str], line: int) -> list[str | None]:
    """Column names by position (None for an unnamed column); every expected name present once."""
    names: list[str | None] = []
    for cell in cells:
        text = _text(cell).lower()
        names.append(text or None)
    seen: set[str] = set()
    for name in names:
        if name is not None and name in expected:
            if name in seen:
                raise _fail(f"column {name!r} appears twice in the header", where=where, line=line, field=name)
            seen.add(name)
    missing = [n for n in expected if n not in seen]
    if missing:
        raise _fail(f"the header lacks column(s) {', '.join(missing)}; expected {','.join(expected)}",
                    where=where, line=line, field=missing[0])
    return names


def _decoded(lines: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 lines (a BOM on the first is dropped); a line that is not UTF-8 is reported by number."""
    for number, raw in enumerate(lines, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise _fail('the file is not UTF-8 text; save it as "CSV UTF-8"', where="line", line=number) from None


def _rows_csv(path: Path, expected: Sequence[str]) -> Iterator[RawRow]:
    with path.open("rb") as f:
        reader = csv.reader(_decoded(f))
        header: list[str | None] | None = None
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                raise _fail(f"unreadable CSV ({err})", where="line", line=start) from None
            if header is None:
                if not any(c.strip() for c in cells):
                    continue  # blank lines before the header
                header = _header(cells, "line", expected, start)
                continue
            row = _raw(cells, header, start, "line")
            if row is not None:
                yield row
        if header is None:
            raise _fail(f"the file is empty; expected a header row {','.join(expected)}")


_FORMULA_TAG: Final = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s/>]")


def _has_formulas(path: Path) -> bool:
    """Whether any sheet of the workbook holds a formula element (`<f>`): a streamed scan of the sheets'
    XML, so the common file without formulas is parsed once."""
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                    continue
                with z.open(name) as member:
                    tail = b""
                    while chunk := member.read(1 << 20):
                        if _FORMULA_TAG.search(tail + chunk):
                            return True
                        tail = chunk[-32:]
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return True  # cannot tell: look at every cell
    return False


def _unsaved_formula(cells: Sequence[object], typed: Sequence[Any], header: Sequence[str | None] | None,
                     line: int) -> None:
    """Refuse a formula cell whose value Excel never saved (openpyxl reads it as None)."""
    for i, (value, cell) in enumerate(zip(cells, typed, strict=False)):
        if value is None and getattr(cell, "data_type", None) == "f":
            field = header[i] if header is not None and i < len(header) else None
            formula = str(cell.value)[:40]
            raise _fail(f"holds a formula with no saved value ({formula!r}); open the file in Excel and save "
                        "it, or paste the values in place of the formulas", where="row", line=line, field=field)


def _rows_xlsx(path: Path, expected: Sequence[str]) -> Iterator[RawRow]:
    from openpyxl import load_workbook  # imported here: only XLSX imports pay for it

    shadow = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # style warnings about files from other tools
            book = load_workbook(path, read_only=True, data_only=True)
            if _has_formulas(path):  # the same sheet again, with formulas, to see which cells are formulas
                shadow = load_workbook(path, read_only=True, data_only=False)
    except Exception as err:  # openpyxl raises zip, XML and key errors for a broken file
        raise _fail(f"not a readable .xlsx workbook ({type(err).__name__})") from None
    try:
        if not book.worksheets:
            raise _fail("the workbook has no sheet")
        sheet = book.worksheets[0]
        typed_rows: Iterator[Any] = shadow.worksheets[0].iter_rows() if shadow else itertools.repeat(None)
        header: list[str | None] | None = None
        rows = zip(sheet.iter_rows(values_only=True), typed_rows, strict=False)  # repeat(None) is endless
        for number, (cells, typed) in enumerate(rows, start=1):
            if typed is not None:
                _unsaved_formula(cells, typed, header, number)
            if header is None:
                if not any(_text(c) for c in cells):
                    continue  # empty rows above the header
                header = _header(cells, "row", expected, number)
                continue
            row = _raw(cells, header, number, "row")
            if row is not None:
                yield row
        if header is None:
            raise _fail(f"the first sheet is empty; expected a header row {','.join(expected)}")
    finally:
        book.close()
        if shadow is not None:
            shadow.close()


def _raw(cells: Sequence[object], header: Sequence[str | None], line: int, where: str) -> RawRow | None:
    """A data row by column name, strings stripped; None for a blank row."""
    values: dict[str, object] = {}
    blank = True
    for name, cell in zip(header, cells, strict=False):
        value = cell.strip() if isinstance(cell, str) else cell
        if value is not None and value != "":
            blank = False
        if name is not None:
            values[name] = value
    extra = [c for c in cells[len(header):] if _text(c)]
    if extra:
        raise _fail(f"{len(header) + len(extra)} values but the header names {len(header)} columns",
                    where=where, line=line)
    return None if blank else RawRow(line, values)


def _read(path: str | Path, expected: Sequence[str]) -> tuple[str, list[RawRow]]:
    p = Path(path)
    if not p.exists():
        raise _fail("no such file")
    if not p.is_file():
        raise _fail("not a file")
    try:
        where = "row" if _is_xlsx(p) else "line"
        rows = _rows_xlsx(p, expected) if where == "row" else _rows_csv(p, expected)
        return where, list(rows)
    except OSError as err:
        raise _fail(f"cannot read the file ({err.strerror or err})") from None


# -- validating ------------------------------------------------------------------------------------
class _Bad(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _text(value: object) -> str:
    """A cell as text: Excel numbers without a trailing .0 (phone numbers, numeric codes)."""
    if value.__class__ is str:
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()
    return str(value).strip()


def _required(values: dict[str, object], field: str, max_len: int) -> str:
    text = _optional(values, field, max_len)
    if not text:
        raise _Bad(field, "is required")
    return text


def _optional(values: dict[str, object], field: str, max_len: int) -> str:
    text = _text(values.get(field))
    if len(text) > max_len:
        raise _Bad(field, f"is longer than {max_len} characters")
    return text


def _choice(values: dict[str, object], field: str, choices: dict[str, str]) -> str:
    text = _required(values, field, 32)
    found = choices.get(text.lower()) or choices.get(text)
    if found is None:
        allowed = sorted(set(choices.values()))
        raise _Bad(field, f"must be one of {'|'.join(allowed)} (got {text!r})")
    return found


def _date(values: dict[str, object], field: str) -> date:
    value = values.get(field)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if not text:
        raise _Bad(field, "is required")
    m = DATE_RE.match(text)
    try:
        if m is None:
            raise ValueError
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise _Bad(field, f"must be a date like 2026-06-01 (got {text!r})") from None


def _station(raw: RawRow) -> StationRow:
    v = raw.values
    code = _required(v, "code", 32)
    if not CODE_RE.match(code):
        raise _Bad("code", f"may hold only letters, digits, '-', '_' and '.' (got {code!r})")
    return StationRow(line=raw.line, code=code, name=_required(v, "name", 200), kind=_choice(v, "kind", KINDS),
                      type=_choice(v, "type", TYPES), county=_required(v, "county", 64),
                      certified_on=_date(v, "certified_on"))


def _talent(raw: RawRow) -> TalentRow:
    v = raw.values
    return TalentRow(line=raw.line, cert_no=_required(v, "cert_no", 64), name=_required(v, "name", 100),
                     phone=_optional(v, "phone", 32), category=_optional(v, "category", 32),
                     county=_optional(v, "county", 64))


def _whole(values: dict[str, object], field: str, low: int, high: int) -> int:
    value = values.get(field)
    text = _text(value)
    if not text:
        raise _Bad(field, "is required")
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 9 or isinstance(value, bool):
        raise _Bad(field, f"must be a whole number (got {text!r})")
    number = int(text)
    if not low <= number <= high:
        raise _Bad(field, f"must be from {low} to {high} (got {number})")
    return number


def _gift(raw: RawRow, where: str) -> GiftRow:
    v = raw.values
    station = _optional(v, "station", 32)
    if station.lower() in CITY_WIDE:
        station = ""
    elif not CODE_RE.match(station):
        raise _Bad("station", f"must be a station code, or empty for a city-wide gift (got {station!r})")
    return GiftRow(line=raw.line, name=_required(v, "name", gifts.MAX_NAME),
                   cost=_whole(v, "cost", 1, gifts.MAX_COST), stock=_whole(v, "stock", 0, gifts.MAX_STOCK),
                   station=station, description=_optional(v, "description", gifts.MAX_DESCRIPTION), where=where)


def _validate(where: str, raws: Iterable[RawRow], make: Callable[[RawRow], T], key: Callable[[T], str],
              key_field: str) -> list[T]:
    rows: list[T] = []
    errors: list[RowError] = []
    total = 0
    first_line: dict[str, int] = {}
    for raw in raws:
        try:
            row = make(raw)
        except _Bad as bad:
            total += 1
            if len(errors) < MAX_REPORTED:
                errors.append(RowError(where, raw.line, bad.field, str(bad)))
            continue
        k = key(row)
        if k in first_line:
            total += 1
            if len(errors) < MAX_REPORTED:
                errors.append(RowError(where, raw.line, key_field,
                                       f"duplicate {key_field} {k!r} (first on {where} {first_line[k]})"))
            continue
        first_line[k] = raw.line
        rows.append(row)
    if errors:
        raise ImportFailed(errors, total)
    return rows


def read_stations(path: str | Path) -> list[StationRow]:
    """Read and validate a stations file; raises ImportFailed naming the first bad line and field."""
    where, raws = _read(path, STATION_FIELDS)
    return _validate(where, raws, _station, lambda r: r.code, "code")


def read_talents(path: str | Path) -> list[TalentRow]:
    """Read and validate a talents file; raises ImportFailed naming the first bad line and field."""
    where, raws = _read(path, TALENT_FIELDS)
    return _validate(where, raws, _talent, lambda r: r.cert_no, "cert_no")


def read_gifts(path: str | Path) -> list[GiftRow]:
    """Read and validate a gifts file; raises ImportFailed naming the first bad line and field. The
    stations named are checked when saving."""
    where, raws = _read(path, GIFT_FIELDS)
    return _validate(where, raws, lambda raw: _gift(raw, where),
                     lambda r: f"{r.name} at {r.station}" if r.station else r.name, "name")


# -- writing ---------------------------------------------------------------------------------------
def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def _plan_each_statement(session: AsyncSession) -> None:
    """On PostgreSQL, plan each statement of this transaction for its own values. asyncpg prepares
    statements and PostgreSQL may switch a reused one to a generic plan made while the table was small
    (say, empty before the first import on this connection): a sequential scan matching every row against
    a 5,000-value list, minutes per chunk. Custom plans use the index (or a hashed list)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


async def _existing(session: AsyncSession, query: Select[Any], key: ColumnElement[str],
                    keys: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """{key: (id, imported fields...)} of the rows already stored, a chunk of keys per query (plain
    Core rows: no ORM objects for 200,000 talents)."""
    await _plan_each_statement(session)
    conn = await session.connection()
    found: dict[str, tuple[Any, ...]] = {}
    for chunk in _chunks(keys):
        for row in (await conn.execute(query.where(key.in_(chunk)))).all():
            found[row[0]] = tuple(row[1:])
    return found


async def save_stations(session: AsyncSession, rows: Sequence[StationRow],
                        step: Callable[[int], object] | None = None) -> ImportResult:
    """Create or update the stations (by code) in the caller's transaction; stars, status and the
    delisting record of existing stations are kept."""
    t = Station.__table__.c
    existing = await _existing(session, select(t.code, t.id, t.name, t.kind, t.type, t.county, t.certified_on),
                               t.code, [r.code for r in rows])
    now = utcnow()
    creates: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    unchanged = 0
    for r in rows:
        fields = {"name": r.name, "kind": r.kind, "type": r.type, "county": r.county,
                  "certified_on": r.certified_on, "eligible_from": periods.eligible_from(r.certified_on)}
        old = existing.get(r.code)
        if old is None:
            creates.append({"code": r.code, **fields, "stars": 3, "status": "active", "demotion_streak": 0,
                            "created_at": now, "updated_at": now})
        elif old[1:] == (r.name, r.kind, r.type, r.county, r.certified_on):
            unchanged += 1
        else:
            updates.append({"id": old[0], **fields, "updated_at": now})
    for batch in _chunks(creates):
        await session.execute(insert(Station), list(batch))
        if step:
            step(len(batch))
    for batch in _chunks(updates):
        await session.execute(update(Station), list(batch))
        if step:
            step(len(batch))
    if step:
        step(unchanged)
    return ImportResult(created=len(creates), updated=len(updates), unchanged=unchanged)


async def save_talents(session: AsyncSession, rows: Sequence[TalentRow],
                        step: Callable[[int], object] | None = None) -> ImportResult:
    """Create or update the talents (by cert_no) in the caller's transaction; a talent's openid
    binding is kept."""
    t = Talent.__table__.c
    existing = await _existing(session, select(t.cert_no, t.id, t.name, t.phone, t.category, t.county),
                               t.cert_no, [r.cert_no for r in rows])
    now = utcnow()
    creates: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    unchanged = 0
    for r in rows:
        fields = {"name": r.name, "phone": r.phone, "category": r.category, "county": r.county}
        old = existing.get(r.cert_no)
        if old is None:
            creates.append({"cert_no": r.cert_no, **fields, "created_at": now})
        elif old[1:] == (r.name, r.phone, r.category, r.county):
            unchanged += 1
        else:
            updates.append({"id": old[0], **fields})
    for batch in _chunks(creates):
        await session.execute(insert(Talent), list(batch))
        if step:
            step(len(batch))
    for batch in _chunks(updates):
        await session.execute(update(Talent), list(batch))
        if step:
            step(len(batch))
    if step:
        step(unchanged)
    return ImportResult(created=len(creates), updated=len(updates), unchanged=unchanged)


async def import_stations(session: AsyncSession, path: str | Path) -> ImportResult:
    """Read, validate and save a stations file (reading blocks; callers on a busy loop may prefer
    `read_stations` in a thread, then `save_stations`)."""
    return await save_stations(session, read_stations(path))


async def import_talents(session: AsyncSession, path: str | Path) -> ImportResult:
    """Read, validate and save a talents file (see import_stations)."""
    return await save_talents(session, read_talents(path))


async def save_gifts(session: AsyncSession, rows: Sequence[GiftRow],
                     step: Callable[[int], object] | None = None) -> GiftImportResult:
    """Create or update the gifts (by name and station) in the caller's transaction; raises ImportFailed,
    before writing anything, when a row names an unknown station. `step(1)` is called per row saved.
    A catalogue is small (hundreds of rows), so this works through the ORM."""
    codes = sorted({r.station for r in rows if r.station})
    station_ids: dict[str, int] = {}
    for chunk in _chunks(codes):
        found = await session.execute(select(Station.code, Station.id).where(Station.code.in_(chunk)))
        station_ids.update((code, sid) for code, sid in found.all())
    unknown = [r for r in rows if r.station and r.station not in station_ids]
    if unknown:
        raise ImportFailed([RowError(r.where, r.line, "station", f"unknown station {r.station!r}")
                            for r in unknown[:MAX_REPORTED]], len(unknown))
    existing: dict[tuple[str, int | None], Gift] = {}
    for g in (await session.scalars(select(Gift).order_by(Gift.id.desc()))).all():
        existing[(g.name, g.station_id)] = g  # the lowest id wins, as scoring.gifts.find_gift
    created = updated = unchanged = retired = 0
    for r in rows:
        station_id = station_ids[r.station] if r.station else None
        gift = existing.get((r.name, station_id))
        if gift is None:
            gift = Gift(name=r.name, cost=r.cost, stock=r.stock, station_id=station_id,
                        description=r.description, active=True)
            session.add(gift)
            existing[(r.name, station_id)] = gift
            created += 1
        else:
            retired += not gift.active
            if (gift.cost, gift.stock, gift.description) == (r.cost, r.stock, r.description):
                unchanged += 1
            else:
                gift.cost, gift.stock, gift.description = r.cost, r.stock, r.description
                updated += 1
        if step is not None:
            step(1)
    await session.flush()
    return GiftImportResult(created=created, updated=updated, unchanged=unchanged, retired=retired)
