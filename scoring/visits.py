"""Check-ins (SPEC 2, R3): a scan is validated, then recorded, accepted or not.

    record_visits(session, scans) -> [Accepted(visit) | Rejected(reason, visit)]   (caller's transaction)
    record_visit(session, scan)   -> Accepted(visit) | Rejected(reason, visit)

Decisions:

- **Every scan is stored**, accepted or rejected, with its reason (fraud analysis needs the refusals).
  A scan by an unbound openid has `talent_id` NULL; a scan with a forged or unknown code has `station_id`
  NULL unless the code names a known station (forgeries aimed at a station are worth seeing).
- **Order of the checks** (`refusal`, the first that fails is the reason): forged code, expired code,
  unknown station, delisted station, sender not bound, staff at their own station (no points, SPEC 3
  "Fraud"), already credited today. An activity's scan (scoring/facts/attendance.py) goes through the
  same checks.
- **One credit per (talent, station, local day)** (R3): an accepted visit carries `credit_key`
  `"{talent}:{station}:{YYYY-MM-DD}"`, UNIQUE in the database; the insert is `ON CONFLICT DO NOTHING`, so
  two processes racing for the same credit cannot both win, and the loser is stored as `already_today`.
  The day is the local (Asia/Shanghai) calendar day of the scan (scoring.facts.visit.credit_key).
- Points are never applied here: the bot enqueues the worker's job for each accepted visit
  (`Accepted.job`) and the worker applies R3 (scoring/facts/visit.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from scoring import periods
from scoring.clock import unix
from scoring.db import insert
from scoring.facts import visit as visit_fact
from scoring.facts.common import Job
from scoring.models import Attendance, Signup, Staff, Station, Talent, Visit
from scoring.tokens import SceneError, parse_scene


class Reason(StrEnum):
    """Why a scan earned nothing; stored in `Visit.reason` and shared by replies, logs and reports."""

    FORGED_CODE = "forged_code"
    EXPIRED_CODE = "expired_code"
    UNKNOWN_STATION = "unknown_station"
    STATION_DELISTED = "station_delisted"
    NOT_BOUND = "not_bound"
    STAFF_OWN_STATION = "staff_own_station"
    ALREADY_TODAY = "already_today"
    UNKNOWN_ACTIVITY = "unknown_activity"
    ACTIVITY_NOT_STARTED = "activity_not_started"
    ACTIVITY_ENDED = "activity_ended"
    ACTIVITY_FULL = "activity_full"


class Source(StrEnum):
    STATION = "station"  # the talent scanned the station's code
    OPERATOR = "operator"  # an operator scanned the talent's personal code
    ACTIVITY = "activity"  # the talent scanned an activity's code


@dataclass(frozen=True)
class Scan:
    """One check-in attempt. `openid` is the person checking in (empty when the talent is named by
    `talent_id` from a personal code: filled in from the talent's binding); `at` is naive UTC.

    The station is named by `station_code` (a scanned station code) or `station_id` (an operator's own
    station, an activity's station); the talent by `talent_id` or else looked up by `openid`.
    `code_error` is set when the scanned code failed verification (FORGED_CODE or EXPIRED_CODE)."""

    openid: str
    at: datetime
    station_code: str | None = None
    station_id: int | None = None
    talent_id: int | None = None
    source: Source = Source.STATION
    activity_id: int | None = None
    operator_openid: str | None = None
    code_error: Reason | None = None


@dataclass(frozen=True, slots=True)
class VisitRecord:
    """A stored scan (a row of `visits`) as the outcome reports it: a plain value, cheap to build for a
    batch, with the same attribute names as `scoring.models.Visit`."""

    id: int
    openid: str
    talent_id: int | None
    station_id: int | None
    activity_id: int | None
    source: str
    scanned_at: datetime
    local_day: date
    status: str
    reason: str | None
    credit_key: str | None
    operator_openid: str | None


@dataclass(frozen=True)
class Accepted:
    visit: VisitRecord
    station_name: str = ""
    talent_name: str = ""  # filled by record_personal_scan (the operator's reply names the talent)

    @property
    def job(self) -> Job:
        """The worker's job that applies this visit (scoring.facts.visit)."""
        return visit_fact.job(self.visit.id)


@dataclass(frozen=True)
class Rejected:
    reason: Reason
    visit: VisitRecord | None = None  # the stored rejected scan
    station_name: str = ""  # when the station is known
    title: str = ""  # an activity's scan: the activity, when it is known (the reply names it)
    starts_at: datetime | None = None


Outcome = Accepted | Rejected


def refusal(code_error: Reason | None, station_status: str | None, talent_id: int | None, staff: bool, *,
            unknown: Reason = Reason.UNKNOWN_STATION, window: Reason | None = None) -> Reason | None:
    """The scan checks, in their order (the first that fails is the reason), for a station's scan and an
    activity's alike: the code, the station (`station_status` None: unknown, `unknown` says which kind of
    code named it), the activity's opening hours (`window`, for an activity scan), the sender's binding,
    staff at their own station. The day's credit (ALREADY_TODAY) is decided by the insert."""
    if code_error is not None:
        return code_error
    if station_status is None:
        return unknown
    if station_status != "active":
        return Reason.STATION_DELISTED
    if window is not None:
        return window
    if talent_id is None:
        return Reason.NOT_BOUND
    if staff:
        return Reason.STAFF_OWN_STATION
    return None


def _claimed_code(scene: str) -> str | None:
    parts = scene.split(":")
    if len(parts) == 3 and parts[0] == "st" and 0 < len(parts[1]) <= 32:
        return parts[1]
    return None


def station_scan(key: bytes, scene: str, openid: str, at: datetime, rotation_s: int = 300) -> Scan:
    """Verify a scanned station scene (`st:<code>:<token>`) and describe the scan; a code that fails
    verification still makes a Scan (with `code_error`), because the refusal is stored too."""
    parsed = parse_scene(key, scene, unix(at), rotation_s)
    if isinstance(parsed, SceneError) or parsed.kind != "station":
        error = Reason.EXPIRED_CODE if parsed is SceneError.EXPIRED else Reason.FORGED_CODE
        return Scan(openid=openid, at=at, station_code=_claimed_code(scene), code_error=error)
    return Scan(openid=openid, at=at, station_code=parsed.ref)


# The hot path's statements, built once: building and cache-keying a statement per batch costs more than
# running it. IN lists are expanding parameters (`keys`).
_ST, _TL, _SF, _VT = Station.__table__.c, Talent.__table__.c, Staff.__table__.c, cast(Table, Visit.__table__)
_STATIONS_BY_CODE = select(_ST.id, _ST.code, _ST.status, _ST.name).where(
    _ST.code.in_(bindparam("keys", expanding=True)))
_STATIONS_BY_ID = select(_ST.id, _ST.code, _ST.status, _ST.name).where(_ST.id.in_(bindparam("keys", expanding=True)))
_TALENTS_BY_ID = select(_TL.id, _TL.openid).where(_TL.id.in_(bindparam("keys", expanding=True)))
# Who is bound (a talent), and staff of which station (a talent may also be staff).
_WHO = select(_TL.id, _TL.openid, _SF.station_id).select_from(Talent.__table__.outerjoin(Staff.__table__, and_(
    _SF.openid == _TL.openid, _SF.active.is_(True), _SF.station_id.is_not(None)))).where(
    _TL.openid.in_(bindparam("keys", expanding=True)))
_INSERTS: dict[str, tuple[Any, Any]] = {}


def _inserts(dialect: str) -> tuple[Any, Any]:
    """(accepted insert: ON CONFLICT (credit_key) DO NOTHING RETURNING id, credit_key; plain insert
    RETURNING id in parameter order) for the dialect, built once."""
    if dialect not in _INSERTS:
        _INSERTS[dialect] = (
            insert(dialect, _VT).on_conflict_do_nothing(index_elements=["credit_key"])
            .returning(_VT.c.id, _VT.c.credit_key),
            insert(dialect, _VT).returning(_VT.c.id, sort_by_parameter_order=True))
    return _INSERTS[dialect]


def personal_code_scan(key: bytes, scene: str, *, operator_openid: str, station_id: int, at: datetime) -> Scan:
    """An operator scanned a talent's personal code (`tl:<token>`, the talent's 我的码) at their station:
    the scan to record (source operator). A code that fails verification still makes a Scan, with
    `code_error` (FORGED_CODE, or EXPIRED_CODE after its ten minutes)."""
    parsed = parse_scene(key, scene, unix(at))
    base = Scan(openid="", at=at, station_id=station_id, source=Source.OPERATOR, operator_openid=operator_openid)
    if isinstance(parsed, SceneError) or parsed.kind != "talent":
        return replace(base, code_error=Reason.EXPIRED_CODE if parsed is SceneError.EXPIRED else Reason.FORGED_CODE)
    return replace(base, talent_id=int(parsed.ref))


def _row(scan: Scan, talent_id: int | None, station_id: int | None, reason: Reason | None) -> dict[str, Any]:
    accepted = reason is None
    day = periods.local_day(scan.at)
    return {
        "openid": scan.openid, "talent_id": talent_id, "station_id": station_id, "activity_id": scan.activity_id,
        "source": str(scan.source), "scanned_at": scan.at, "local_day": day,
        "status": "accepted" if accepted else "rejected", "reason": None if accepted else str(reason),
        "credit_key": visit_fact.credit_key(talent_id, station_id, day)
        if accepted and talent_id is not None and station_id is not None else None,
        "operator_openid": scan.operator_openid,
    }


def record_visits_sync(session: Session, scans: Sequence[Scan]) -> list[Outcome]:
    """Validate and store many scans in the caller's transaction, with a few statements for all of them
    (the bot's group commit writes a batch of concurrent scans in one transaction). Outcomes are in the
    order of `scans`; the caller commits, then enqueues each Accepted's `job`.

    Synchronous, so that a batch can run in one hop to a database thread (bot/batcher.py on SQLite);
    `record_visits` runs the same code on an AsyncSession. Core statements on the tables, not ORM ones:
    this is the bot's hottest path."""
    if not scans:
        return []
    conn = session.connection()  # Core execution: none of the ORM session's per-statement work
    codes = list({s.station_code for s in scans if s.station_code and s.station_id is None})
    ids = list({s.station_id for s in scans if s.station_id is not None})
    stations: dict[str | int, tuple[int, str, str]] = {}
    for stmt, values in ((_STATIONS_BY_CODE, codes), (_STATIONS_BY_ID, ids)):
        if values:
            for found_id, code, status, name in conn.execute(stmt, {"keys": values}).all():
                stations[code] = stations[found_id] = (found_id, status, name)
    # A personal code names the talent by id: the openid (who checks in) is the talent's bound one.
    by_id = {s.talent_id for s in scans if s.talent_id is not None and not s.openid}
    if by_id:
        bound = {tid: o for tid, o in conn.execute(_TALENTS_BY_ID, {"keys": list(by_id)}).all()}
        scans = [replace(s, openid=bound.get(s.talent_id) or "", talent_id=s.talent_id if bound.get(s.talent_id)
                         else None) if s.talent_id in by_id and not s.openid else s for s in scans]
    # Who is bound, and who is staff of which station: one query (a talent may also be staff).
    talents: dict[str, int] = {}
    staff: set[tuple[str, int | None]] = set()
    rows = conn.execute(_WHO, {"keys": list({s.openid for s in scans})}).all()
    for tid, openid, staff_station in rows:
        talents[openid] = tid
        if staff_station is not None:
            staff.add((openid, staff_station))

    decided: list[tuple[Scan, int | None, int | None, Reason | None]] = []
    names: list[str] = []
    for scan in scans:
        known = stations.get(scan.station_id) if scan.station_id is not None else \
            stations.get(scan.station_code) if scan.station_code else None
        station_id = known[0] if known else None
        talent_id = scan.talent_id if scan.talent_id is not None else talents.get(scan.openid)
        reason = refusal(scan.code_error, known[1] if known else None, talent_id,
                         known is not None and (scan.openid, known[0]) in staff)
        decided.append((scan, talent_id, station_id, reason))
        names.append(known[2] if known else "")

    # Accepted candidates: one INSERT .. ON CONFLICT (credit_key) DO NOTHING; the losers (credited
    # earlier, by another scan of this batch, or by another process right now) are already_today.
    candidates: dict[str, dict[str, Any]] = {}
    keys: list[str | None] = []
    for scan, tid, sid, reason in decided:
        key = None
        if reason is None:
            row = _row(scan, tid, sid, None)
            key = row["credit_key"]
            candidates.setdefault(key, row)
        keys.append(key)
    # Core statements run as executemany ("insertmanyvalues"): one cached compiled statement for any
    # batch size, no ORM flush; the outcomes carry VisitRecords built from the same rows.
    credit_insert, plain_insert = _inserts(conn.dialect.name)
    won: dict[str, int] = {}
    if candidates:
        won = {key: vid for vid, key in conn.execute(credit_insert, list(candidates.values())).all()}

    outcomes: list[Outcome | None] = []
    rejected_rows: list[dict[str, Any]] = []
    rejected_at: list[int] = []
    taken: set[str] = set()
    for i, (scan, tid, sid, reason) in enumerate(decided):
        key = keys[i]
        if key is not None:
            if key in won and key not in taken:
                taken.add(key)
                outcomes.append(Accepted(VisitRecord(id=won[key], **candidates[key]), names[i]))
                continue
            reason = Reason.ALREADY_TODAY
        outcomes.append(None)
        rejected_rows.append(_row(scan, tid, sid, reason))
        rejected_at.append(i)
    if rejected_rows:
        new_ids = conn.scalars(plain_insert, rejected_rows).all()
        for i, vid, row in zip(rejected_at, new_ids, rejected_rows, strict=True):
            outcomes[i] = Rejected(Reason(row["reason"]), VisitRecord(id=vid, **row), names[i])
    return [o for o in outcomes if o is not None]


async def record_visits(session: AsyncSession, scans: Sequence[Scan]) -> list[Outcome]:
    """`record_visits_sync` on an AsyncSession (same statements, same transaction)."""
    return await session.run_sync(record_visits_sync, scans)


async def record_visit(session: AsyncSession, scan: Scan) -> Outcome:
    """One scan: see `record_visits`."""
    return (await record_visits(session, [scan]))[0]


async def record_personal_scan(session: AsyncSession, scan: Scan) -> Outcome:
    """An operator's scan of a talent's personal code (`personal_code_scan`): `record_visit`, and the
    talent's name when accepted (the operator's reply names them)."""
    outcome = await record_visit(session, scan)
    if isinstance(outcome, Accepted) and outcome.visit.talent_id is not None:
        name = await session.scalar(select(Talent.name).where(Talent.id == outcome.visit.talent_id))
        return replace(outcome, talent_name=name or "")
    return outcome


async def store_rejected(session: AsyncSession, scan: Scan, talent_id: int | None, station_id: int | None,
                         reason: Reason) -> Rejected:
    """Store one refused scan (every scan is stored) and say why."""
    row = _row(scan, talent_id, station_id, reason)
    vid = (await session.execute(insert(session, _VT).values(row).returning(_VT.c.id))).scalar_one()
    return Rejected(reason, VisitRecord(id=vid, **row))


async def seats_taken(session: AsyncSession, activity_id: int) -> int:
    """An activity's seats in use: active sign-ups plus walk-in attendances (attendees without one)."""
    signed = (await session.scalars(select(Signup.talent_id).where(
        Signup.activity_id == activity_id, Signup.cancelled_at.is_(None)))).all()
    attended = (await session.scalars(select(Attendance.talent_id).where(
        Attendance.activity_id == activity_id))).all()
    return len(set(signed) | set(attended))
