"""Excel exports: opened with openpyxl, figures checked, numbers stored as numbers."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import openpyxl
import pytest

from scoring.db import transaction
from scoring.exports import ExportError, build
from scoring.facts import visit
from scoring.models import Activity, Attendance, AuditLog, Satisfaction, Signup
from tests import factories as f
from tests.cli import run_cli

NOW = datetime(2026, 11, 20, 4, 0)  # 2026-11-20 12:00 local


async def seed(sessions):
    async with transaction(sessions) as s:
        a, b = await f.station(s, "A1"), await f.station(s, "B1")
        young = await f.station(s, "N1", certified_on=datetime(2026, 6, 1).date())
        t1, t2 = await f.talent(s), await f.talent(s)
        for t in (t1, t2):
            v = await f.visit(s, t, a, datetime(2026, 11, 3, 2, 0))
            await visit.credit(s, [v.id])
        v = await f.visit(s, t1, b, datetime(2026, 11, 4, 2, 0))
        await visit.credit(s, [v.id])
        act = Activity(station_id=a.id, title="沙龙", starts_at=datetime(2026, 11, 10, 6),
                       ends_at=datetime(2026, 11, 10, 8), capacity=20, published_at=datetime(2026, 11, 1))
        s.add(act)
        await s.flush()
        s.add_all([Signup(activity_id=act.id, talent_id=t1.id), Signup(activity_id=act.id, talent_id=t2.id),
                   Attendance(activity_id=act.id, talent_id=t1.id),
                   Satisfaction(activity_id=act.id, talent_id=t1.id, score=5),
                   AuditLog(actor="oAdmin", role="admin", command="/flags", outcome="ok", at=NOW)])
    return a, b, young


def sheet_rows(wb):
    ws = wb.active
    return [list(r) for r in ws.iter_rows(values_only=True)]


async def test_month_board_export(sessions, tmp_path):
    await seed(sessions)
    async with sessions() as s:
        wb, period = await build(s, "month-board", "2026-11", now=NOW)
    rows = sheet_rows(wb)
    assert period == "2026-11" and rows[0][0] == "市级人才之家积分月榜（2026年11月）"
    assert rows[1] == ["排名", "站点编码", "站点名称", "类型", "县市区", "月积分"]
    assert [(r[0], r[1], r[5]) for r in rows[2:]] == [(1, "A1", 2), (2, "B1", 1)]  # N1 not yet eligible
    assert isinstance(rows[2][5], int)
    path = os.path.join(tmp_path, "m.xlsx")
    wb.save(path)
    assert sheet_rows(openpyxl.load_workbook(path))[2][5] == 2


async def test_year_board_shows_stars_and_eligibility(sessions):
    await seed(sessions)
    async with sessions() as s:
        wb, _ = await build(s, "year-board", "2026", now=NOW)
    rows = sheet_rows(wb)
    assert [(r[0], r[1], r[6], r[7], r[8]) for r in rows[2:]] == [(1, "A1", 3, "是", 2), (2, "B1", 3, "是", 1),
                                                                  (None, "N1", 3, "否", None)]


async def test_activities_and_audit_exports(sessions):
    await seed(sessions)
    async with sessions() as s:
        acts = sheet_rows((await build(s, "activities", "2026-11", now=NOW))[0])
        audit = sheet_rows((await build(s, "audit", "2026-11", now=NOW))[0])
    assert acts[2][1:3] == ["A1", "沙龙"] and acts[2][5:11] == [20, 2, 1, 1, 1.0, 0]
    assert audit[2][2:6] == ["oAdmin", "admin", "/flags", "ok"]


async def test_bad_export_requests(sessions):
    async with sessions() as s:
        with pytest.raises(ExportError):
            await build(s, "galaxy", None, now=NOW)
        with pytest.raises(ExportError):
            await build(s, "month-board", "2026", now=NOW)
        with pytest.raises(ExportError, match="no rating"):
            await build(s, "rating", "2026", now=NOW)


async def test_export_command(sqlite_url, tmp_path):
    out = os.path.join(tmp_path, "board.xlsx")
    ok = await run_cli("export", "month-board", "--period", "2026-11", "-o", out, env={"DATABASE_URL": sqlite_url})
    assert ok.returncode == 0 and ok.stdout.strip() == out
    assert sheet_rows(openpyxl.load_workbook(out))[1][0] == "排名"
    bad = await run_cli("export", "month-board", "--period", "11/2026", env={"DATABASE_URL": sqlite_url})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "2026-11" in bad.stderr
    bad = await run_cli("export", "nope", env={"DATABASE_URL": sqlite_url})
    assert bad.returncode == 2 and "one of" in bad.stderr


async def test_activity_window_is_local_month(sessions):
    await seed(sessions)
    async with transaction(sessions) as s:
        # 2026-11-30 23:30 local = 2026-11-30 15:30 UTC: November; 2026-12-01 00:30 local: December
        st = await f.station(s, "C1")
        for start in (datetime(2026, 11, 30, 15, 30), datetime(2026, 11, 30, 16, 30)):
            s.add(Activity(station_id=st.id, title="跨月", starts_at=start, ends_at=start + timedelta(hours=1),
                           published_at=datetime(2026, 11, 1)))
    async with sessions() as s:
        nov = sheet_rows((await build(s, "activities", "2026-11", now=NOW))[0])
        dec = sheet_rows((await build(s, "activities", "2026-12", now=NOW))[0])
    assert [r[1] for r in nov[2:]].count("C1") == 1 and [r[1] for r in dec[2:]] == ["C1"]
