"""The ledger's promises (scoring/ledger.py docstring), each on SQLite and PostgreSQL. What each rule posts
is tested in test_rules.py."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import ledger
from scoring.boards import station_board, station_points, talent_points
from scoring.db import transaction
from scoring.facts import visit
from scoring.facts.common import Applied, Refusal, Refused
from scoring.ledger import Draft, LedgerConflict
from scoring.models import Entry, Visit
from scoring.periods import Period
from scoring.rules import RULES
from tests import factories as f
from tests.scoring import builders as b

NOV = datetime(2026, 11, 2, 3, 0)  # 11:00 local


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    return await b.clean_db_url(request, tmp_path)


async def count_entries(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count(Entry.id))) or 0)


async def station_total(sessions: async_sessionmaker[AsyncSession], station_id: int) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.coalesce(func.sum(Entry.amount), 0))
                                  .where(Entry.station_id == station_id)) or 0)


async def setup_visit(sessions, at: datetime = NOV):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        v = await f.visit(s, t, st, at)
    return st, t, v


# -- idempotency ------------------------------------------------------------------------------------
async def apply(sessions, visit_id: int) -> Applied:
    async with transaction(sessions) as s:
        out = await visit.apply(s, visit_id)
    assert isinstance(out, Applied)
    return out


async def test_reapplying_a_fact_says_already_applied_and_writes_nothing(sessions):
    st, t, v = await setup_visit(sessions)
    first = await apply(sessions, v.id)
    for _ in range(3):
        again = await apply(sessions, v.id)
        assert again.already and again.written == 0 and [e.id for e in again.entries] == [e.id for e in first.entries]
    assert first.written == 2 and not first.already
    assert {(e.station_id, e.talent_id, e.amount) for e in first.entries} == {(st.id, None, 1), (None, t.id, 1)}
    assert await count_entries(sessions) == 2
    # The same drafts posted directly are "already applied" too.
    async with transaction(sessions) as s:
        row = await s.get(Visit, v.id)
        assert row is not None and row.applied_at is not None
        direct = await ledger.post(s, visit.drafts(row))
    assert direct.already and direct.written == []
    assert await count_entries(sessions) == 2


async def test_keys_are_derived_from_the_fact(sessions):
    st, t, v = await setup_visit(sessions)
    posted = await apply(sessions, v.id)
    day = v.local_day.isoformat()
    assert sorted(e.key for e in posted.entries) == [
        f"visit:{t.id}:{st.id}:{day}#station", f"visit:{t.id}:{st.id}:{day}#talent"]
    assert {(e.fact_kind, e.fact_id) for e in posted.entries} == {("visit", v.id)}


async def test_second_visit_same_local_day_earns_nothing(sessions):
    """One R3 credit per (talent, station, local day), even if a second accepted scan slipped through."""
    st, t, v = await setup_visit(sessions, datetime(2026, 11, 2, 1, 0))  # 09:00 local
    async with transaction(sessions) as s:
        # 23:30 local the same day, recorded without the bot's de-duplication key.
        v2 = Visit(openid="o", talent_id=t.id, station_id=st.id, source="operator",
                   scanned_at=datetime(2026, 11, 2, 15, 30), local_day=v.local_day, status="accepted")
        s.add(v2)
        await s.flush()
        next_day = await f.visit(s, t, st, datetime(2026, 11, 2, 16, 30))  # 00:30 local, 3 November
    assert (await apply(sessions, v.id)).written == 2
    dup = await apply(sessions, v2.id)
    nxt = await apply(sessions, next_day.id)
    assert dup.already and dup.entries == []  # the day's credit is the first visit's
    assert nxt.written == 2
    assert await station_total(sessions, st.id) == 2


async def test_rejected_or_missing_visit_is_refused(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        v = Visit(openid="o", talent_id=t.id, station_id=st.id, source="station", scanned_at=NOV,
                  local_day=NOV.date(), status="rejected", reason="expired_code")
        s.add(v)
        await s.flush()
    async with transaction(sessions) as s:
        assert await visit.apply(s, v.id) == Refused(Refusal.NOT_ACCEPTED)
        assert await visit.apply(s, v.id + 1000) == Refused(Refusal.NOT_FOUND)
    assert await count_entries(sessions) == 0


# -- conflicts and atomicity ------------------------------------------------------------------------
async def test_same_key_other_amount_raises_and_the_whole_post_rolls_back(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
        await ledger.post(s, [Draft(key="k:1", amount=1, rule="R3@1", fact_kind="test", fact_id=1,
                                    occurred_at=NOV, station_id=st.id)])
    bad = [
        Draft(key="k:2", amount=1, rule="R3@1", fact_kind="test", fact_id=2, occurred_at=NOV, station_id=st.id),
        Draft(key="k:1", amount=2, rule="R3@1", fact_kind="test", fact_id=1, occurred_at=NOV, station_id=st.id),
    ]
    with pytest.raises(LedgerConflict):
        async with transaction(sessions) as s:
            await ledger.post(s, bad)
    # Other account, same amount: also a conflict.
    with pytest.raises(LedgerConflict):
        async with transaction(sessions) as s:
            await ledger.post(s, [Draft(key="k:1", amount=1, rule="R3@1", fact_kind="test", fact_id=1,
                                        occurred_at=NOV, talent_id=t.id)])
    async with sessions() as s:
        rows = (await s.execute(select(Entry.key, Entry.amount, Entry.station_id))).all()
    assert [tuple(r) for r in rows] == [("k:1", 1, st.id)]


async def test_conflict_writes_nothing_even_when_the_caller_goes_on_and_commits(sessions):
    """post() undoes its own partial insert: a caller that catches LedgerConflict cannot commit half a fact."""
    st, t, v = await setup_visit(sessions)
    talent_key = f"visit:{visit.credit_key(t.id, st.id, v.local_day)}#talent"
    async with transaction(sessions) as s:
        await ledger.post(s, [Draft(key=talent_key, amount=7, rule="R3@1", fact_kind="visit", fact_id=v.id,
                                    occurred_at=NOV, talent_id=t.id)])
    async with transaction(sessions) as s:
        with pytest.raises(LedgerConflict):
            await visit.apply(s, v.id)
        # the session is still usable and its commit carries no leg of the visit
    async with sessions() as s:
        entries = (await s.scalars(select(Entry))).all()
        row = await s.get(Visit, v.id)
    assert [(e.key, e.amount) for e in entries] == [(talent_key, 7)]
    assert row is not None and row.applied_at is None


async def test_visit_legs_are_written_in_one_transaction(sessions):
    _st, _t, v = await setup_visit(sessions)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with transaction(sessions) as s:
            crashed = await visit.apply(s, v.id)
            assert isinstance(crashed, Applied) and crashed.written == 2
            raise Crash
    assert await count_entries(sessions) == 0
    posted = await apply(sessions, v.id)
    assert posted.written == 2
    assert len({e.recorded_at for e in posted.entries}) == 1
    assert {e.occurred_at for e in posted.entries} == {v.scanned_at}


async def test_an_entry_has_exactly_one_account(sessions):
    for accounts in ({}, {"station_id": None, "talent_id": None}):
        with pytest.raises(IntegrityError):
            async with transaction(sessions) as s:
                await ledger.post(s, [Draft(key="k", amount=1, rule="R3@1", fact_kind="test", fact_id=1,
                                            occurred_at=NOV, **accounts)])
    async with transaction(sessions) as s:
        st = await f.station(s)
        t = await f.talent(s)
    with pytest.raises(IntegrityError):
        async with transaction(sessions) as s:
            await ledger.post(s, [Draft(key="k", amount=1, rule="R3@1", fact_kind="test", fact_id=1,
                                        occurred_at=NOV, station_id=st.id, talent_id=t.id)])
    assert await count_entries(sessions) == 0


async def test_entries_carry_business_time_and_recording_time(sessions):
    _st, _t, v = await setup_visit(sessions)
    with time_machine.travel(datetime(2026, 11, 5, 12, 0), tick=False):
        posted = await apply(sessions, v.id)
    for e in posted.entries:
        assert e.occurred_at == v.scanned_at == NOV
        assert e.recorded_at == datetime(2026, 11, 5, 12, 0)
        assert isinstance(e.amount, int)


# -- voids ------------------------------------------------------------------------------------------
async def test_void_writes_reversals_pointing_at_originals_and_a_second_void_changes_nothing(sessions):
    st, t, v = await setup_visit(sessions)
    originals = {e.id: e for e in (await apply(sessions, v.id)).entries}
    async with transaction(sessions) as s:
        ids = await ledger.originals(s, "visit", [v.id])
        voided = await ledger.reverse(s, ids, actor="admin-7", reason="代打卡")
        reversals = await ledger.reversals_of(s, ids)
    assert sorted(ids) == sorted(originals)
    assert len(voided.written) == 2 and sorted(voided.written) == sorted(e.key for e in reversals)
    for rev in reversals:
        orig = originals[rev.reverses_id]  # type: ignore[index]
        assert rev.amount == -orig.amount
        assert (rev.station_id, rev.talent_id) == (orig.station_id, orig.talent_id)
        assert (rev.fact_kind, rev.fact_id) == (orig.fact_kind, orig.fact_id)
        assert rev.actor == "admin-7" and rev.reason == "代打卡"
        assert rev.rule == RULES["V"].tag == "V@1"
        assert rev.key == f"void:{orig.id}"
    n = await count_entries(sessions)
    async with transaction(sessions) as s:
        again = await ledger.reverse(s, ids, actor="admin-8", reason="again")
        # a reversal is never reversed
        rev_of_rev = await ledger.reverse(s, [e.id for e in reversals], actor="admin-8", reason="undo")
    assert again.already and rev_of_rev.already
    assert await count_entries(sessions) == n == 4
    assert await station_total(sessions, st.id) == 0
    async with sessions() as s:
        assert (await talent_points(s, t.id, now=NOV))["balance"] == 0
        # the originals are untouched: a void is a new entry, not an edit
        for e in (await s.scalars(select(Entry).where(Entry.id.in_(ids)))).all():
            assert e.amount == 1 and e.actor is None
    # Reapplying the voided fact does not bring its points back.
    assert (await apply(sessions, v.id)).already
    assert await station_total(sessions, st.id) == 0


async def test_reversal_keeps_the_original_period(sessions):
    st, _t, v = await setup_visit(sessions, b.local(2026, 11, 30, 23, 30))
    await apply(sessions, v.id)
    with time_machine.travel(datetime(2026, 12, 5, 2, 0), tick=False):
        async with transaction(sessions) as s:
            voided = await b.reversed_now(s, await ledger.originals(s, "visit", [v.id]), reason="fraud")
    assert len(voided) == 2
    assert all(e.occurred_at == b.local(2026, 11, 30, 23, 30) for e in voided)
    assert all(e.recorded_at == datetime(2026, 12, 5, 2, 0) for e in voided)
    async with sessions() as s:
        nov = await station_board(s, Period("month", "2026-11"), now=datetime(2026, 12, 20))
        dec = await station_board(s, Period("month", "2026-12"), now=datetime(2026, 12, 20))
        pts = await station_points(s, st.id, now=datetime(2026, 12, 20))
    assert [(r.code, r.points) for r in nov] == [(st.code, 0)]
    assert [(r.code, r.points) for r in dec] == [(st.code, 0)]
    assert pts == {"total": 0, "year": 0, "month": 0}


# -- append-only --------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = [
    re.compile(r"\b(?:update|delete)\(\s*(?:\w+\.)*Entry\b"),  # sqlalchemy update(Entry) / delete(Entry)
    re.compile(r"\bEntry\.__table__\.(?:update|delete)\b"),
    re.compile(r"(?i)\bupdate\s+\"?entries\"?\s+set\b"),
    re.compile(r"(?i)\bdelete\s+from\s+\"?entries\"?\b"),
    re.compile(r"(?i)\btruncate\s+(?:table\s+)?\"?entries\"?\b"),
    re.compile(r"\b(?:entry|entries|e|orig|original|rev)\.(?:amount|key|station_id|talent_id|occurred_at|rule)"
               r"\s*(?:[-+*/]?=)(?!=)"),
    re.compile(r"\.delete\(\s*(?:entry|e|orig|original)\s*\)"),
]


def forbidden_hits(text: str) -> list[str]:
    return [m.group(0) for pattern in FORBIDDEN for m in pattern.finditer(text)]


async def test_the_orm_refuses_to_change_or_delete_an_entry(sessions):
    st, _t, v = await setup_visit(sessions)
    await apply(sessions, v.id)
    with pytest.raises(ledger.AppendOnly):
        async with transaction(sessions) as s:
            entry = (await s.scalars(select(Entry).where(Entry.station_id == st.id))).one()
            entry.amount = 100
            await s.flush()
    with pytest.raises(ledger.AppendOnly):
        async with transaction(sessions) as s:
            await s.delete((await s.scalars(select(Entry).where(Entry.station_id == st.id))).one())
            await s.flush()
    assert await station_total(sessions, st.id) == 1
    assert await count_entries(sessions) == 2


def test_the_append_only_detector_catches_what_it_should():
    for bad in ["await s.execute(update(Entry).values(amount=0))", "sa.delete(models.Entry)",
                'conn.exec_driver_sql("UPDATE entries SET amount = 0")', "DELETE FROM entries WHERE id=1",
                "Entry.__table__.delete()", "entry.amount = 3", "e.amount -= 1", "await session.delete(entry)",
                "TRUNCATE entries"]:
        assert forbidden_hits(bad), bad
    for fine in ["update(Visit).values(applied_at=now)", "gift.stock -= 1", "select(Entry)",
                 "delete(Flag)", "if e.amount == 1:", "insert(Entry)"]:
        assert not forbidden_hits(fine), fine


def test_no_code_updates_or_deletes_entries():
    files = [p for pkg in ("scoring", "bot", "worker", "talenthome") for p in (ROOT / pkg).rglob("*.py")]
    assert any(p.name == "ledger.py" for p in files)
    hits = {str(p.relative_to(ROOT)): h for p in files if (h := forbidden_hits(p.read_text(encoding="utf-8")))}
    assert hits == {}
