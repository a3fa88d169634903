"""V void [A3.3] "严禁…弄虚作假、恶意刷分。一经发现，积分无效": an admin voids what fraud or error produced, with a
reason; the points go by reversal entries, never by a delete or an edit.

Targets: an entry, a visit, a held visit's flag, an activity (R1 and R2), a media report (R2).
- **Every affected entry is reversed**: a reversal (scoring/ledger.py `reverse`, key `void:{entry}`)
  for each original entry the target produced, pointing at it, with the admin and the reason, in the
  period the original counted in. A visit or activity voided before it was applied never earns: the
  visit is marked handled (its hold, if any, voided), the activity `voided` (R1 and R2 refuse it).
- **A media report**: R2 pays the best report still standing (scoring/facts/media.py `owed`); when more
  was paid than that, R2's entries are reversed and R2 pays the rest again.
- **Twice changes nothing**: the reversal keys are unique and a reversal is never reversed; the admin's
  `作废` refuses a second void of a target (scoring/admin.py), and applying a void again writes nothing.
- **The station is told** through its hourly digest only (each reversal is a line: what, the points, the
  reason), so its operators get at most one message an hour whatever mix of entries and voids;
  **the talent is told at once** (what was voided, why, the points taken back, the balance left, whom to ask).

Decision: a void may leave a talent's balance below zero. The ledger must tell the truth, so a void
always reverses everything its target produced, even points the talent has spent already on a gift
(redemptions are not undone: the gift was handed over). The talent then owes those points: their
`积分` reply shows the balance as owed ("当前积分为 -3 分（作废的积分已扣回）…"), and no redemption is
accepted until later points cover the debt and the gift's cost (scoring/facts/redemption.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import ledger
from scoring.clock import utcnow
from scoring.db import lock
from scoring.dead_letters import blocks
from scoring.facts import activity as activity_fact
from scoring.facts import media
from scoring.facts import visit as visit_fact
from scoring.facts.common import (
    DEFAULT,
    Applied,
    Audience,
    Job,
    Notice,
    NoticeKind,
    Params,
    Refusal,
    Refused,
    station_entries,
)
from scoring.models import Activity, Entry, Flag, MediaReport, Visit, Void

KIND: Final = "void"


async def _visit(session: AsyncSession, visit_id: int, now: datetime) -> list[int]:
    """A visit's entries to reverse; a visit not applied yet is marked handled, its open holds voided."""
    visit = await lock(session, Visit, visit_id)  # against the visit being applied right now
    if visit is None:
        return []
    for f in (await session.scalars(select(Flag).where(Flag.visit_id == visit_id, Flag.status == "open"))).all():
        f.status, f.resolved_at = "voided", now
    if visit.applied_at is None:
        visit.applied_at = now  # handled: applying it later credits nothing
    return await ledger.originals(session, visit_fact.KIND, [visit_id])


async def _targets(session: AsyncSession, void: Void, now: datetime) -> tuple[list[int], int | None]:
    """(the entries to reverse, the activity whose media R2 must pay again afterwards)."""
    kind, tid = void.target_kind, void.target_id
    if kind == "entry":
        entry = await session.get(Entry, tid)
        return ([entry.id] if entry is not None and entry.reverses_id is None else []), None
    if kind == "visit":
        return await _visit(session, tid, now), None
    if kind == "flag":
        flag = await lock(session, Flag, tid)
        if flag is None or flag.visit_id is None:
            return [], None
        flag.status, flag.resolved_at, flag.resolved_by = "voided", now, void.actor
        return await _visit(session, flag.visit_id, now), None
    if kind == "activity":
        activity = await lock(session, Activity, tid)
        if activity is None:
            return [], None
        activity.status = "voided"  # R1 and R2 are not paid for it again
        return (await ledger.originals(session, activity_fact.KIND, [tid])
                + await ledger.originals(session, media.KIND, [tid])), None
    if kind == "media":
        report = await session.get(MediaReport, tid)
        if report is None:
            return [], None
        await lock(session, Activity, report.activity_id)
        report.voided_at = report.voided_at or now
        o = await media.owed(session, report.activity_id)
        overpaid = o.difference < 0
        return (await ledger.originals(session, media.KIND, [report.activity_id]) if overpaid else []), \
            report.activity_id
    return [], None


async def apply(session: AsyncSession, void_id: int, params: Params = DEFAULT, *,
                now: datetime | None = None) -> Applied | Refused:
    now = now or utcnow()
    void = await session.get(Void, void_id)
    if void is None:
        return Refused(Refusal.NOT_FOUND)
    originals, repay = await _targets(session, void, now)
    posted = await ledger.reverse(session, originals, actor=void.actor, reason=void.reason)
    entries = await ledger.reversals_of(session, originals)
    repaid_notices: tuple[Notice, ...] = ()
    if repay is not None:  # R2 pays the best report still standing (a new entry, or nothing)
        repaid = await media.apply(session, repay, params, now=now)
        if isinstance(repaid, Applied):  # its new entry (the others are reversed here or stay as they were)
            known = {e.id for e in entries} | set(originals)
            entries += [e for e in repaid.entries if e.id not in known]
            repaid_notices = repaid.notices
    void.applied_at = void.applied_at or now
    if not entries:
        return Refused(Refusal.NOTHING_TO_REVERSE)
    new = set(posted.written)
    written = [e for e in entries if e.key in new]
    return Applied(entries, _notices(void, written) + station_entries(written, new) + repaid_notices,
                   written=len(written))


def _notices(void: Void, reversals: Sequence[Entry]) -> tuple[Notice, ...]:
    """One notice per talent that lost points by this void (what was voided, why, the points taken back;
    scoring/notify.py adds the resulting balance). The stations hear of their reversals only through their
    hourly digest (`station_entries`), so an operator gets at most one message an hour, voids included."""
    per_talent: dict[int, list[Entry]] = defaultdict(list)
    for e in reversals:
        if e.talent_id is not None:
            per_talent[e.talent_id].append(e)
    return tuple(Notice(NoticeKind.VOID, Audience.TALENT, tid, f"talent-void:{void.id}:{tid}", {
        "void_id": void.id, "entries": len(es), "points": sum(e.amount for e in es), "reason": void.reason,
        "visit_id": next((e.fact_id for e in es if e.fact_kind == visit_fact.KIND), None)})
        for tid, es in sorted(per_talent.items()))


async def unapplied(session: AsyncSession, *, cutoff: datetime, now: datetime, params: Params = DEFAULT,
                    limit: int = 5000) -> list[int]:
    return list((await session.scalars(select(Void.id).where(
        Void.applied_at.is_(None), Void.created_at < cutoff, ~blocks(KIND, Void.id))
        .order_by(Void.id).limit(limit))).all())


def job(void_id: int) -> Job:
    return Job(KIND, void_id)
