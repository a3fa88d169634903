"""The ledger: facts become entries exactly once.

Promises (each tested in tests/scoring/test_ledger*.py and test_concurrency_pg.py):
- integer points on two kinds of account, stations and talents; entries are append-only (nothing UPDATEs
  or DELETEs one; an ORM flush that would raises AppendOnly);
- every entry has a UNIQUE idempotency key derived from its fact; posting the same fact again writes
  nothing and reports "already applied"; the same key with another amount or account is an error;
- all legs of one fact are written in one transaction, inside a SAVEPOINT: a fact applies whole or not
  at all, even when a caller catches LedgerConflict and commits the rest of its work;
- a void writes reversal entries (rule V) pointing at what they reverse, with actor and reason; a
  reversal keeps its original's fact and `occurred_at`, so it corrects the period the original counted in;
- a redemption never takes a balance below zero (the talent's row is locked first on PostgreSQL;
  SQLite transactions take the write lock at BEGIN). A void may: taking back points already spent
  leaves the talent owing them, and no redemption is allowed until the balance covers the cost again;
- R4 survey entries of a station stay within [-50, +50] per year, checked in the same transaction (the
  station's row is locked on PostgreSQL); a result that would cross the cap is refused whole, not cut;
- R2 media pays only the difference between the best reported level and what was already paid (the
  activity's row is locked on PostgreSQL, so two workers cannot both pay the same difference).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import periods
from scoring.clock import utcnow
from scoring.db import dialect_name, insert, lock
from scoring.models import (
    Activity,
    Attendance,
    Entry,
    Gift,
    MediaReport,
    PublicityReport,
    Redemption,
    Station,
    SurveyResult,
    Talent,
    Visit,
)
from scoring.rules import MEDIA_LEVELS, RULES, SURVEY_CAP, media_points


class LedgerConflict(Exception):
    """The same idempotency key was posted with a different amount or account."""


class AppendOnly(RuntimeError):
    """Something tried to change or delete a ledger entry through the ORM."""


@event.listens_for(Entry, "before_update")
@event.listens_for(Entry, "before_delete")
def _refuse_changes(_mapper: Any, _connection: Any, target: Entry) -> None:
    """Entries are append-only: a flush that would UPDATE or DELETE one fails (a void is a new entry)."""
    raise AppendOnly(f"ledger entry {target.key!r} is append-only; post a reversal instead")


class Refusal(StrEnum):
    NOT_FOUND = "not_found"
    NOT_ACCEPTED = "not_accepted"
    CONDITIONS_NOT_MET = "conditions_not_met"
    SURVEY_CAP = "survey_cap"
    BALANCE = "balance"
    STOCK = "stock"
    NOTHING_TO_PAY = "nothing_to_pay"
    ALREADY_REVERSED = "already_reversed"


@dataclass(frozen=True)
class Draft:
    key: str
    amount: int
    rule: str
    fact_kind: str
    fact_id: int | None
    occurred_at: datetime
    station_id: int | None = None
    talent_id: int | None = None
    reverses_id: int | None = None
    actor: str | None = None
    reason: str | None = None


@dataclass
class Posted:
    """What a post did: `entries` are the newly written ones (empty when already applied)."""

    entries: list[Entry] = field(default_factory=list)
    already: bool = False
    refused: Refusal | None = None

    @property
    def applied(self) -> bool:
        return bool(self.entries)


async def post(session: AsyncSession, drafts: Sequence[Draft]) -> Posted:
    """Write the drafts unless their keys exist; the same key with other figures raises LedgerConflict.

    The drafts are one fact: they are written inside a SAVEPOINT, so on a conflict none of them stays
    written, even if the caller catches the error and commits the rest of its transaction.
    """
    if not drafts:
        return Posted(already=True)
    recorded_at = utcnow()  # one recording time for all legs of a fact
    rows = [
        {"key": d.key, "amount": d.amount, "rule": d.rule, "fact_kind": d.fact_kind, "fact_id": d.fact_id,
         "occurred_at": d.occurred_at, "recorded_at": recorded_at, "station_id": d.station_id,
         "talent_id": d.talent_id, "reverses_id": d.reverses_id, "actor": d.actor, "reason": d.reason}
        for d in drafts
    ]
    stmt = insert(session, Entry).values(rows).on_conflict_do_nothing(index_elements=["key"]).returning(Entry)
    async with session.begin_nested():
        new = sorted((await session.scalars(stmt)).all(), key=lambda e: e.id)
        inserted = {e.key for e in new}
        missing = [d for d in drafts if d.key not in inserted]
        if missing:
            existing = {
                e.key: e for e in (await session.scalars(
                    select(Entry).where(Entry.key.in_([d.key for d in missing])))).all()
            }
            for d in missing:
                e = existing.get(d.key)
                if e is None or (e.amount, e.station_id, e.talent_id) != (d.amount, d.station_id, d.talent_id):
                    for written in new:  # rolled back with the savepoint: keep no stale copy around
                        session.expunge(written)
                    raise LedgerConflict(f"entry {d.key!r} exists with other figures")
    if not new:
        return Posted(already=True)
    return Posted(entries=list(new))


# -- R3 visit ---------------------------------------------------------------------------------------
def visit_key(talent_id: int, station_id: int, day: date) -> str:
    return f"visit:{talent_id}:{station_id}:{day.isoformat()}"


def visit_drafts(visit: Visit) -> list[Draft]:
    assert visit.talent_id is not None and visit.station_id is not None
    r = RULES["R3"]
    key = visit_key(visit.talent_id, visit.station_id, visit.local_day)
    common = {"rule": r.tag, "fact_kind": "visit", "fact_id": visit.id, "occurred_at": visit.scanned_at}
    return [
        Draft(key=key + "#station", amount=r.station, station_id=visit.station_id, **common),  # type: ignore[arg-type]
        Draft(key=key + "#talent", amount=r.talent, talent_id=visit.talent_id, **common),  # type: ignore[arg-type]
    ]


async def apply_visit(session: AsyncSession, visit_id: int) -> Posted:
    visit = await session.get(Visit, visit_id)
    if visit is None:
        return Posted(refused=Refusal.NOT_FOUND)
    if visit.status != "accepted":
        return Posted(refused=Refusal.NOT_ACCEPTED)
    result = await post(session, visit_drafts(visit))
    if visit.applied_at is None:
        visit.applied_at = utcnow()
    return result


# -- R1 activity ------------------------------------------------------------------------------------
async def activity_conditions(
    session: AsyncSession, activity: Activity, *, now: datetime, lead_hours: int = 24, min_attendees: int = 1
) -> dict[str, bool]:
    """R1's conditions, each by name, so a reply or a report can say which one is missing."""
    attendees = await session.scalar(
        select(func.count(func.distinct(Attendance.talent_id))).where(Attendance.activity_id == activity.id))
    publicity = await session.scalar(
        select(func.count(PublicityReport.id)).where(PublicityReport.activity_id == activity.id))
    return {
        "published": activity.status == "published",
        "ended": activity.ends_at <= now,
        "lead_time": activity.published_at <= activity.starts_at - timedelta(hours=lead_hours),
        "attendees": (attendees or 0) >= min_attendees,
        "publicity": (publicity or 0) > 0,
    }


async def apply_activity(
    session: AsyncSession, activity_id: int, *, now: datetime | None = None, lead_hours: int = 24,
    min_attendees: int = 1,
) -> Posted:
    activity = await session.get(Activity, activity_id)
    if activity is None:
        return Posted(refused=Refusal.NOT_FOUND)
    conditions = await activity_conditions(
        session, activity, now=now or utcnow(), lead_hours=lead_hours, min_attendees=min_attendees)
    if not all(conditions.values()):
        return Posted(refused=Refusal.CONDITIONS_NOT_MET)
    r = RULES["R1"]
    return await post(session, [Draft(
        key=f"host:{activity.id}", amount=r.station, rule=r.tag, fact_kind="activity", fact_id=activity.id,
        occurred_at=activity.ends_at, station_id=activity.station_id)])


# -- R2 media ---------------------------------------------------------------------------------------
async def apply_media(session: AsyncSession, activity_id: int, *, now: datetime | None = None) -> Posted:
    """Pay the difference between the best level reported (not voided) and what is already paid.

    The activity's row is locked first (PostgreSQL), so two workers cannot each pay a difference computed
    from the same "already paid". The entry occurs when the best report was uploaded (a late worker run
    does not move the points into another month).
    """
    activity = await lock(session, Activity, activity_id)
    if activity is None:
        return Posted(refused=Refusal.NOT_FOUND)
    if activity.status != "published":
        return Posted(refused=Refusal.NOT_ACCEPTED)
    reports = (await session.execute(select(MediaReport.level, MediaReport.created_at).where(
        MediaReport.activity_id == activity_id, MediaReport.voided_at.is_(None),
        MediaReport.level.in_(MEDIA_LEVELS)).order_by(MediaReport.created_at, MediaReport.id))).all()
    best = max(reports, key=lambda r: media_points(r.level), default=None)  # earliest among the best
    target = media_points(best.level) if best else 0
    paid, reversals = (await session.execute(select(
        func.coalesce(func.sum(Entry.amount), 0),
        func.count(Entry.reverses_id)).where(Entry.fact_kind == "media", Entry.fact_id == activity_id))).one()
    now = now or utcnow()
    for report in (await session.scalars(select(MediaReport).where(
            MediaReport.activity_id == activity_id, MediaReport.applied_at.is_(None)))).all():
        report.applied_at = now
    if best is None or target <= paid:
        return Posted(already=True, refused=Refusal.NOTHING_TO_PAY)
    r = RULES["R2"]
    return await post(session, [Draft(
        key=f"media:{activity_id}:{best.level}:v{reversals}", amount=target - int(paid), rule=r.tag,
        fact_kind="media", fact_id=activity_id, occurred_at=best.created_at, station_id=activity.station_id)])


# -- R4 survey --------------------------------------------------------------------------------------
async def survey_total(session: AsyncSession, station_id: int, year: int) -> int:
    total = await session.scalar(select(func.coalesce(func.sum(Entry.amount), 0)).where(
        Entry.fact_kind == "survey",
        Entry.fact_id.in_(select(SurveyResult.id).where(
            SurveyResult.station_id == station_id, SurveyResult.year == year))))
    return int(total or 0)


def survey_occurred_at(year: int, now: datetime) -> datetime:
    """Inside the survey's year: now if now is in it, else the year's last local second."""
    start, end = periods.Period("year", str(year)).bounds()
    assert start is not None and end is not None
    return now if start <= now < end else (start if now < start else end - timedelta(seconds=1))


async def apply_survey(session: AsyncSession, survey_id: int, *, now: datetime | None = None) -> Posted:
    survey = await session.get(SurveyResult, survey_id)
    if survey is None:
        return Posted(refused=Refusal.NOT_FOUND)
    await lock(session, Station, survey.station_id)
    key = f"survey:{survey.station_id}:{survey.year}:{survey.id}"
    if await session.scalar(select(Entry.id).where(Entry.key == key)) is not None:
        return Posted(already=True)
    if survey.status == "rejected":
        return Posted(refused=Refusal.SURVEY_CAP)
    total = await survey_total(session, survey.station_id, survey.year)
    if not -SURVEY_CAP <= total + survey.amount <= SURVEY_CAP:
        survey.status = "rejected"
        return Posted(refused=Refusal.SURVEY_CAP)
    now = now or utcnow()
    r = RULES["R4"]
    result = await post(session, [Draft(
        key=key, amount=survey.amount, rule=r.tag, fact_kind="survey", fact_id=survey.id,
        occurred_at=survey_occurred_at(survey.year, now), station_id=survey.station_id,
        actor=survey.entered_by, reason=survey.reason)])
    survey.status, survey.applied_at = "applied", now
    return result


# -- V void -----------------------------------------------------------------------------------------
async def reverse(session: AsyncSession, entry_ids: Sequence[int], *, actor: str, reason: str) -> Posted:
    """Reversal entries for each entry not yet reversed; reversals themselves are never reversed."""
    originals = (await session.scalars(select(Entry).where(
        Entry.id.in_(list(entry_ids)), Entry.reverses_id.is_(None)).order_by(Entry.id))).all()
    if not originals:
        return Posted(refused=Refusal.NOT_FOUND)
    r = RULES["V"]
    drafts = [Draft(key=f"void:{e.id}", amount=-e.amount, rule=r.tag, fact_kind=e.fact_kind, fact_id=e.fact_id,
                    occurred_at=e.occurred_at, station_id=e.station_id, talent_id=e.talent_id,
                    reverses_id=e.id, actor=actor, reason=reason) for e in originals]
    result = await post(session, drafts)
    if result.already:
        result.refused = Refusal.ALREADY_REVERSED
    return result


async def fact_entries(session: AsyncSession, fact_kind: str, fact_id: int) -> list[int]:
    """Ids of the original (non-reversal) entries a fact produced."""
    return list((await session.scalars(select(Entry.id).where(
        Entry.fact_kind == fact_kind, Entry.fact_id == fact_id, Entry.reverses_id.is_(None)))).all())


# -- G redemption -----------------------------------------------------------------------------------
async def talent_balance(session: AsyncSession, talent_id: int) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(Entry.amount), 0)).where(Entry.talent_id == talent_id))
    return int(total or 0)


async def apply_redemption(session: AsyncSession, redemption_id: int, *, now: datetime | None = None) -> Posted:
    """Debit the gift's cost unless the balance or the stock would go below zero."""
    red = await session.get(Redemption, redemption_id)
    if red is None:
        return Posted(refused=Refusal.NOT_FOUND)
    await lock(session, Talent, red.talent_id)
    await lock(session, Gift, red.gift_id)
    await session.refresh(red)
    if red.status == "applied":
        return Posted(already=True)
    if red.status == "rejected":
        return Posted(refused=Refusal(red.reason or Refusal.BALANCE))
    gift = await session.get(Gift, red.gift_id, populate_existing=True)
    assert gift is not None
    now = now or utcnow()
    refusal = None
    if gift.stock <= 0 or not gift.active:
        refusal = Refusal.STOCK
    elif await talent_balance(session, red.talent_id) < gift.cost:
        refusal = Refusal.BALANCE
    if refusal is not None:
        red.status, red.reason = "rejected", refusal.value
        return Posted(refused=refusal)
    r = RULES["G"]
    result = await post(session, [Draft(
        key=f"redeem:{red.id}", amount=-gift.cost, rule=r.tag, fact_kind="redemption", fact_id=red.id,
        occurred_at=now, talent_id=red.talent_id)])
    gift.stock -= 1
    red.status, red.applied_at, red.pickup_code = "applied", now, f"{secrets.randbelow(10**6):06d}"
    return result


# -- R3 visits in batches ---------------------------------------------------------------------------
async def apply_visits(session: AsyncSession, visit_ids: Sequence[int]) -> int:
    """Apply many visits in the caller's transaction: the worker's batch path, with apply_visit's promises.

    The accepted visits among `visit_ids` are loaded in one query (missing or rejected ones are skipped);
    all their drafts (visit_drafts) are written by one multi-row INSERT .. ON CONFLICT (key) DO NOTHING
    RETURNING key, inside one SAVEPOINT: a key that exists with other figures raises LedgerConflict and
    leaves nothing of the batch written (the caller may then apply its visits one by one with apply_visit).
    `applied_at` is set on every accepted visit that has none, as apply_visit does. Returns how many
    visits got entries from this call (0 when all of them were applied already).

    Few round trips and little per-row Python, for the batch's sake: ids and (on PostgreSQL) the entry
    columns travel as one array/JSON parameter each, instead of one bound parameter per value.
    """
    # Imported here: this function was appended to the module and leaves its header alone.
    import json
    from typing import cast

    from sqlalchemy import BigInteger, ColumnElement, Table, any_, bindparam, column, update

    ids = list(visit_ids)
    if not ids:
        return 0
    pg = dialect_name(session) == "postgresql"

    def among(some: list[int]) -> ColumnElement[bool]:
        """Visit.id in `some`, bound as one parameter (an IN list binds, and renders, one per id)."""
        if pg:
            return Visit.id == any_(bindparam(None, some, type_=postgresql.ARRAY(BigInteger)))
        return Visit.id.in_(select(column("value")).select_from(func.json_each(bindparam(None, json.dumps(some)))))

    # Plain rows, not ORM objects (several times cheaper to load); visit_drafts reads only these columns.
    visits = (await session.execute(select(
        Visit.id, Visit.talent_id, Visit.station_id, Visit.local_day, Visit.scanned_at, Visit.applied_at,
    ).where(among(ids), Visit.status == "accepted").order_by(Visit.id))).all()
    if not visits:
        return 0
    drafts: dict[str, Draft] = {}
    for v in visits:
        for d in visit_drafts(cast(Visit, v)):
            # Two visits of one talent at one station on one local day share a key: the first (lowest id)
            # gets the day's credit, as apply_visit in id order would do; only other figures are an error.
            first = drafts.setdefault(d.key, d)
            if (first.amount, first.station_id, first.talent_id) != (d.amount, d.station_id, d.talent_id):
                raise LedgerConflict(f"entry {d.key!r} drafted twice with other figures")
    recorded_at = utcnow()
    rows = [{"key": d.key, "amount": d.amount, "rule": d.rule, "fact_kind": d.fact_kind, "fact_id": d.fact_id,
             "occurred_at": d.occurred_at, "recorded_at": recorded_at, "station_id": d.station_id,
             "talent_id": d.talent_id, "reverses_id": d.reverses_id, "actor": d.actor, "reason": d.reason}
            for d in drafts.values()]
    table = cast(Table, Entry.__table__)
    if pg:  # INSERT .. SELECT * FROM unnest(one array per column)
        cols = [table.c[name] for name in rows[0]]
        source = func.unnest(*(
            bindparam(None, [r[c.name] for r in rows], type_=postgresql.ARRAY(c.type)) for c in cols
        )).table_valued(*(c.name for c in cols)).render_derived()
        stmt = (insert(session, table).from_select(cols, select(*(source.c[c.name] for c in cols)))
                .on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key))
        params = None
    else:  # executemany, which SQLAlchemy sends as multi-row VALUES pages ("insertmanyvalues")
        stmt = insert(session, table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)
        params = rows
    async with session.begin_nested():
        written = set((await session.execute(stmt, params)).scalars().all())
        if len(written) < len(drafts):
            missing = [d for key, d in drafts.items() if key not in written]
            existing = {key: (amount, sid, tid) for key, amount, sid, tid in (await session.execute(
                select(Entry.key, Entry.amount, Entry.station_id, Entry.talent_id)
                .where(Entry.key.in_([d.key for d in missing])))).all()}
            for d in missing:
                if existing.get(d.key) != (d.amount, d.station_id, d.talent_id):
                    raise LedgerConflict(f"entry {d.key!r} exists with other figures")
        pending = [v.id for v in visits if v.applied_at is None]
        if pending:
            # ORM-enabled with "fetch", so that Visit objects the caller holds in this session see it too.
            await session.execute(
                update(Visit).where(among(pending), Visit.applied_at.is_(None))
                .values(applied_at=recorded_at).execution_options(synchronize_session="fetch"))
    return len({drafts[key].fact_id for key in written})
