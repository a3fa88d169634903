"""Month close (scoring.calendar.month_close) on both databases, and `talenthome month-close`."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import periods
from scoring.boards import station_board
from scoring.calendar import CloseRefusal, CloseRefused, MonthClosed, featured_months, month_close
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import AuditLog, BoardSnapshot, Entry, MonthClose, Notification, Staff, Station
from scoring.periods import Period
from tests import factories as f
from tests.cli import run_many as cli
from tests.conftest import run_sync

_keys = itertools.count(1)
NOV_CLOSES = periods.to_utc_naive(datetime(2026, 12, 1))  # 00:00 local on 1 December


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return periods.to_utc_naive(datetime(y, mo, d, h, mi))


async def award(s: AsyncSession, st: Station, amount: int, at: datetime) -> None:
    s.add(Entry(key=f"test:{next(_keys)}", station_id=st.id, amount=amount, rule="R3@1", fact_kind="test",
                occurred_at=at))
    await s.flush()


async def operator(s: AsyncSession, st: Station, openid: str) -> None:
    s.add(Staff(openid=openid, role="operator", station_id=st.id))
    await s.flush()


async def notifications(s: AsyncSession, prefix: str = "") -> list[Notification]:
    return list((await s.scalars(select(Notification).where(Notification.key.startswith(prefix))
                                 .order_by(Notification.key))).all())


async def test_close_twice_same_snapshot_feature_and_no_second_report(sessions):
    async with transaction(sessions) as s:
        a, b, c = [await f.station(s, code) for code in ("MA", "MB", "MC")]
        new = await f.station(s, "MNEW", certified_on=date(2026, 3, 1))  # not eligible in 2026
        await award(s, a, 7, local(2026, 11, 3, 10))
        await award(s, a, 3, local(2026, 11, 30, 23, 59))  # last minute of November, local
        await award(s, b, 5, local(2026, 11, 5))
        await award(s, new, 50, local(2026, 11, 5))
        await award(s, b, 99, local(2026, 12, 1, 0, 0))  # December
        await operator(s, a, "op-a1")
        await operator(s, a, "op-a2")
        await operator(s, b, "op-b")
        await operator(s, new, "op-new")
    async with transaction(sessions) as s:
        first = await month_close(s, "2026-11", NOV_CLOSES)
    assert isinstance(first, MonthClosed) and not first.already
    assert [(r.rank, r.code, r.points) for r in first.board] == [(1, "MA", 10), (2, "MB", 5), (3, "MC", 0)]
    assert first.featured_station_id == a.id and first.featured_month == "2026-12"
    assert first.notified == 3

    async with transaction(sessions) as s:
        await award(s, b, 20, local(2026, 11, 10))  # a late entry into the closed month
        second = await month_close(s, "2026-11", NOV_CLOSES)
    assert isinstance(second, MonthClosed) and second.already and second.notified == 0
    assert second.board == first.board and second.featured_station_id == a.id

    async with sessions() as s:
        sent = await notifications(s, "monthclose:")
        assert [n.key for n in sent] == sorted(
            [f"monthclose:{a.id}:2026-11:op-a1", f"monthclose:{a.id}:2026-11:op-a2",
             f"monthclose:{b.id}:2026-11:op-b"])
        report_a = json.loads(sent[0].payload)
        assert "排名第1名" in report_a["text"] and "2026年12月" in report_a["text"]
        report_b = json.loads(next(n.payload for n in sent if n.openid == "op-b"))
        assert "排名第2名" in report_b["text"] and a.name in report_b["text"]
        assert report_b["data"]["featured_month"] == "2026-12"
        snaps = (await s.execute(select(BoardSnapshot.account_id, BoardSnapshot.rank, BoardSnapshot.points)
                                 .where(BoardSnapshot.period == "2026-11").order_by(BoardSnapshot.rank))).all()
        assert snaps == [(a.id, 1, 10), (b.id, 2, 5), (c.id, 3, 0)]
        assert await s.scalar(select(func.count()).select_from(MonthClose)) == 1
        assert await featured_months(s, a.id) == ["2026-12"]


async def test_refuses_a_month_not_ended_and_a_bad_month(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "RX")
        await award(s, st, 4, local(2026, 11, 2))
        early = await month_close(s, "2026-11", local(2026, 11, 30, 23, 59))
        bad = await month_close(s, "2026-13", NOV_CLOSES)
    assert isinstance(early, CloseRefused) and early.reason is CloseRefusal.NOT_ENDED
    assert "2026-12-01 00:00" in early.detail
    assert isinstance(bad, CloseRefused) and bad.reason is CloseRefusal.BAD_PERIOD
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(MonthClose)) == 0
        assert await s.scalar(select(func.count()).select_from(BoardSnapshot)) == 0


async def test_tie_at_the_top_goes_to_who_reached_it_first(sessions):
    async with transaction(sessions) as s:
        early_code_late_score = await f.station(s, "TA")
        late_code_early_score = await f.station(s, "TB")
        await award(s, early_code_late_score, 10, local(2026, 11, 20))
        await award(s, late_code_early_score, 6, local(2026, 11, 2))
        await award(s, late_code_early_score, 4, local(2026, 11, 9))
    async with transaction(sessions) as s:
        result = await month_close(s, "2026-11", local(2026, 12, 3))
    assert isinstance(result, MonthClosed)
    assert [(r.rank, r.code) for r in result.board] == [(1, "TB"), (1, "TA")]
    assert result.featured_station_id == late_code_early_score.id


async def test_no_feature_when_nobody_scored(sessions):
    async with transaction(sessions) as s:
        await f.station(s, "Z1")
        await f.station(s, "Z2")
        empty = await month_close(s, "2026-10", NOV_CLOSES)
        assert isinstance(empty, MonthClosed) and empty.featured_station_id is None
        assert [r.points for r in empty.board] == [0, 0]
    async with sessions() as s:
        row = await s.get(MonthClose, "2026-10")
        assert row is not None and row.featured_station_id is None and row.featured_month == "2026-11"


async def test_report_compares_with_the_previous_month(sessions):
    async with transaction(sessions) as s:
        a = await f.station(s, "PA")
        b = await f.station(s, "PB")
        await operator(s, b, "op-pb")
        await award(s, a, 3, local(2026, 10, 5))
        await award(s, b, 8, local(2026, 10, 6))
        await award(s, a, 9, local(2026, 11, 5))
        await award(s, b, 2, local(2026, 11, 6))
    async with transaction(sessions) as s:
        await month_close(s, "2026-10", NOV_CLOSES)
        await month_close(s, "2026-11", NOV_CLOSES)
    async with sessions() as s:
        nov = json.loads(next(n.payload for n in await notifications(s, f"monthclose:{b.id}:2026-11")))
        assert nov["data"] == {"period": "2026-11", "rank": 2, "points": 2, "previous_rank": 1, "change": -6,
                               "featured": a.name, "featured_month": "2026-12"}
        assert "上月第1名,积分-6" in nov["text"]
        assert await featured_months(s, b.id) == ["2026-11"]
        assert await featured_months(s, a.id) == ["2026-12"]


async def test_a_delisted_station_is_not_on_the_snapshot(sessions):
    async with transaction(sessions) as s:
        gone = await f.station(s, "DL", status="delisted")
        await award(s, gone, 30, local(2026, 11, 5))
        kept = await f.station(s, "DK")
        await award(s, kept, 1, local(2026, 11, 5))
        result = await month_close(s, "2026-11", NOV_CLOSES)
        assert isinstance(result, MonthClosed)
        assert [r.code for r in result.board] == ["DK"] and result.featured_station_id == kept.id
        assert [r.code for r in await station_board(s, Period("month", "2026-11"))] == ["DK"]


# -- the command ---------------------------------------------------------------------------------------------


def test_month_close_command(sqlite_url):
    async def setup() -> None:
        engine = make_engine(sqlite_url)
        async with transaction(make_sessionmaker(engine)) as s:
            a = await f.station(s, "CA", name="鲤城人才之家")
            await f.station(s, "CB")
            await award(s, a, 5, local(2024, 5, 10))
        await engine.dispose()

    run_sync(setup())
    done, bad = cli(sqlite_url, ["month-close", "2024-05"], ["month-close", "2024-13"])
    assert done.returncode == 0, done.stderr
    assert "featured in 2024-06: CA 鲤城人才之家" in done.stdout
    assert bad.returncode == 2
    assert bad.stderr.strip() == "talenthome: error: month must look like 2026-11, got '2024-13'"


def test_month_close_command_in_process(sqlite_url, monkeypatch, capsys):
    """The other outcomes of `month-close`, through talenthome.cli.main."""
    from talenthome.cli import main

    async def setup() -> None:
        engine = make_engine(sqlite_url)
        async with transaction(make_sessionmaker(engine)) as s:
            await award(s, await f.station(s, "CA"), 5, local(2024, 5, 10))
        await engine.dispose()

    run_sync(setup())
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("LOGNAME", "ops")
    assert main(["month-close", "2024-05"]) == 0
    assert "closed; 0 reports queued" in capsys.readouterr().out
    assert main(["month-close", "2024-05"]) == 0
    assert "already closed; nothing changed" in capsys.readouterr().out
    assert main(["month-close", "2999-01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("talenthome: error: 2999-01 has not ended") and err.count("\n") == 1
    assert main(["month-close", "2024-06", "--actor", "cli:night-shift"]) == 0
    # audited like the bot's 月结: one admin row per command, actor cli:<user>, refusals too
    rows = run_sync(_audit_rows(sqlite_url))
    assert [r[:3] for r in rows] == [("cli:ops", "admin", "month-close 2024-05")] * 2 + [
        ("cli:ops", "admin", "month-close 2999-01"), ("cli:night-shift", "admin", "month-close 2024-06")]
    assert [r[3].split(";")[0] for r in rows] == ["closed", "already closed", rows[2][3], "closed"]
    assert "featured in 2024-06: CA" in rows[0][3] and rows[2][3].startswith("refused: 2999-01 has not ended")


async def _audit_rows(url: str) -> list[tuple[str, str, str, str]]:
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as s:
        rows = (await s.execute(select(AuditLog.actor, AuditLog.role, AuditLog.command, AuditLog.outcome)
                                .order_by(AuditLog.id))).all()
    await engine.dispose()
    return [tuple(r) for r in rows]
