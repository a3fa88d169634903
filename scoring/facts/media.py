"""R2 media [A1.1] "活动举办 … 活动报道刊登于中央、省、市、县（市、区）新闻媒体的，可分别获20、10、5、3个积分；
同一活动同时在多家媒体报道的，按最高标准计分，不重复计算".

- **An activity that took place**: media points belong to holding an activity, so R2 pays only for an
  activity that has ended and stands (published, not voided). A report uploaded earlier is kept and
  waits: it stays unapplied, and the sweeper (`unapplied`) brings it back once the activity has ended.
- **Best level only** (`owed`, the one place that computes it): the station is owed the points of the
  best level among the activity's reports that stand (not voided) minus what R2 has paid for the activity
  so far; a later, higher report pays the difference, a lower or equal one nothing. After a void of the
  best report, scoring/facts/void.py reverses R2's entries when more was paid than is owed now, then R2
  pays the best level still standing (the key's `v{n}` counts the reversals, so that entry is new).
- The entry is `media:{activity}:{level}:v{n}`; it occurs when the best report was uploaded, or when the
  activity ended if that was later (a late worker run does not move the points into another month). The
  activity's row is locked first (PostgreSQL), so two workers cannot both pay the same difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import ledger
from scoring.clock import utcnow
from scoring.db import lock
from scoring.dead_letters import blocks
from scoring.facts.common import DEFAULT, Applied, Job, Params, Refusal, Refused, station_entries
from scoring.ledger import Draft
from scoring.models import Activity, Entry, MediaReport
from scoring.rules import MEDIA_LEVELS, RULES, media_points

KIND: Final = "media"


@dataclass(frozen=True)
class Owed:
    """The best report standing (level, uploaded at), its points, and what R2 paid so far (`paid`, over
    `reversals` reversals)."""

    best: tuple[str, datetime] | None
    target: int
    paid: int
    reversals: int

    @property
    def difference(self) -> int:
        return self.target - self.paid


async def owed(session: AsyncSession, activity_id: int) -> Owed:
    reports = (await session.execute(select(MediaReport.level, MediaReport.created_at).where(
        MediaReport.activity_id == activity_id, MediaReport.voided_at.is_(None),
        MediaReport.level.in_(MEDIA_LEVELS)).order_by(MediaReport.created_at, MediaReport.id))).all()
    best = max(reports, key=lambda r: media_points(r.level), default=None)  # the earliest among the best
    paid, reversals = (await session.execute(select(
        func.coalesce(func.sum(Entry.amount), 0), func.count(Entry.reverses_id)).where(
        Entry.fact_kind == KIND, Entry.fact_id == activity_id))).one()
    return Owed((best.level, best.created_at) if best else None, media_points(best.level) if best else 0,
                int(paid), int(reversals))


def took_place(activity: Activity, now: datetime) -> bool:
    return activity.status == "published" and activity.ends_at <= now


async def apply(session: AsyncSession, activity_id: int, params: Params = DEFAULT, *,
                now: datetime | None = None) -> Applied | Refused:
    """Pay the activity's reports what they are owed (the fact is the activity's reports, by activity)."""
    now = now or utcnow()
    activity = await lock(session, Activity, activity_id)
    if activity is None:
        return Refused(Refusal.NOT_FOUND)
    if activity.status != "published":
        return Refused(Refusal.NOT_ACCEPTED)
    if not took_place(activity, now):
        return Refused(Refusal.NOT_HELD_YET)
    o = await owed(session, activity_id)
    for report in (await session.scalars(select(MediaReport).where(
            MediaReport.activity_id == activity_id, MediaReport.applied_at.is_(None)))).all():
        report.applied_at = now
    written: list[str] = []
    if o.best is not None and o.difference > 0:
        level, uploaded = o.best
        r = RULES["R2"]
        posted = await ledger.post(session, [Draft(
            key=f"{KIND}:{activity_id}:{level}:v{o.reversals}", amount=o.difference, rule=r.tag, fact_kind=KIND,
            fact_id=activity_id, occurred_at=max(uploaded, activity.ends_at), station_id=activity.station_id)])
        written = list(posted.written)
    entries = await ledger.entries_of(session, KIND, [activity_id])
    if not entries:
        return Refused(Refusal.NOTHING_TO_PAY)
    return Applied(entries, station_entries(entries, written), written=len(written))


async def unapplied(session: AsyncSession, *, cutoff: datetime, now: datetime, params: Params = DEFAULT,
                    limit: int = 5000) -> list[int]:
    """Activities with a report not applied yet that stands, uploaded before `cutoff`, of an activity
    that took place before `cutoff` (a report uploaded before the activity comes back once it ended)."""
    return list((await session.scalars(select(Activity.id).where(
        Activity.status == "published", Activity.ends_at < cutoff, exists().where(
            MediaReport.activity_id == Activity.id, MediaReport.applied_at.is_(None),
            MediaReport.voided_at.is_(None), MediaReport.created_at < cutoff),
        ~blocks(KIND, Activity.id)).order_by(Activity.id).limit(limit))).all())


def job(activity_id: int, report_id: int) -> Job:
    """`media:{activity}:{report}`: one per report uploaded."""
    return Job(KIND, activity_id, str(report_id))
