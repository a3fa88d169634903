"""`talenthome gift ...` and `talenthome import-gifts` (in-process through talenthome.cli.main, plus the real
script once): changes with audit rows as cli:<user>, one-line errors that change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import AuditLog, Gift
from talenthome.cli import main
from tests import factories as f
from tests.conftest import run_sync
from tests.test_cli_data import Run, scripts


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("USER", "ops")
    monkeypatch.setenv("LOGNAME", "ops")

    def run(url: str, *argv: str) -> Run:
        monkeypatch.setenv("DATABASE_URL", url)
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as done:
            code = int(done.code or 0)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


async def _query(url: str, stmt) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            return [tuple(r) for r in (await s.execute(stmt)).all()]
    finally:
        await engine.dispose()


def gifts_in(url: str) -> list[tuple[object, ...]]:
    return run_sync(_query(url, select(Gift.id, Gift.name, Gift.cost, Gift.stock, Gift.station_id, Gift.active,
                                       Gift.description).order_by(Gift.id)))


def audit_in(url: str) -> list[tuple[object, ...]]:
    return run_sync(_query(url, select(AuditLog.actor, AuditLog.role, AuditLog.command).order_by(AuditLog.id)))


async def _station(url: str, code: str, name: str) -> int:
    engine = make_engine(url)
    try:
        async with transaction(make_sessionmaker(engine)) as s:
            return (await f.station(s, code, name=name)).id
    finally:
        await engine.dispose()


def station(url: str, code: str = "ST1", name: str = "鲤城人才之家") -> int:
    return run_sync(_station(url, code, name))


def test_add_edit_restock_retire_restore_list(sqlite_url, cli):
    st = station(sqlite_url)
    out = cli(sqlite_url, "gift", "add", "茶叶", "10", "3", "--station", "ST1", "--description", "铁观音")
    assert out.code == 0 and out.out.strip() == "已上架礼品 #1「茶叶」：10 分，库存 3，鲤城人才之家（ST1）", out
    assert cli(sqlite_url, "gift", "add", "书", "30", "0").out.strip() == "已上架礼品 #2「书」：30 分，库存 0，全市通用"
    edited = cli(sqlite_url, "gift", "edit", "#1", "--cost", "12", "--station", "city")
    assert edited.code == 0 and edited.out.strip() == \
        "已修改礼品 #1「茶叶」：积分 10 → 12，站点 鲤城人才之家（ST1） → 全市通用", edited
    assert cli(sqlite_url, "gift", "edit", "1", "--cost", "12").out.strip() == "礼品 #1「茶叶」没有变化"
    assert cli(sqlite_url, "gift", "restock", "1", "5").out.strip() == "礼品 #1「茶叶」已补货 5 件，现有库存 8"
    assert cli(sqlite_url, "gift", "retire", "2").out.strip() == "礼品 #2「书」已下架"
    assert cli(sqlite_url, "gift", "retire", "2").out.strip() == "礼品 #2「书」此前已下架，未做改动"
    assert gifts_in(sqlite_url) == [(1, "茶叶", 12, 8, None, True, "铁观音"), (2, "书", 30, 0, None, False, "")]
    listed = cli(sqlite_url, "gift", "list", "--json").json
    assert [(g["id"], g["station"], g["active"], g["redeemed"]) for g in listed] == [(1, None, True, 0),
                                                                                    (2, None, False, 0)]
    table = cli(sqlite_url, "gift", "list").out.splitlines()
    assert table[0].split() == ["编号", "名称", "积分", "库存", "已兑", "待处理", "站点", "状态"]
    assert table[3].split() == ["2", "书", "30", "0", "0", "0", "全市通用", "已下架"]
    assert cli(sqlite_url, "gift", "restore", "2").out.strip() == "礼品 #2「书」已恢复上架，库存 0"
    assert cli(sqlite_url, "gift", "restore", "2").out.strip() == "礼品 #2「书」正在上架中，未做改动"
    assert cli(sqlite_url, "gift", "edit", "1", "--station", "ST1").code == 0
    assert gifts_in(sqlite_url)[0][4] == st
    trail = audit_in(sqlite_url)
    assert [c for _, _, c in trail] == [
        "gift add 茶叶 10 3 --station ST1", "gift add 书 30 0", "gift edit 1 --cost 12 --station city",
        "gift restock 1 5", "gift retire 2", "gift restore 2", "gift edit 1 --station ST1"]
    assert {(a, r) for a, r, _ in trail} == {("cli:ops", "admin")}


def test_bad_input_is_one_line_and_changes_nothing(sqlite_url, cli):
    station(sqlite_url)
    assert cli(sqlite_url, "gift", "add", "茶叶", "10", "3").code == 0
    assert cli(sqlite_url, "gift", "add", "书", "5", "1").code == 0
    before, trail = gifts_in(sqlite_url), audit_in(sqlite_url)
    cases = [
        (["gift", "add", "伞", "0", "3"], "the cost must be a whole number from 1"),
        (["gift", "add", "伞", "-1", "3"], "the cost must be"),
        (["gift", "add", "伞", "ten", "3"], "bad cost 'ten'"),
        (["gift", "add", "伞", "5", "-2"], "the stock must be from 0"),
        (["gift", "add", "伞", "5", "2", "--station", "NOPE"], "unknown station 'NOPE'"),
        (["gift", "add", "茶叶", "5", "2"], "gift 1 (茶叶) is offered there already"),
        (["gift", "edit", "99", "--cost", "3"], "unknown gift 99"),
        (["gift", "edit", "1", "--cost", "0"], "the cost must be"),
        (["gift", "edit", "1", "--name", "书"], "gift 2 (书) is offered there already"),
        (["gift", "edit", "1"], "nothing to change"),
        (["gift", "edit", "x1", "--cost", "3"], "bad gift id 'x1'"),
        (["gift", "edit", "1", "--station", "NOPE"], "unknown station 'NOPE'"),
        (["gift", "restock", "1", "0"], "a restock adds at least 1"),
        (["gift", "restock", "1", "-5"], "a restock adds at least 1"),
        (["gift", "restock", "99", "5"], "unknown gift 99"),
        (["gift", "retire", "99"], "unknown gift 99"),
        (["gift", "restore", "99"], "unknown gift 99"),
    ]
    for argv, words in cases:
        cli(sqlite_url, *argv).one_line_error(words)
    assert gifts_in(sqlite_url) == before and audit_in(sqlite_url) == trail
    assert cli(sqlite_url, "gift", "retire", "1").code == 0
    cli(sqlite_url, "gift", "restock", "1", "3").one_line_error("gift 1 is retired", "talenthome gift restore 1")
    cli(sqlite_url, "gift", "edit", "1", "--cost", "3").one_line_error("gift 1 is retired")


def write_csv(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_import_gifts(sqlite_url, tmp_path, cli):
    st = station(sqlite_url)
    good = write_csv(tmp_path / "gifts.csv", ["name,cost,stock,station,description", "保温杯,20,5,,不锈钢",
                                              "茶叶,10,3,ST1,铁观音"])
    first = cli(sqlite_url, "import-gifts", good)
    assert first.code == 0 and first.out.strip() == "礼品导入完成：新增 2，更新 0，未变 0（共 2 行）", first
    assert cli(sqlite_url, "gift", "retire", "2").code == 0
    again = cli(sqlite_url, "import-gifts", good)
    assert again.out.strip() == "礼品导入完成：新增 0，更新 0，未变 2（共 2 行）；其中 1 件已下架，仍保持下架"
    assert gifts_in(sqlite_url) == [(1, "保温杯", 20, 5, None, True, "不锈钢"), (2, "茶叶", 10, 3, st, False, "铁观音")]
    bad_row = write_csv(tmp_path / "bad.csv", ["name,cost,stock,station,description", "伞,8,1,,",
                                               "扇子,0,1,,"])
    cli(sqlite_url, "import-gifts", bad_row).one_line_error("bad.csv: line 3, field cost", "nothing was imported")
    bad_station = write_csv(tmp_path / "nope.csv", ["name,cost,stock,station,description", "伞,8,1,,",
                                                    "扇子,2,1,NOPE,"])
    cli(sqlite_url, "import-gifts", bad_station).one_line_error("nope.csv: line 3, field station: unknown station")
    cli(sqlite_url, "import-gifts", str(tmp_path / "missing.csv")).one_line_error("no such file")
    assert len(gifts_in(sqlite_url)) == 2
    assert [c for _, _, c in audit_in(sqlite_url)] == [f"import-gifts {good}", "gift retire 2",
                                                       f"import-gifts {good}"]


def test_gift_commands_through_the_script(pg_url, tmp_path):
    """The real console script on PostgreSQL: exit codes and stdout as a tool sees them."""
    station(pg_url)
    good = write_csv(tmp_path / "gifts.csv", ["name,cost,stock,station,description", "茶叶,10,3,ST1,"])
    [imported] = scripts(pg_url, tmp_path, ["import-gifts", good])
    assert imported.code == 0 and "新增 1" in imported.out, imported
    runs = scripts(pg_url, tmp_path, ["gift", "list", "--json"], ["gift", "restock", "9", "1"],
                   ["export", "gifts", "-o", str(tmp_path / "g.xlsx")])
    assert [g["name"] for g in json.loads(runs[0].out)] == ["茶叶"]
    runs[1].one_line_error("unknown gift 9")
    assert runs[2].code == 0 and runs[2].out.strip() == str(tmp_path / "g.xlsx"), runs[2]


@pytest.mark.parametrize("argv", [["gift"], ["gift", "add"], ["gift", "edit"], ["gift", "restock"],
                                  ["gift", "retire"], ["gift", "restore"], ["gift", "list"], ["import-gifts"]])
def test_every_gift_command_has_help(argv, cli, sqlite_url):
    run = cli(sqlite_url, *argv, "--help")
    assert run.code == 0 and run.out.startswith("usage: talenthome " + " ".join(argv)), run
