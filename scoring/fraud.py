"""Fraud rules: screening, holds and flags (SPEC 3 "Fraud", [A3.3]).

The visit rule (scoring/facts/visit.py) screens the visits it is about to credit (`screen`):
- **multi_station** (hold): a talent's visit whose trailing window of `multi_station_minutes` (its own
  visit included; ties by id) holds visits at `multi_station_count` or more different stations gets a
  Flag(hold=True) and no entries. The earlier visits of the run keep their points; every later one within
  the window is held too. An admin releases the hold (scoring/admin.py `release_flag`: the visit is then
  credited) or voids it (scoring/facts/void.py).
- **daily_volume** (mark only): when a station's accepted visits on a local day exceed
  max(`daily_floor`, `daily_median_factor` x the median of its daily counts over the 30 days before,
  days without visits counting 0), one Flag(hold=False) marks that station-day (on the visit being
  applied when it is first seen); the points are posted as usual.
- Staff at their own station and expired codes never get here: the bot rejects those scans.
Flags are idempotent (UNIQUE rule + visit_id). Decisions read the recorded visits, not what is applied,
so a retry or another worker reaches the same decision. A flag stores its rule (the code) and the numbers
that tripped it (`Flag.params`: no sentence); scoring/texts/admin.py `flag_detail` renders them when read.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.clock import utcnow
from scoring.db import insert
from scoring.models import Flag, Station, Visit
from scoring.settings import Settings

MULTI_STATION: Final = "multi_station"
DAILY_VOLUME: Final = "daily_volume"
MEDIAN_DAYS: Final = 30


@dataclass(frozen=True)
class Thresholds:
    multi_station_count: int = 3
    multi_station_minutes: int = 30
    daily_floor: int = 20
    daily_median_factor: int = 5

    @classmethod
    def from_settings(cls, s: Settings) -> Thresholds:
        return cls(s.fraud_multi_station_count, s.fraud_multi_station_minutes, s.fraud_daily_floor,
                   s.fraud_daily_median_factor)


Params = dict[str, Any]  # a flag's numbers: multi_station {minutes, n, codes}; daily_volume {day, count, ...}


async def add_flag(session: AsyncSession, *, rule: str, hold: bool, visit: Visit, params: Params) -> int | None:
    """Insert a flag unless (rule, visit) has one; returns the new flag's id."""
    stmt = insert(session, Flag).values(
        rule=rule, hold=hold, station_id=visit.station_id, talent_id=visit.talent_id, visit_id=visit.id,
        params=params, status="open", created_at=utcnow()).on_conflict_do_nothing(
        index_elements=["rule", "visit_id"]).returning(Flag.id)
    return (await session.execute(stmt)).scalar()


HOLD_RULES: Final = (MULTI_STATION,)  # the rules that hold; naming them lets the (rule, visit_id) key serve
OPEN_HOLD = exists().where(Flag.rule.in_(HOLD_RULES), Flag.visit_id == Visit.id, Flag.hold.is_(True),
                           Flag.status == "open")


async def screen(session: AsyncSession, visits: Sequence[Visit], limits: Thresholds
                 ) -> tuple[dict[int, tuple[int, Params]], dict[int, Params]]:
    """({visit_id: (stations, params)} to hold, {visit_id: params} to mark)."""
    if not visits:
        return {}, {}
    return await _multi_station(session, visits, limits), await _daily_volume(session, visits, limits)


async def _multi_station(session: AsyncSession, visits: Sequence[Visit], limits: Thresholds
                         ) -> dict[int, tuple[int, Params]]:
    window = timedelta(minutes=limits.multi_station_minutes)
    talents = sorted({v.talent_id for v in visits if v.talent_id is not None})
    lo, hi = min(v.scanned_at for v in visits) - window, max(v.scanned_at for v in visits)
    rows = (await session.execute(select(Visit.id, Visit.talent_id, Visit.station_id, Visit.scanned_at).where(
        Visit.status == "accepted", Visit.talent_id.in_(talents), Visit.scanned_at >= lo,
        Visit.scanned_at <= hi))).all()
    by_talent: dict[int, list[tuple[int, int, datetime]]] = defaultdict(list)
    for vid, tid, sid, at in rows:
        if tid is not None and sid is not None:
            by_talent[tid].append((vid, sid, at))
    codes: dict[int, str] = {}
    out: dict[int, tuple[int, Params]] = {}
    for v in visits:
        assert v.talent_id is not None
        stations = {sid for vid, sid, at in by_talent[v.talent_id]
                    if at >= v.scanned_at - window and (at, vid) <= (v.scanned_at, v.id)}
        if len(stations) >= limits.multi_station_count:
            missing = stations - codes.keys()
            if missing:
                codes.update({sid: code for sid, code in (await session.execute(
                    select(Station.id, Station.code).where(Station.id.in_(sorted(missing))))).all()})
            out[v.id] = (len(stations), {"minutes": limits.multi_station_minutes, "n": len(stations),
                                         "codes": sorted(codes[s] for s in stations)})
    return out


def daily_threshold(history: Sequence[int], limits: Thresholds) -> float:
    """max(floor, factor x median of the daily counts before), the counts listing every day (0 included)."""
    return max(limits.daily_floor, limits.daily_median_factor * statistics.median(history or [0]))


async def _daily_volume(session: AsyncSession, visits: Sequence[Visit], limits: Thresholds) -> dict[int, Params]:
    days = {(v.station_id, v.local_day) for v in visits if v.station_id is not None}
    stations = sorted({s for s, _ in days})
    first = min(d for _, d in days) - timedelta(days=MEDIAN_DAYS)
    last = max(d for _, d in days)
    counts = {(sid, day): n for sid, day, n in (await session.execute(
        select(Visit.station_id, Visit.local_day, func.count()).where(
            Visit.status == "accepted", Visit.station_id.in_(stations), Visit.local_day >= first,
            Visit.local_day <= last).group_by(Visit.station_id, Visit.local_day))).all()}
    over: dict[tuple[int, date], Params] = {}
    for sid, day in days:
        assert sid is not None
        history = [counts.get((sid, day - timedelta(days=k)), 0) for k in range(1, MEDIAN_DAYS + 1)]
        limit = daily_threshold(history, limits)
        today = counts.get((sid, day), 0)
        if today > limit:
            over[(sid, day)] = {"day": day.isoformat(), "count": today, "limit": limit,
                                "factor": limits.daily_median_factor, "floor": limits.daily_floor}
    if not over:
        return {}
    marked = set((await session.execute(select(Flag.station_id, Visit.local_day).join(
        Visit, Visit.id == Flag.visit_id).where(
        Flag.rule == DAILY_VOLUME, Flag.station_id.in_(sorted({s for s, _ in over}))))).all())
    out = {}
    for (sid, day), params in over.items():
        if (sid, day) in marked:
            continue
        last_visit = max((v for v in visits if (v.station_id, v.local_day) == (sid, day)), key=lambda v: v.id)
        out[last_visit.id] = params
    return out
