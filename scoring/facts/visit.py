"""R3 visit [A1.2]: a talent who checks in at a station (scans its code, has their personal code scanned by
an operator, or attends an activity there) earns the station +1 and themselves +1, once per (talent,
station, local calendar day).

- **The credit**: `credit_key` (talent, station, Asia/Shanghai day) is the one definition of "once a
  day". The recorded visit carries it (UNIQUE: scoring/visits.py stores only the first accepted scan of the
  day as accepted) and the entries' keys are made of it (`visit:{credit key}#station|#talent`), so a visit
  that slipped through twice still earns once.
- **On the way in** (`apply_batch`): a visit is screened by the fraud rules (scoring/fraud.py); a held
  visit earns nothing until an admin releases the hold (then it is credited unscreened) or voids it; a
  visit voided before it was applied earns nothing. The hold is told to the station, the admins and the
  talent (who was told "打卡成功": the points come once the check is done).
- **Batches**: the worker's `apply(visit)` takes its visit and up to BATCH - 1 other pending visits into
  one transaction (one commit, a few statements for all of them: the hot path); `apply` is the same for
  one visit. `credit` posts the entries of visits that passed screening (the rule alone; the benchmarks
  measure it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, cast

from sqlalchemy import BigInteger, ColumnElement, and_, any_, bindparam, column, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import fraud, ledger
from scoring.clock import utcnow
from scoring.db import dialect_name, lock
from scoring.dead_letters import blocks
from scoring.facts.common import DEFAULT, Applied, Audience, Job, Notice, NoticeKind, Params, Refusal, Refused
from scoring.ledger import Draft
from scoring.models import Entry, Flag, Visit, Void
from scoring.rules import RULES

KIND: Final = "visit"
BATCH: Final = 500  # visits per transaction in the worker


def credit_key(talent_id: int, station_id: int, day: date) -> str:
    """R3's "once per talent, station and local day" (`day` is the Asia/Shanghai calendar day)."""
    return f"{talent_id}:{station_id}:{day.isoformat()}"


def drafts(visit: Visit) -> list[Draft]:
    """The two legs of a visit's credit (reads id, talent_id, station_id, local_day, scanned_at)."""
    assert visit.talent_id is not None and visit.station_id is not None
    r = RULES["R3"]
    key = f"{KIND}:{credit_key(visit.talent_id, visit.station_id, visit.local_day)}"
    return [
        Draft(key=key + "#station", amount=r.station, rule=r.tag, fact_kind=KIND, fact_id=visit.id,
              occurred_at=visit.scanned_at, station_id=visit.station_id),
        Draft(key=key + "#talent", amount=r.talent, rule=r.tag, fact_kind=KIND, fact_id=visit.id,
              occurred_at=visit.scanned_at, talent_id=visit.talent_id),
    ]


def job(visit_id: int, *, release: int | None = None) -> Job:
    """`visit:{id}`; after an admin released a hold, `visit:{id}:release{flag}` (a new job)."""
    return Job(KIND, visit_id, "" if release is None else f"release{release}")


def _among(pg: bool, ids: list[int]) -> ColumnElement[bool]:
    """Visit.id in `ids`, bound as one parameter (an IN list binds, and renders, one per id)."""
    if pg:
        return Visit.id == any_(bindparam(None, ids, type_=postgresql.ARRAY(BigInteger)))
    return Visit.id.in_(select(column("value")).select_from(func.json_each(bindparam(None, json.dumps(ids)))))


async def credit(session: AsyncSession, visit_ids: Sequence[int]) -> int:
    """Post R3's entries for the accepted visits among `visit_ids` (missing or rejected ones are skipped),
    with one multi-row INSERT for all of them (ledger.post), and mark each applied. Returns how many
    visits got entries from this call (0 when all of them were credited already). A key that exists with
    other figures raises LedgerConflict and leaves nothing of the batch written.

    Plain rows, not ORM objects, and the ids as one parameter: this runs for every visit."""
    ids = list(visit_ids)
    if not ids:
        return 0
    pg = dialect_name(session) == "postgresql"
    visits = (await session.execute(select(
        Visit.id, Visit.talent_id, Visit.station_id, Visit.local_day, Visit.scanned_at, Visit.applied_at,
    ).where(_among(pg, ids), Visit.status == "accepted").order_by(Visit.id))).all()
    if not visits:
        return 0
    # Two visits of one talent at one station on one local day share a key: the first (lowest id) gets
    # the day's credit, as applying them one by one in id order would.
    fact_of: dict[str, int] = {}
    all_drafts = []
    for v in visits:
        for d in drafts(cast(Visit, v)):
            fact_of.setdefault(d.key, v.id)
            all_drafts.append(d)
    posted = await ledger.post(session, all_drafts)
    pending = [v.id for v in visits if v.applied_at is None]
    if pending:
        # ORM-enabled with "fetch", so that Visit objects the caller holds in this session see it too.
        await session.execute(
            update(Visit).where(_among(pg, pending), Visit.applied_at.is_(None))
            .values(applied_at=utcnow()).execution_options(synchronize_session="fetch"))
    return len({fact_of[key] for key in posted.written})


async def _pending(session: AsyncSession, *, limit: int, exclude: int) -> list[Visit]:
    """Other visits to apply now, oldest first; on PostgreSQL those another worker holds are skipped."""
    stmt = select(Visit).where(_unapplied(), Visit.id != exclude).order_by(Visit.id).limit(limit)
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await session.scalars(stmt)).all())


def _unapplied() -> ColumnElement[bool]:
    return and_(Visit.status == "accepted", Visit.applied_at.is_(None), ~fraud.OPEN_HOLD, ~blocks(KIND, Visit.id))


async def unapplied(session: AsyncSession, *, cutoff: datetime, now: datetime, params: Params = DEFAULT,
                    limit: int = 5000) -> list[int]:
    """Accepted visits scanned before `cutoff` and not applied: not held, not dead-lettered."""
    return list((await session.scalars(select(Visit.id).where(_unapplied(), Visit.scanned_at < cutoff)
                                       .order_by(Visit.id).limit(limit))).all())


@dataclass
class Batch:
    """What `apply_batch` did. `visit_ids`: every visit it looked at, the one asked for first; `refused`:
    those that earn nothing (now: HELD, or ever: NOT_ACCEPTED, VOIDED); `credited`: those in the ledger
    (now or before), whose `entries` are all here; `written`: visits credited by this call."""

    visit_ids: list[int] = field(default_factory=list)
    credited: list[int] = field(default_factory=list)
    refused: dict[int, Refusal] = field(default_factory=dict)
    flagged: list[int] = field(default_factory=list)
    written: int = 0
    entries: list[Entry] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    @property
    def held(self) -> list[int]:
        return [i for i, r in self.refused.items() if r is Refusal.HELD]

    @property
    def settled(self) -> list[int]:
        """The visits that need no more work (a held one waits for an admin)."""
        return self.credited + [i for i, r in self.refused.items() if r is not Refusal.HELD]


async def apply_batch(session: AsyncSession, visit_id: int, params: Params = DEFAULT, *, limit: int = BATCH,
                      now: datetime | None = None) -> Batch:
    """Apply visit `visit_id` and up to `limit - 1` other pending visits, in the caller's transaction."""
    now = now or utcnow()
    out = Batch()
    target = await lock(session, Visit, visit_id)  # against a void of the same visit
    visits = ([target] if target is not None else []) + (
        await _pending(session, limit=limit - 1, exclude=visit_id) if limit > 1 else [])
    out.visit_ids = [v.id for v in visits]
    if not visits:
        return out
    flags: dict[int, list[Flag]] = defaultdict(list)
    for f in (await session.scalars(select(Flag).where(Flag.visit_id.in_(out.visit_ids)))).all():
        assert f.visit_id is not None
        flags[f.visit_id].append(f)
    voided = set((await session.scalars(select(Void.target_id).where(
        Void.target_kind == KIND, Void.target_id.in_(out.visit_ids)))).all())
    to_credit: list[Visit] = []
    to_screen: list[Visit] = []
    for v in visits:
        holds = [f for f in flags[v.id] if f.hold]
        if v.status != "accepted" or v.talent_id is None or v.station_id is None:
            out.refused[v.id] = Refusal.NOT_ACCEPTED
        elif any(f.status == "open" for f in holds):
            out.refused[v.id] = Refusal.HELD
        elif v.id in voided or any(f.status == "voided" for f in holds):
            v.applied_at = v.applied_at or now  # handled: it gets no points
            out.refused[v.id] = Refusal.VOIDED
        elif v.applied_at is not None or any(f.status == "released" for f in holds):
            to_credit.append(v)
        else:
            to_screen.append(v)
    held, marks = await fraud.screen(session, to_screen, params.fraud)
    for v in to_screen:
        if v.id in held:
            stations, numbers = held[v.id]
            flag_id = await fraud.add_flag(session, rule=fraud.MULTI_STATION, hold=True, visit=v, params=numbers)
            out.refused[v.id] = Refusal.HELD
            if flag_id is not None:
                out.notices += _hold_notices(flag_id, v, stations, params)
            continue
        if v.id in marks and await fraud.add_flag(session, rule=fraud.DAILY_VOLUME, hold=False, visit=v,
                                                  params=marks[v.id]):
            out.flagged.append(v.id)
        to_credit.append(v)
    if to_credit:
        out.credited = [v.id for v in to_credit]
        out.written = await credit(session, out.credited)
        out.entries = await ledger.entries_of(session, KIND, out.credited)
    return out


def _hold_notices(flag_id: int, visit: Visit, stations: int, params: Params) -> list[Notice]:
    data: dict[str, int | str | None] = {
        "flag_id": flag_id, "visit_id": visit.id, "talent_id": visit.talent_id, "stations": stations,
        "minutes": params.fraud.multi_station_minutes}
    return [Notice(NoticeKind.HOLD, Audience.STATION, visit.station_id, f"hold:{flag_id}", data),
            Notice(NoticeKind.HOLD, Audience.ADMINS, None, f"hold:{flag_id}", data),
            Notice(NoticeKind.HOLD, Audience.TALENT, visit.talent_id, f"talent-hold:{flag_id}", data)]


async def apply(session: AsyncSession, visit_id: int, params: Params = DEFAULT, *,
                now: datetime | None = None) -> Applied | Refused:
    """Apply one visit (`apply_batch` of one)."""
    b = await apply_batch(session, visit_id, params, limit=1, now=now)
    if visit_id in b.refused:
        return Refused(b.refused[visit_id], tuple(b.notices))
    if visit_id not in b.credited:
        return Refused(Refusal.NOT_FOUND)
    return Applied(b.entries, tuple(b.notices), written=2 * b.written)  # two legs per visit credited


def describe(b: Batch, visit_id: int) -> str:
    """The worker's job result for the visit it was asked for."""
    outcome = "held" if visit_id in b.held else "settled" if visit_id in set(b.settled) else "skipped"
    return f"{outcome} (batch of {len(b.visit_ids)}, {b.written} new)"

