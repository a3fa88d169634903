"""R1 activity [A1.1] "活动举办": a station earns +5 for an activity it held when the activity

- was published on the platform at least `lead_hours` (24) before it started (`meets_lead`),
- has ended (and was not voided: status published),
- had at least `min_attendees` (1) distinct talents checked in (scoring/facts/attendance.py), and
- has a publicity report uploaded by its station.

Each condition is written once, in `_conditions` (SQL) or `meets_lead` (Python: datetime arithmetic is
not portable SQL), and `conditions` (one activity: the operator's `我的活动`, the worker) and `unapplied`
(the sweeper's query over all recent activities) both read them. The entry is `host:{activity}`, occurring
when the activity ended. R1 is decided when the activity ends (the job the bot defers to the end) and
again whenever a publicity report arrives; the sweeper looks `LOOKBACK` back for activities it missed.
Publishing with too little lead is allowed, and the operator is told at once that R1 will not be paid.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import ledger
from scoring.clock import utcnow
from scoring.dead_letters import blocks
from scoring.facts import attendance
from scoring.facts.common import DEFAULT, Applied, Job, Params, Refusal, Refused, station_entries
from scoring.ledger import Draft
from scoring.models import Activity, Entry, PublicityReport
from scoring.rules import RULES

KIND: Final = "activity"
LOOKBACK: Final = timedelta(days=60)


def meets_lead(published_at: datetime, starts_at: datetime, lead_hours: int) -> bool:
    """Published at least `lead_hours` before the start (exactly `lead_hours` is enough)."""
    return published_at <= starts_at - timedelta(hours=lead_hours)


def _conditions(params: Params, now: datetime) -> dict[str, ColumnElement[bool]]:
    """R1's conditions but the lead, as SQL over Activity, by name."""
    return {
        "published": Activity.status == "published",
        "ended": Activity.ends_at <= now,
        "attendees": attendance.attendees(Activity.id) >= params.min_attendees,
        "publicity": exists().where(PublicityReport.activity_id == Activity.id),
    }


NAMES: Final = ("published", "ended", "lead_time", "attendees", "publicity")


async def conditions(session: AsyncSession, activity: Activity, params: Params = DEFAULT, *,
                     now: datetime) -> dict[str, bool]:
    """R1's conditions for one activity, each by name (in NAMES order), so that a reply or a report can
    say which one is missing."""
    sql = _conditions(params, now)
    row = (await session.execute(select(*(c.label(n) for n, c in sql.items())).where(
        Activity.id == activity.id))).one()._asdict()
    row["lead_time"] = meets_lead(activity.published_at, activity.starts_at, params.lead_hours)
    return {name: bool(row[name]) for name in NAMES}


def host_key(activity_id: int) -> str:
    return f"host:{activity_id}"


async def apply(session: AsyncSession, activity_id: int, params: Params = DEFAULT, *,
                now: datetime | None = None) -> Applied | Refused:
    activity = await session.get(Activity, activity_id)
    if activity is None:
        return Refused(Refusal.NOT_FOUND)
    if not all((await conditions(session, activity, params, now=now or utcnow())).values()):
        return Refused(Refusal.CONDITIONS_NOT_MET)
    r = RULES["R1"]
    posted = await ledger.post(session, [Draft(
        key=host_key(activity.id), amount=r.station, rule=r.tag, fact_kind=KIND, fact_id=activity.id,
        occurred_at=activity.ends_at, station_id=activity.station_id)])
    entries = await ledger.entries_of(session, KIND, [activity.id])
    return Applied(entries, station_entries(entries, posted.written), written=len(posted.written))


async def unapplied(session: AsyncSession, *, cutoff: datetime, now: datetime, params: Params = DEFAULT,
                    limit: int = 5000) -> list[int]:
    """Activities that ended before `cutoff` (within LOOKBACK of `now`), meet every condition of R1 and
    have no R1 entry."""
    rows = (await session.execute(select(Activity.id, Activity.published_at, Activity.starts_at).where(
        *_conditions(params, cutoff).values(), Activity.ends_at >= now - LOOKBACK,
        ~exists().where(Entry.fact_kind == KIND, Entry.fact_id == Activity.id),
        ~blocks(KIND, Activity.id)).order_by(Activity.id).limit(limit))).all()
    return [i for i, published, starts in rows if meets_lead(published, starts, params.lead_hours)]


async def paid(session: AsyncSession, activity_id: int) -> int:
    """R1's points standing for the activity (0, or 5; 0 again after a void)."""
    return int(await session.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).where(
        Entry.fact_kind == KIND, Entry.fact_id == activity_id)) or 0)


def job(activity_id: int, *, publicity_id: int | None = None, ends_at: datetime | None = None) -> Job:
    """`activity:{id}:end`, deferred to the activity's end (`ends_at`); `activity:{id}:pub{n}` when
    publicity report n arrives."""
    if publicity_id is not None:
        return Job(KIND, activity_id, f"pub{publicity_id}")
    return Job(KIND, activity_id, "end", defer_until=ends_at)

