"""R4 survey [A1.3] "结果应用": the yearly awareness and satisfaction results of a station, entered by an
admin, add or take points, "不高于50积分的加减分": the sum of a station's R4 entries for one year stays within
[-CAP, +CAP].

- The cap is checked in the transaction that writes the entry, with the station's row locked
  (PostgreSQL; SQLite's write lock is held from BEGIN): two results cannot both fit into the same room.
  A result that would cross the cap is refused whole (status `rejected`), not cut; it stays refused.
- The entry `survey:{station}:{year}:{result}` occurs inside the survey's year: when it was applied if
  that is in the year, else the year's nearest edge (a result for 2026 entered in January 2027 counts
  in 2026, at its last local second). A void makes room again.
- The admin's `调查` word checks the cap first, with results still pending (scoring/admin.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import ledger, periods
from scoring.clock import utcnow
from scoring.db import lock
from scoring.dead_letters import blocks
from scoring.facts.common import DEFAULT, Applied, Job, Params, Refusal, Refused, station_entries
from scoring.ledger import Draft
from scoring.models import Entry, Station, SurveyResult
from scoring.rules import RULES, SURVEY_CAP

KIND: Final = "survey"
CAP: Final = SURVEY_CAP


async def total(session: AsyncSession, station_id: int, year: int) -> int:
    """A station's R4 points for a year, as the ledger has them."""
    got = await session.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).where(
        Entry.fact_kind == KIND,
        Entry.fact_id.in_(select(SurveyResult.id).where(
            SurveyResult.station_id == station_id, SurveyResult.year == year))))
    return int(got or 0)


def within_cap(total: int, amount: int) -> bool:
    return -CAP <= total + amount <= CAP


def occurred_at(year: int, now: datetime) -> datetime:
    """Inside the survey's year: now if now is in it, else the year's nearest local second."""
    start, end = periods.Period("year", str(year)).bounds()
    assert start is not None and end is not None
    return now if start <= now < end else (start if now < start else end - timedelta(seconds=1))


async def apply(session: AsyncSession, survey_id: int, params: Params = DEFAULT, *,
                now: datetime | None = None) -> Applied | Refused:
    survey = await session.get(SurveyResult, survey_id)
    if survey is None:
        return Refused(Refusal.NOT_FOUND)
    await lock(session, Station, survey.station_id)
    entries = await ledger.entries_of(session, KIND, [survey.id])
    if entries:
        return Applied(entries)
    if survey.status == "rejected":
        return Refused(Refusal.SURVEY_CAP)
    if not within_cap(await total(session, survey.station_id, survey.year), survey.amount):
        survey.status = "rejected"
        return Refused(Refusal.SURVEY_CAP)
    now = now or utcnow()
    r = RULES["R4"]
    posted = await ledger.post(session, [Draft(
        key=f"{KIND}:{survey.station_id}:{survey.year}:{survey.id}", amount=survey.amount, rule=r.tag,
        fact_kind=KIND, fact_id=survey.id, occurred_at=occurred_at(survey.year, now), station_id=survey.station_id,
        actor=survey.entered_by, reason=survey.reason)])
    survey.status, survey.applied_at = "applied", now
    entries = await ledger.entries_of(session, KIND, [survey.id])
    return Applied(entries, station_entries(entries, posted.written), written=len(posted.written))


async def unapplied(session: AsyncSession, *, cutoff: datetime, now: datetime, params: Params = DEFAULT,
                    limit: int = 5000) -> list[int]:
    return list((await session.scalars(select(SurveyResult.id).where(
        SurveyResult.status == "pending", SurveyResult.created_at < cutoff, ~blocks(KIND, SurveyResult.id))
        .order_by(SurveyResult.id).limit(limit))).all())


def job(survey_id: int) -> Job:
    return Job(KIND, survey_id)
