"""Every text in an export is stored as text: a person's `=HYPERLINK(...)` never becomes a live formula.

Each export gets a hostile text in each of its text columns (a different one per column, so a column
that slipped through is named by the failure); the workbook is saved, reopened with openpyxl, and every
such cell must be a string cell (`data_type "s"`, never `"f"`) holding exactly the text that was given.
"""

from __future__ import annotations

import io
from datetime import datetime

import openpyxl
import pytest

from scoring.db import transaction
from scoring.exports import build
from scoring.models import Activity, AuditLog, Gift, Rating, RatingRun
from tests import factories as f
from tests.cli import run_cli

NOW = datetime(2026, 11, 20, 4, 0)  # 2026-11-20 12:00 local
HOSTILE = (
    '=HYPERLINK("http://evil.example/x","点我")',
    "+1+cmd|' /C calc'!A0",
    "-2+3*SUM(A1:A9)",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "=1+1\r\n第二行",
)


def hostile(i: int) -> str:
    return HOSTILE[i % len(HOSTILE)]


def as_read(text: str) -> str:
    """What a reader of the file gets: XML reads a carriage return as a line feed."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


async def seed(sessions) -> None:
    async with transaction(sessions) as s:
        st = await f.station(s, "-A1", name=hostile(0))
        st.county = hostile(1)
        other = await f.station(s, "B1", name=hostile(2))
        other.county = hostile(3)
        s.add(Activity(station_id=st.id, title=hostile(4), starts_at=datetime(2026, 11, 10, 6),
                       ends_at=datetime(2026, 11, 10, 8), published_at=datetime(2026, 11, 1)))
        s.add(Activity(station_id=other.id, title=hostile(0), starts_at=datetime(2026, 11, 11, 6),
                       ends_at=datetime(2026, 11, 11, 8), published_at=datetime(2026, 11, 1)))
        s.add(RatingRun(year=2025, status="confirmed"))
        await s.flush()
        for rank, station in enumerate((st, other), start=1):
            s.add(Rating(year=2025, station_id=station.id, rank=rank, points=10 - rank, stars_before=3,
                         stars_after=3, move="same"))
        s.add(AuditLog(actor=hostile(5), role=hostile(6), command=hostile(0), outcome=hostile(1), at=NOW))
        s.add(AuditLog(actor="oAdmin", role="admin", command="=cmd|' /C calc'!A0", outcome="-ok", at=NOW))
        s.add(Gift(name=hostile(2), cost=10, stock=1, station_id=st.id, description=hostile(3)))
        s.add(Gift(name=hostile(4), cost=5, stock=0, description=hostile(5)))


def reopened(wb: openpyxl.Workbook) -> list[list[openpyxl.cell.Cell]]:
    buf = io.BytesIO()
    wb.save(buf)
    buf.seek(0)
    return [list(row) for row in openpyxl.load_workbook(buf).active.iter_rows()]


# the export, its period, and the text columns (0-based) of its data rows
EXPORTS = [
    ("month-board", "2026-11", (1, 2, 4)),
    ("year-board", "2026", (1, 2, 5)),
    ("rating", "2025", (1, 2)),
    ("activities", "2026-11", (1, 2)),
    ("audit", "2026-11", (2, 3, 4, 5)),
    ("gifts", None, (1, 2, 3, 9)),
]


@pytest.mark.parametrize(("kind", "period", "columns"), EXPORTS, ids=[e[0] for e in EXPORTS])
async def test_person_text_is_never_a_formula(sessions, kind, period, columns):
    await seed(sessions)
    async with sessions() as s:
        wb, _ = await build(s, kind, period, now=NOW)
    written = [list(r) for r in wb.active.iter_rows(values_only=True)][2:]
    rows = reopened(wb)
    assert len(rows) == len(written) + 2 and len(written) >= 2
    hostile_cells = 0
    for row in rows:
        assert all(cell.data_type != "f" for cell in row), [c.value for c in row]
    for given, row in zip(written, rows[2:], strict=True):
        for col in columns:
            cell = row[col]
            if given[col] is None:  # a city-wide gift has no station code
                assert cell.value is None
                continue
            assert cell.data_type == "s", (kind, col, cell.value)
            assert cell.value == as_read(given[col])
            hostile_cells += str(given[col])[:1] in ("=", "+", "-", "@", "\t", "\n")
    assert hostile_cells >= len(columns)  # every text column held a hostile text somewhere


async def test_hostile_texts_reach_the_file_unchanged(sessions):
    await seed(sessions)
    async with sessions() as s:
        wb, _ = await build(s, "activities", "2026-11", now=NOW)
    titles = [row[2].value for row in reopened(wb)[2:]]
    assert sorted(titles) == sorted([hostile(4), hostile(0)])  # no quote or space added in front


async def test_export_command_writes_the_hyperlink_title_as_text(db_url, sessions, tmp_path):
    """The issue's case, end to end: `talenthome export activities` with a =HYPERLINK(...) title."""
    await seed(sessions)
    out = tmp_path / "activities.xlsx"
    done = await run_cli("export", "activities", "--period", "2026-11", "-o", str(out),
                         env={"DATABASE_URL": db_url})
    assert done.returncode == 0, done.stderr
    cells = [row[2] for row in openpyxl.load_workbook(out).active.iter_rows(min_row=3)]
    assert {c.value for c in cells} == {hostile(4), hostile(0)} and {c.data_type for c in cells} == {"s"}
