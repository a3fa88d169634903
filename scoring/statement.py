"""A talent's statement (issue 11, `/api/v1/me` and the `/me` page): the balance and every ledger line of the
talent, newest first, each with its rule id, the fact it came from (a visit at a station, possibly by
attending an activity; a redemption of a gift; a void with its reason) and its time. Data only: the caller's
texts module words it. Only ever called for the logged-in talent's own id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import boards
from scoring.models import Activity, Entry, Gift, Redemption, Station, Visit


@dataclass(frozen=True)
class StatementLine:
    id: int
    amount: int
    rule: str  # rule id: R3, G, V, ...
    fact_kind: str  # visit | redemption | ...
    fact_id: int | None
    occurred_at: datetime
    recorded_at: datetime
    station_code: str | None = None
    station_name: str | None = None
    activity_id: int | None = None
    activity_title: str | None = None
    gift_name: str | None = None
    reversal: bool = False  # a void's reversal of an earlier line
    reason: str | None = None  # the void's reason


@dataclass(frozen=True)
class Statement:
    points: dict[str, int]  # total, year, month, balance (scoring.boards.talent_points)
    lines: list[StatementLine]
    total_lines: int

    @property
    def balance(self) -> int:
        return self.points["balance"]


async def statement(session: AsyncSession, talent_id: int, *, now: datetime, limit: int = 20,
                    offset: int = 0) -> Statement:
    """The talent's points and one page of ledger lines, newest first."""
    points = await boards.talent_points(session, talent_id, now)
    total = int(await session.scalar(select(func.count(Entry.id)).where(Entry.talent_id == talent_id)) or 0)
    entries = (await session.scalars(select(Entry).where(Entry.talent_id == talent_id)
                                     .order_by(Entry.occurred_at.desc(), Entry.id.desc())
                                     .limit(limit).offset(offset))).all()
    visit_ids = [e.fact_id for e in entries if e.fact_kind == "visit" and e.fact_id is not None]
    visits: dict[int, tuple[str | None, str | None, int | None, str | None]] = {}
    if visit_ids:
        for vid, v_code, v_name, v_aid, v_title in (await session.execute(
                select(Visit.id, Station.code, Station.name, Activity.id, Activity.title)
                .outerjoin(Station, Station.id == Visit.station_id)
                .outerjoin(Activity, Activity.id == Visit.activity_id)
                .where(Visit.id.in_(visit_ids)))).all():
            visits[vid] = (v_code, v_name, v_aid, v_title)
    red_ids = [e.fact_id for e in entries if e.fact_kind == "redemption" and e.fact_id is not None]
    gifts: dict[int, str] = {}
    if red_ids:
        gifts = {rid: name for rid, name in (await session.execute(
            select(Redemption.id, Gift.name).join(Gift, Gift.id == Redemption.gift_id)
            .where(Redemption.id.in_(red_ids)))).all()}
    lines = []
    for e in entries:
        code: str | None = None
        sname: str | None = None
        title: str | None = None
        gift: str | None = None
        aid: int | None = None
        if e.fact_kind == "visit" and e.fact_id in visits:
            code, sname, aid, title = visits[e.fact_id]
        elif e.fact_kind == "redemption" and e.fact_id is not None:
            gift = gifts.get(e.fact_id)
        lines.append(StatementLine(
            id=e.id, amount=e.amount, rule=e.rule.split("@")[0], fact_kind=e.fact_kind, fact_id=e.fact_id,
            occurred_at=e.occurred_at, recorded_at=e.recorded_at, station_code=code, station_name=sname,
            activity_id=aid, activity_title=title, gift_name=gift, reversal=e.reverses_id is not None,
            reason=e.reason if e.reverses_id is not None else None))
    return Statement(points, lines, total)
