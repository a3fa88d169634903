"""The demo's services part (talenthome/demo_services.py) on a small city: common list restored, items and
duties per station, settled and open bookings, consultations answered/claimed/waiting; the same twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring.db import transaction
from scoring.models import Booking, Consultation, ServiceItem, Staff, StationDuties
from talenthome.demo_services import add_services
from tests import factories as f

NOW = datetime(2026, 11, 18, 2, 0)


async def test_demo_services(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with transaction(sessions) as s:
        stations = [await f.station(s, f"QZ00{i}", type=t) for i, t in
                    enumerate(("comprehensive", "industry", "professional", "service"))]
        s.add_all([Staff(openid=f"oOp{st.id}", role="operator", station_id=st.id) for st in stations])
        for i in range(10):
            await f.talent(s, f"QZ{i:03d}", openid=f"o{i}")
        made = await add_services(s, now=NOW, seed=1)
    assert (made.items, made.bookings, made.consultations) == (3 + 4, 8, 3)
    async with sessions() as s:
        assert await s.scalar(select(func.count(ServiceItem.id)).where(ServiceItem.station_id.is_(None))) == 3
        assert await s.scalar(select(func.count(StationDuties.station_id))) == 4
        statuses = sorted((await s.scalars(select(Booking.status))).all())
        assert statuses.count("booked") == 4 and statuses.count("no_show") == 4
        rows = (await s.execute(select(Consultation.owner_openid, Consultation.rating)
                                .order_by(Consultation.id))).all()
    assert [(o is not None, r) for o, r in rows] == [(True, 5), (True, None), (False, None)]
