"""The data commands: imports, `staff add`, `show ...` and `board` (SPEC 5 JSON shapes and figures),
one-line errors with exit status 2.

The real `talenthome` console script runs as a subprocess with DATABASE_URL set, for the contracts a
tool relies on (exit codes, stderr, JSON on stdout), on SQLite and PostgreSQL. Each process start costs
about half a second or more, so independent commands run concurrently, and the many small variations
(every error, every field) also run in-process through `talenthome.cli.main`, the function the script
calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scoring.clock import utcnow
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts import activity, media, visit
from scoring.facts import redemption as redemption_fact
from scoring.facts.common import Applied
from scoring.models import (
    Activity,
    Attendance,
    DeadLetter,
    Gift,
    MediaReport,
    MonthClose,
    PublicityReport,
    Redemption,
    Signup,
    Staff,
    Station,
)
from scoring.periods import Period, to_local
from talenthome.cli import main
from tests import factories as f
from tests.conftest import run_sync

TALENTHOME = os.path.join(os.path.dirname(sys.executable), "talenthome")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        assert self.code == 0, (self.code, self.err)
        return json.loads(self.out)

    def one_line_error(self, *parts: str, code: int = 2) -> str:
        """Exit `code` (2: bad input, 4: a service is unusable) and exactly one line on stderr (no traceback)
        holding each of `parts`."""
        assert self.code == code, (self.code, self.out, self.err)
        lines = self.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("talenthome: error: "), self.err
        for part in parts:
            assert part in lines[0], (part, lines[0])
        return lines[0]


def scripts(url: str, cwd: Path, *commands: Sequence[str]) -> list[Run]:
    """Run the console script once per command, all at the same time, with DATABASE_URL = url."""
    env = {**os.environ, "DATABASE_URL": url}
    procs = [subprocess.Popen([TALENTHOME, *c], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for c in commands]
    runs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        runs.append(Run(proc.returncode, out.decode(), err.decode()))
    return runs


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """In-process `talenthome ARGS...` against a database URL: cli(url, *args) -> Run."""
    monkeypatch.chdir(tmp_path)

    def run(url: str, *argv: str) -> Run:
        monkeypatch.setenv("DATABASE_URL", url)
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as done:  # argparse: --help, usage errors
            code = int(done.code or 0)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def width(text: str) -> int:
    """Display width in a terminal: Chinese characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def write_csv(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


async def station_codes(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            return sorted((await s.scalars(select(Station.code))).all())
    finally:
        await engine.dispose()


# -- imports ---------------------------------------------------------------------------------------
def test_imports_through_the_script(sqlite_url, tmp_path, cli):
    stations = write_csv(tmp_path / "stations.csv", [
        "code,name,kind,type,county,certified_on",
        "S1,鲤城区人才之家,home,comprehensive,鲤城区,2020-05-01",
        "S2,丰泽区人才社区,community,service,丰泽区,2026-06-01"])
    talents = write_csv(tmp_path / "talents.csv", [
        "cert_no,name,phone,category,county", "QZ1,张三,13800000000,A,鲤城区"])
    bad = write_csv(tmp_path / "bad.csv", [
        "code,name,kind,type,county,certified_on",
        "S3,洛江区人才之家,home,comprehensive,洛江区,2020-05-01",
        "S4,泉港区人才之家,home,comprehensive,泉港区,2020-13-01"])

    first = scripts(sqlite_url, tmp_path, ["import-stations", stations], ["import-talents", talents],
                    ["import-stations", bad])
    assert first[0].code == 0 and "新增 2，更新 0，未变 0" in first[0].out, first[0]
    assert first[1].code == 0 and "新增 1，更新 0，未变 0" in first[1].out, first[1]
    first[2].one_line_error("bad.csv: line 3, field certified_on", "nothing was imported")

    again = [cli(sqlite_url, "import-stations", stations), cli(sqlite_url, "import-talents", talents)]
    assert "新增 0，更新 0，未变 2" in again[0].out and "新增 0，更新 0，未变 1" in again[1].out, again
    assert run_sync(station_codes(sqlite_url)) == ["S1", "S2"]  # nothing of bad.csv


def test_import_errors_in_process(sqlite_url, tmp_path, cli):
    cli(sqlite_url, "import-talents", str(tmp_path / "missing.csv")).one_line_error("missing.csv: no such file")
    dup = write_csv(tmp_path / "dup.csv", ["cert_no,name,phone,category,county", "QZ1,张三,,,", "QZ1,张三,,,"])
    cli(sqlite_url, "import-talents", dup).one_line_error("line 3, field cert_no: duplicate cert_no 'QZ1'")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    cli(sqlite_url, "import-stations", str(tmp_path / "old.xls")).one_line_error(".xls workbooks are not supported")
    wrong = write_csv(tmp_path / "talents-as-stations.csv", ["cert_no,name,phone,category,county", "QZ1,张三,,,"])
    cli(sqlite_url, "import-stations", wrong).one_line_error("line 1, field code: the header lacks column(s)")
    assert run_sync(station_codes(sqlite_url)) == []


# -- staff -----------------------------------------------------------------------------------------
async def seed_station(url: str, code: str) -> None:
    engine = make_engine(url)
    try:
        async with transaction(make_sessionmaker(engine)) as s:
            await f.station(s, code)
    finally:
        await engine.dispose()


async def staff_rows(url: str) -> dict[str, tuple[str, str | None, bool]]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            rows = (await s.execute(select(Staff.openid, Staff.role, Station.code, Staff.active)
                                    .outerjoin(Station, Station.id == Staff.station_id))).all()
    finally:
        await engine.dispose()
    return {openid: (role, code, active) for openid, role, code, active in rows}


def test_staff_add(sqlite_url, tmp_path, cli):
    run_sync(seed_station(sqlite_url, "S1"))
    run_sync(seed_station(sqlite_url, "S2"))
    [added] = scripts(sqlite_url, tmp_path, ["staff", "add", "o-op", "--role", "operator", "--station", "S1"])
    assert added.code == 0 and "已添加运营人员 o-op" in added.out, added
    cli(sqlite_url, "staff", "add", "o-x", "--role", "boss").one_line_error("bad role 'boss'", "operator", "admin")

    assert cli(sqlite_url, "staff", "add", "o-admin", "--role", "admin").code == 0
    cli(sqlite_url, "staff", "add", "o-x", "--role", "operator", "--station", "NOPE").one_line_error(
        "unknown station 'NOPE'")
    cli(sqlite_url, "staff", "add", "o-x", "--role", "admin", "--station", "S1").one_line_error(
        "an admin belongs to no station")
    cli(sqlite_url, "staff", "add", "o-x", "--role", "operator").one_line_error("an operator needs --station CODE")
    cli(sqlite_url, "staff", "add", "o x", "--role", "admin").one_line_error("bad openid")
    moved = cli(sqlite_url, "staff", "add", "o-op", "--role", "operator", "--station", "S2")
    assert moved.code == 0 and "已更新" in moved.out, moved
    assert run_sync(staff_rows(sqlite_url)) == {"o-op": ("operator", "S2", True), "o-admin": ("admin", None, True)}
    assert cli(sqlite_url, "staff", "add", "o-op", "--role", "ADMIN").code == 0  # operator -> admin
    assert run_sync(staff_rows(sqlite_url))["o-op"] == ("admin", None, True)


# -- show and board: figures -------------------------------------------------------------------------
@dataclass
class Seeded:
    activity_id: int
    starts_at: datetime
    ends_at: datetime
    published_at: datetime


async def seed(url: str) -> Seeded:
    """Stations SA (12 this month and year, 13 in all; featured twice), SC and SD (2 each; SD reached 2
    first), SN (certified this year: not eligible) and SX (delisted); talents QZT1 (bound; earned 6, 5 of
    them this month; spent 2) and QZT2 (3). Current-period facts are on day 1 of the current local month,
    so the figures hold whenever the test runs."""
    month_start, _ = Period.parse("month", now=utcnow()).bounds()
    assert month_start is not None
    t0 = month_start + timedelta(minutes=1)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        async with transaction(sessions) as s:
            sa = await f.station(s, "SA", name="鲤城区人才之家")
            sc = await f.station(s, "SC")
            sd = await f.station(s, "SD")
            sn = await f.station(s, "SN", certified_on=to_local(t0).date())
            sx = await f.station(s, "SX", status="delisted")
            t1 = await f.talent(s, "QZT1", openid="o-talent-1", name="张三")
            t2 = await f.talent(s, "QZT2", name="李四")
            hour = timedelta(hours=1)
            visits = [await f.visit(s, t1, sa, t0 + hour), await f.visit(s, t2, sa, t0 + 2 * hour),
                      await f.visit(s, t1, sa, datetime(2021, 6, 1, 2, 0)),
                      await f.visit(s, t1, sc, t0 + 4 * hour), await f.visit(s, t2, sc, t0 + 5 * hour),
                      await f.visit(s, t1, sd, t0 + hour), await f.visit(s, t2, sd, t0 + 2 * hour),
                      await f.visit(s, t1, sn, t0 + hour), await f.visit(s, t1, sx, t0 + hour)]
            act = Activity(station_id=sa.id, title="人才沙龙", starts_at=t0 + 3 * hour, ends_at=t0 + 5 * hour,
                           capacity=30, published_at=t0 - timedelta(days=3))
            gift = Gift(name="保温杯", cost=2, stock=5)
            s.add_all([act, gift])
            await s.flush()
            redemption = Redemption(gift_id=gift.id, talent_id=t1.id)
            s.add_all([
                redemption,
                Signup(activity_id=act.id, talent_id=t1.id),
                Signup(activity_id=act.id, talent_id=t2.id, cancelled_at=t0),
                Attendance(activity_id=act.id, talent_id=t1.id),
                PublicityReport(activity_id=act.id, url="https://example.org/report"),
                MediaReport(activity_id=act.id, level="municipal"),
                MonthClose(period="2026-09", featured_station_id=sa.id, featured_month="2026-10"),
                MonthClose(period="2026-07", featured_station_id=sa.id, featured_month="2026-08"),
                MonthClose(period="2026-08", featured_station_id=sc.id, featured_month="2026-09"),
                DeadLetter(task="visit", fact_id=visits[0].id, reason="boom"),
                DeadLetter(task="visit", fact_id=visits[1].id, reason="old", resolved_at=t0)])
        async with transaction(sessions) as s:
            assert await visit.credit(s, [v.id for v in visits]) == len(visits)
            assert isinstance(await activity.apply(s, act.id, now=act.ends_at), Applied)  # R1 +5
            assert isinstance(await media.apply(s, act.id, now=t0 + 6 * hour), Applied)  # R2 municipal +5
            assert isinstance(await redemption_fact.apply(s, redemption.id, now=t0 + 7 * hour), Applied)  # G -2
        return Seeded(act.id, act.starts_at, act.ends_at, act.published_at)
    finally:
        await engine.dispose()


NOT_RANKED = {"total": None, "year": None, "month": None}
SA = {"code": "SA", "name": "鲤城区人才之家", "kind": "home", "type": "comprehensive", "county": "鲤城区",
      "certified_on": "2020-05-01", "eligible_from": "2021-01-01", "stars": 3, "status": "active",
      "eligible": True, "featured_months": ["2026-08", "2026-10"],
      "points": {"total": 13, "year": 12, "month": 12}, "rank": {"total": 1, "year": 1, "month": 1}}
QZT1 = {"cert_no": "QZT1", "name": "张三", "category": "", "county": "", "bound": True,
        "points": {"total": 6, "year": 5, "month": 5, "balance": 4}}
# Competition ranking; SD reached 2 points before SC, so it is shown first. SN and SX are not ranked.
TOTAL_BOARD = [{"rank": 1, "code": "SA", "name": "鲤城区人才之家", "points": 13},
               {"rank": 2, "code": "SD", "name": "站点SD", "points": 2},
               {"rank": 2, "code": "SC", "name": "站点SC", "points": 2}]


def activity_json(seeded: Seeded) -> dict[str, Any]:
    return {"id": seeded.activity_id, "station": "SA", "title": "人才沙龙", "status": "published",
            "starts_at": to_local(seeded.starts_at).isoformat(), "ends_at": to_local(seeded.ends_at).isoformat(),
            "published_at": to_local(seeded.published_at).isoformat(),
            "capacity": 30, "signups": 1, "attendees": 1, "points": 10}


def check_script_figures(url: str, cwd: Path, cli: Any) -> None:
    """The SPEC 5 JSON contracts: station, talent and board through the real script, the rest in-process."""
    seeded = run_sync(seed(url))
    commands = [["show", "station", "SA", "--json"], ["show", "talent", "QZT1", "--json"],
                ["board", "total", "--json"], ["show", "activity", str(seeded.activity_id), "--json"],
                ["board", "month", "--json"]]
    station, talent, total, activity, month = [*scripts(url, cwd, *commands[:3]), *(cli(url, *c) for c in commands[3:])]
    assert station.json == SA
    assert talent.json == QZT1
    assert total.json == TOTAL_BOARD
    assert activity.json == activity_json(seeded)
    assert activity.json["starts_at"].endswith("+08:00")
    assert [(r["rank"], r["code"], r["points"]) for r in month.json] == [(1, "SA", 12), (2, "SD", 2), (2, "SC", 2)]


def check_more_figures(url: str, cli: Any) -> None:
    """The remaining shapes and figures, in-process."""
    sd = cli(url, "show", "station", "SD", "--json").json
    assert (sd["points"], sd["rank"], sd["featured_months"]) == (
        {"total": 2, "year": 2, "month": 2}, {"total": 2, "year": 2, "month": 2}, [])
    sn = cli(url, "show", "station", "SN", "--json").json
    assert (sn["eligible"], sn["points"], sn["rank"]) == (False, {"total": 1, "year": 1, "month": 1}, NOT_RANKED)
    sx = cli(url, "show", "station", "SX", "--json").json
    assert (sx["eligible"], sx["status"], sx["points"]["total"], sx["rank"]) == (False, "delisted", 1, NOT_RANKED)
    year = cli(url, "board", "year", "--json").json
    assert [(r["rank"], r["code"], r["points"]) for r in year] == [(1, "SA", 12), (2, "SD", 2), (2, "SC", 2)]
    assert cli(url, "board", "total", "--limit", "1", "--json").json == TOTAL_BOARD[:1]
    assert cli(url, "board", "year", "--scope", "talent", "--limit", "1", "--json").json == [
        {"rank": 1, "code": "QZT1", "name": "张三", "points": 5}]
    talents = cli(url, "board", "total", "--scope", "talent", "--json").json
    assert [(r["rank"], r["code"], r["points"]) for r in talents] == [(1, "QZT1", 6), (2, "QZT2", 3)]
    assert cli(url, "board", "month", "--period", "2021-06", "--json").json[0] == {
        "rank": 1, "code": "SA", "name": "鲤城区人才之家", "points": 1}
    assert cli(url, "show", "talent", "QZT2", "--json").json["points"] == {
        "total": 3, "year": 3, "month": 3, "balance": 3}
    dead = cli(url, "show", "dead", "--json").json
    assert [(d["task"], d["reason"], d["attempts"]) for d in dead] == [("visit", "boom", 1)]


def test_show_and_board_on_sqlite(sqlite_url, tmp_path, cli):
    check_script_figures(sqlite_url, tmp_path, cli)
    check_more_figures(sqlite_url, cli)


def test_show_and_board_on_postgresql(pg_url, tmp_path, cli):
    check_script_figures(pg_url, tmp_path, cli)
    check_more_figures(pg_url, cli)


# -- errors and text output ------------------------------------------------------------------------
def test_bad_input_is_one_clear_line(sqlite_url, tmp_path, cli):
    seeded = run_sync(seed(sqlite_url))
    not_migrated, helped = scripts(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", tmp_path,
                                   ["show", "talent", "QZT1"], ["show", "activity", "--help"])
    not_migrated.one_line_error("database error", "talenthome migrate", code=4)
    assert helped.code == 0 and helped.out.startswith("usage: talenthome show activity"), helped

    url = sqlite_url
    cli(url, "show", "station", "NOPE", "--json").one_line_error("unknown station 'NOPE'")
    cli(url, "show", "talent", "NOPE", "--json").one_line_error("unknown talent 'NOPE'")
    cli(url, "show", "activity", str(seeded.activity_id + 1000)).one_line_error(
        f"unknown activity {seeded.activity_id + 1000}")
    cli(url, "show", "activity", "abc").one_line_error("bad activity id 'abc'")
    cli(url, "board", "month", "--scope", "talent").one_line_error("talent boards are total and year only")
    cli(url, "board", "year", "--period", "2026-11").one_line_error("bad --period", "2026-11")
    cli(url, "board", "month", "--period", "26-11").one_line_error("bad --period", "26-11")
    cli(url, "board", "month", "--period", "2026-13").one_line_error("bad --period", "2026-13")
    cli(url, "board", "year", "--period", "9999").one_line_error("bad --period")
    cli(url, "board", "total", "--period", "2026").one_line_error("the total board takes no --period")
    cli(url, "board", "weekly").one_line_error("unknown board 'weekly'")
    cli(url, "board", "total", "--scope", "county").one_line_error("bad --scope 'county'")
    cli(url, "board", "total", "--limit", "0").one_line_error("bad --limit '0'")


def test_text_output_reads(sqlite_url, cli):
    seeded = run_sync(seed(sqlite_url))
    board = cli(sqlite_url, "board", "total").out.splitlines()
    assert board[0] == "站点总榜" and len(board) == 6, board
    assert board[1].split() == ["名次", "站点编号", "站点名称", "积分"]
    assert [line.split() for line in board[3:]] == [["1", "SA", "鲤城区人才之家", "13"], ["2", "SD", "站点SD", "2"],
                                                   ["2", "SC", "站点SC", "2"]]
    # Columns line up with double-width Chinese text: each line's points start where "积分" does.
    assert len({width(line[:line.rindex(" ") + 1]) for line in [board[1], *board[3:]]}) == 1, board
    station = cli(sqlite_url, "show", "station", "SA").out
    assert "星级：3" in station and "第 1 名" in station and "2026-08、2026-10" in station
    assert "未排名" in cli(sqlite_url, "show", "station", "SN").out
    assert "可用余额 4" in cli(sqlite_url, "show", "talent", "QZT1").out
    assert "报名：1" in cli(sqlite_url, "show", "activity", str(seeded.activity_id)).out
    assert "boom" in cli(sqlite_url, "show", "dead").out
    assert cli(sqlite_url, "board", "year", "--scope", "talent").out.splitlines()[1].split() == [
        "名次", "证书编号", "姓名", "积分"]


@pytest.mark.parametrize("argv", [
    ["import-stations"], ["import-talents"], ["staff"], ["staff", "add"], ["show"], ["show", "station"],
    ["show", "talent"], ["show", "activity"], ["show", "dead"], ["board"],
])
def test_every_command_has_help(argv, cli, sqlite_url):
    run = cli(sqlite_url, *argv, "--help")
    assert run.code == 0 and run.out.startswith("usage: talenthome " + " ".join(argv)), run
