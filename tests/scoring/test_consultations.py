"""Consultations in the domain: exactly one owner under concurrent answers on SQLite and PostgreSQL, the
48-hour window, working hours."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import consultations
from scoring.consultations import ConsultRefusal, Done, Notices, Refused, add_working_hours
from scoring.db import transaction
from scoring.models import Consultation, ConsultationEvent, Notification, Staff, Station
from tests import factories as f

NOTICES = Notices(asked="ask {id} {station} {question}", answer="answer {id} {answer}",
                  transferred="transfer {id}", closed="closed {id}")
NOW = datetime(2026, 11, 18, 2, 0)  # Wednesday 10:00 local


async def seed(sessions: async_sessionmaker[AsyncSession], operators: int) -> tuple[int, int]:
    async with transaction(sessions) as s:
        st = await f.station(s, "QZ001")
        for i in range(operators):
            s.add(Staff(openid=f"oOp{i}", role="operator", station_id=st.id))
        talent = await f.talent(s, "QZ1", openid="oT")
        asked = await consultations.ask(s, talent_id=talent.id, station_id=st.id, text="问题", now=NOW, max_open=3,
                                        notices=NOTICES)
        assert isinstance(asked, Done)
        return st.id, asked.consultation.id


async def test_concurrent_answers_and_claims_make_exactly_one_owner(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    st, cid = await seed(sessions, 20)

    async def one(i: int) -> Done | Refused:
        async with transaction(sessions) as s:
            if i % 2:
                return await consultations.claim(s, cid=cid, actor=f"oOp{i}", scope=st, now=NOW)
            return await consultations.answer(s, cid=cid, actor=f"oOp{i}", scope=st, text=f"答{i}", now=NOW,
                                              notices=NOTICES)

    results = await asyncio.gather(*[one(i) for i in range(20)])
    winners = [i for i, r in enumerate(results) if isinstance(r, Done)]
    assert len(winners) == 1
    owner = f"oOp{winners[0]}"
    assert all(isinstance(r, Refused) and r.reason == ConsultRefusal.OWNED and r.owner == owner
               for r in results if not isinstance(r, Done))
    async with sessions() as s:
        c = await s.get(Consultation, cid)
        assert c is not None and (c.owner_openid, c.first_owner_openid) == (owner, owner)
        assert await s.scalar(select(func.count(ConsultationEvent.id)).where(
            ConsultationEvent.kind == "claimed")) == 1
        answers = await s.scalar(select(func.count(Notification.id)).where(Notification.openid == "oT"))
    assert answers == (1 if winners[0] % 2 == 0 else 0)


async def test_answer_after_the_window_is_a_template_message(sessions: async_sessionmaker[AsyncSession]) -> None:
    st, cid = await seed(sessions, 1)
    async with transaction(sessions) as s:
        inside = await consultations.answer(s, cid=cid, actor="oOp0", scope=st, text="先答",
                                            now=NOW + timedelta(hours=47), notices=NOTICES)
        later = await consultations.answer(s, cid=cid, actor="oAdmin", scope=None, text="补充",
                                           now=NOW + timedelta(hours=49), notices=NOTICES)
        other = await consultations.answer(s, cid=cid, actor="oOp9", scope=st + 1, text="x", now=NOW,
                                           notices=NOTICES)
    assert isinstance(inside, Done) and isinstance(later, Done)
    assert isinstance(other, Refused) and other.reason == ConsultRefusal.NOT_FOUND
    async with sessions() as s:
        rows = (await s.execute(select(Notification.channel, Notification.payload).where(
            Notification.openid == "oT").order_by(Notification.id))).all()
    assert [(ch, json.loads(p)["text"]) for ch, p in rows] == [
        ("custom", f"answer {cid} 先答"), ("template", f"answer {cid} 补充")]
    assert json.loads(rows[1][1])["template"] == "consultation_answer"


def test_working_hours() -> None:
    """Mon-Fri 09:00-18:00 Asia/Shanghai (naive UTC in and out)."""
    wed_10 = datetime(2026, 11, 18, 2, 0)
    assert add_working_hours(wed_10, 4) == datetime(2026, 11, 18, 6, 0)  # 14:00 local
    assert add_working_hours(datetime(2026, 11, 18, 8, 0), 4) == datetime(2026, 11, 19, 3, 0)  # 16:00 -> Thu 11:00
    assert add_working_hours(datetime(2026, 11, 20, 9, 0), 4) == datetime(2026, 11, 23, 4, 0)  # Fri 17:00 -> Mon 12:00
    assert add_working_hours(datetime(2026, 11, 21, 2, 0), 1) == datetime(2026, 11, 23, 2, 0)  # Sat -> Mon 10:00
    assert add_working_hours(datetime(2026, 11, 17, 22, 0), 1) == datetime(2026, 11, 18, 2, 0)  # 06:00 -> 10:00


async def test_answer_ratings_join_the_stations_satisfaction(sessions: async_sessionmaker[AsyncSession]) -> None:
    from scoring.operations import satisfaction_rate

    st, cid = await seed(sessions, 1)
    async with transaction(sessions) as s:
        assert isinstance(await consultations.answer(s, cid=cid, actor="oOp0", scope=st, text="答", now=NOW,
                                                     notices=NOTICES), Done)
        talent_id = (await s.get(Consultation, cid)).talent_id  # type: ignore[union-attr]
        assert await satisfaction_rate(s, st) == (0, 0)
        assert isinstance(await consultations.rate(s, talent_id=talent_id, cid=cid, score=4, now=NOW), Done)
        assert await satisfaction_rate(s, st) == (1, 1)


async def test_services_export_per_station_for_a_month(sessions: async_sessionmaker[AsyncSession]) -> None:
    from scoring import bookings, exports
    from scoring.bookings import slot_at

    st, cid = await seed(sessions, 1)
    async with transaction(sessions) as s:
        station = await s.get(Station, st)
        assert station is not None
        station.name = '=HYPERLINK("http://x","站")'
        await consultations.answer(s, cid=cid, actor="oOp0", scope=st, text="答", now=NOW + timedelta(minutes=90),
                                   notices=NOTICES)
        talent_id = (await s.get(Consultation, cid)).talent_id  # type: ignore[union-attr]
        slot = slot_at(NOW.date(), 15)
        await bookings.book(s, talent_id=talent_id, station_id=st, slot_start=slot, service_id=None, now=NOW,
                            limits=bookings.Limits())
        await bookings.settle(s, slot + timedelta(hours=3))
        book, key = await exports.build(s, "services", "2026-11", now=NOW)
        empty, _ = await exports.build(s, "services", "2026-10", now=NOW)
    ws = book.active
    assert ws is not None and key == "2026-11"
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=3)]
    assert rows == [["QZ001", '=HYPERLINK("http://x","站")', 1, 1, 90.0, 90.0, 0, 0, None, 1, 1, 1.0]]
    assert ws.cell(row=3, column=2).data_type == "s"
    assert empty.active is not None and empty.active.max_row == 2
