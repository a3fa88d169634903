"""The policy's calendar: month close, plan reminders, activity reminders and satisfaction invitations.

Every function takes the time as `now` (naive UTC) so the worker's cron jobs and the tests drive the same
code; every one is safe to run twice (deterministic outbox keys, work markers on the rows).

Decisions (SPEC 3 "Monthly feature", "Monthly plan", "Satisfaction"):

- **Month close** of M is allowed from 00:00 local on day 1 of M+1. It snapshots M's station board (as
  `scoring.boards.station_board` ranks it at that moment) into `BoardSnapshot(scope station, kind month)`,
  records `MonthClose` with the station featured in M+1, and queues the month report for the operators of
  every ranked station. Entries that reach month M later (a void, a late report) change the live board,
  not the snapshot nor the feature: a closed month stays closed.
- **Feature**: the first station of the board's display order (rank 1; a tie goes to who reached the
  score first, then the code, SPEC 3). A station with 0 points or fewer is never featured: with an empty
  or all-zero board M+1 has no featured station (`featured_station_id` NULL).
- **Change vs the previous month** in the report comes from M-1's snapshot, or M-1's live board when M-1
  was never closed.
- Stations not ranked in M (not yet eligible, delisted) get no month report.
- **Plan reminder**: on day 25 of M-1 each active station with no published activity starting in M is
  reminded (its operators, template message). Sent at 09:00 local by the worker, not at midnight.
- **Activity reminder**: each signed-up talent (bound, sign-up not cancelled) of a published activity
  starting within the next hour. Every run looks at all activities starting within the hour, so a talent
  who signs up after the first run still hears; `Activity.reminded_at` marks the first run.
- **Satisfaction invitation**: at an activity's end each attendee (bound talent) gets a customer-service
  message asking for 1-5 within 48 h of the end, and a pending invitation in Redis
  (`scoring.invitations`). `Activity.invited_at` marks the activity done; an attendance recorded after
  that is not invited. An activity whose 48 h have already passed (worker down) is marked, not invited.

Outbox keys (one row per recipient, so each key ends with the recipient's openid):
`monthclose:{station_id}:{YYYY-MM}:{openid}`, `plan:{station_id}:{YYYY-MM}:{openid}` (M, the planned month),
`remind:{activity_id}:{talent_id}`, `invite:{activity_id}:{talent_id}`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import invitations, outbox
from scoring.boards import station_board
from scoring.clock import unix
from scoring.db import insert
from scoring.models import (
    Activity,
    Attendance,
    BoardSnapshot,
    MonthClose,
    Notification,
    Signup,
    Staff,
    Station,
    Talent,
)
from scoring.periods import Period, month_key, next_month, previous_month, to_local
from scoring.ranking import Ranked
from scoring.texts import local_label, month_label
from scoring.texts import operator as operator_texts
from scoring.texts import talent as talent_texts

REMIND_BEFORE = timedelta(hours=1)
INVITE_WINDOW = timedelta(seconds=invitations.INVITE_WINDOW_S)
INVITE_BATCH = 200  # activities invited per run (every minute): a backlog goes in steps, never one huge transaction

async def operators(session: AsyncSession, station_ids: list[int] | None = None) -> dict[int, list[str]]:
    """{station_id: [operator openids]} of active operators (all stations when `station_ids` is None)."""
    stmt = select(Staff.station_id, Staff.openid).where(Staff.role == "operator", Staff.active.is_(True))
    if station_ids is not None and len(station_ids) < 1000:
        stmt = stmt.where(Staff.station_id.in_(station_ids))
    out: dict[int, list[str]] = defaultdict(list)
    for sid, openid in (await session.execute(stmt.order_by(Staff.id))).all():
        if sid is not None:
            out[sid].append(openid)
    return out


async def _existing_keys(session: AsyncSession, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        found.update((await session.scalars(select(Notification.key).where(Notification.key.in_(chunk)))).all())
    return found


# -- Month close -----------------------------------------------------------------------------------------
class CloseRefusal(StrEnum):
    BAD_PERIOD = "bad_period"
    NOT_ENDED = "not_ended"


@dataclass(frozen=True)
class CloseRefused:
    reason: CloseRefusal
    detail: str


@dataclass(frozen=True)
class BoardRow:
    rank: int
    station_id: int
    code: str
    name: str
    points: int


@dataclass(frozen=True)
class MonthClosed:
    period: str
    featured_month: str
    featured_station_id: int | None
    board: list[BoardRow]
    already: bool  # closed before: nothing was changed or queued now
    notified: int = 0


def month_ends_at(key: str) -> datetime:
    """00:00 local on day 1 of the next month, as naive UTC: when month `key` may be closed."""
    end = Period("month", key).bounds()[1]
    assert end is not None
    return end


async def snapshot_rows(session: AsyncSession, key: str) -> list[BoardRow]:
    rows = (await session.execute(
        select(BoardSnapshot.rank, BoardSnapshot.account_id, Station.code, Station.name, BoardSnapshot.points)
        .join(Station, Station.id == BoardSnapshot.account_id)
        .where(BoardSnapshot.scope == "station", BoardSnapshot.kind == "month", BoardSnapshot.period == key)
        .order_by(BoardSnapshot.id))).all()
    return [BoardRow(r, sid, code, name, p) for r, sid, code, name, p in rows]


async def is_closed(session: AsyncSession, key: str) -> bool:
    return await session.get(MonthClose, key) is not None


def featured(board: list[Ranked]) -> Ranked | None:
    """The station featured for the next month: first in display order, with more than 0 points."""
    return board[0] if board and board[0].rank == 1 and board[0].points > 0 else None


async def month_close(session: AsyncSession, key: str, now: datetime) -> MonthClosed | CloseRefused:
    """Close month `key` ("YYYY-MM"): snapshot, feature, reports. Run it inside one transaction."""
    try:
        period = Period.parse("month", key)
    except ValueError as err:
        return CloseRefused(CloseRefusal.BAD_PERIOD, str(err))
    ends = month_ends_at(period.key)
    if now < ends:
        return CloseRefused(CloseRefusal.NOT_ENDED,
                            f"{period.key} has not ended: it can be closed from {to_local(ends):%Y-%m-%d %H:%M} "
                            "Asia/Shanghai")
    done = await session.get(MonthClose, period.key)
    if done is not None:
        return MonthClosed(period.key, done.featured_month, done.featured_station_id,
                           await snapshot_rows(session, period.key), already=True)

    board = await station_board(session, period, now=ends)
    top = featured(board)
    nxt = next_month(period.key)
    # The MonthClose row goes first: a concurrent close of the same month waits on it, then does nothing.
    claimed = (await session.execute(
        insert(session, MonthClose).values(period=period.key, closed_at=now, featured_month=nxt,
                                            featured_station_id=top.standing.id if top else None)
        .on_conflict_do_nothing(index_elements=["period"]).returning(MonthClose.period))).first()
    if claimed is None:
        done = await session.get(MonthClose, period.key, populate_existing=True)
        assert done is not None
        return MonthClosed(period.key, done.featured_month, done.featured_station_id,
                           await snapshot_rows(session, period.key), already=True)

    rows = [BoardRow(r.rank, r.standing.id, r.code, r.standing.name, r.points) for r in board]
    if rows:
        await session.execute(
            insert(session, BoardSnapshot).on_conflict_do_nothing(
                index_elements=["scope", "kind", "period", "account_id"]),
            [{"scope": "station", "kind": "month", "period": period.key, "account_id": r.station_id,
              "rank": r.rank, "points": r.points, "created_at": now} for r in rows])

    previous = {r.station_id: r for r in await snapshot_rows(session, previous_month(period.key))}
    if not previous:
        prev_board = await station_board(session, Period("month", previous_month(period.key)),
                                         now=month_ends_at(previous_month(period.key)))
        previous = {r.standing.id: BoardRow(r.rank, r.standing.id, r.code, r.standing.name, r.points)
                    for r in prev_board}
    ops = await operators(session, [r.station_id for r in rows])
    featured_name = top.standing.name if top else operator_texts.NO_FEATURE
    notified = 0
    for row in rows:
        before = previous.get(row.station_id)
        delta = row.points - before.points if before else 0
        change = operator_texts.CHANGE.format(rank=before.rank, delta=f"{delta:+d}") if before \
            else operator_texts.CHANGE_NEW
        words = {"name": row.name, "month": month_label(period.key), "points": row.points, "rank": row.rank,
                 "change": change, "next_month": month_label(nxt), "featured": featured_name}
        is_top = top is not None and top.standing.id == row.station_id
        text = (operator_texts.MONTH_REPORT_FEATURED if is_top else operator_texts.MONTH_REPORT).format(**words)
        payload = {"text": text, "template": "month_report",
                   "data": {"period": period.key, "rank": row.rank, "points": row.points,
                            "previous_rank": before.rank if before else None, "change": delta,
                            "featured": featured_name, "featured_month": nxt}}
        for openid in ops.get(row.station_id, []):
            notified += await outbox.add(session, f"monthclose:{row.station_id}:{period.key}:{openid}", openid,
                                         payload)
    return MonthClosed(period.key, nxt, top.standing.id if top else None, rows, already=False, notified=notified)


async def featured_months(session: AsyncSession, station_id: int) -> list[str]:
    """The months ("YYYY-MM") a station is or was featured in."""
    return list((await session.scalars(select(MonthClose.featured_month).where(
        MonthClose.featured_station_id == station_id).order_by(MonthClose.featured_month))).all())


# -- Plan reminders ----------------------------------------------------------------------------------------
async def plan_reminders(session: AsyncSession, now: datetime) -> int:
    """Remind operators of active stations with no published activity in next month. Returns rows queued."""
    month = next_month(month_key(now))
    start, end = Period("month", month).bounds()
    planned = exists().where(Activity.station_id == Station.id, Activity.status == "published",
                             Activity.starts_at >= start, Activity.starts_at < end)
    stations = (await session.execute(select(Station.id, Station.name).where(
        Station.status == "active", ~planned).order_by(Station.id))).all()
    ops = await operators(session, [sid for sid, _ in stations])
    queued = 0
    for sid, name in stations:
        text = operator_texts.PLAN_REMINDER.format(name=name, month=month_label(month))
        for openid in ops.get(sid, []):
            queued += await outbox.add(session, f"plan:{sid}:{month}:{openid}", openid,
                                       {"text": text, "template": "plan_reminder", "data": {"month": month}})
    return queued


# -- Activity reminders ------------------------------------------------------------------------------------
@dataclass
class Sent:
    activities: int = 0
    queued: int = 0
    invited: list[tuple[str, int, datetime]] = field(default_factory=list)  # (openid, activity, deadline)


async def activity_reminders(session: AsyncSession, now: datetime, before: timedelta = REMIND_BEFORE) -> Sent:
    """Remind signed-up talents of published activities starting within `before`."""
    acts = (await session.scalars(select(Activity).where(
        Activity.status == "published", Activity.starts_at > now, Activity.starts_at <= now + before)
        .order_by(Activity.id))).all()
    out = Sent()
    for act in acts:
        talents = (await session.execute(select(Talent.id, Talent.openid).join(
            Signup, Signup.talent_id == Talent.id).where(
            Signup.activity_id == act.id, Signup.cancelled_at.is_(None), Talent.openid.is_not(None))
            .order_by(Talent.id))).all()
        keys = {tid: f"remind:{act.id}:{tid}" for tid, _ in talents}
        sent = await _existing_keys(session, list(keys.values()))
        text = talent_texts.ACTIVITY_REMINDER.format(title=act.title, time=local_label(act.starts_at))
        for tid, openid in talents:
            if openid is not None and keys[tid] not in sent:
                out.queued += await outbox.add(session, keys[tid], openid, {
                    "text": text, "template": "activity_reminder",
                    "data": {"activity_id": act.id, "title": act.title, "starts_at": act.starts_at.isoformat()}})
        if act.reminded_at is None:
            act.reminded_at = now
        out.activities += 1
    return out


# -- Satisfaction invitations ------------------------------------------------------------------------------

async def satisfaction_invitations(session: AsyncSession, now: datetime, redis: Any | None = None) -> Sent:
    """Invite each attendee of activities that ended and were not yet invited.

    With `redis`, each pending invitation is also stored for the bot (before the transaction commits, so a
    crash can only repeat it, harmlessly)."""
    due = (Activity.status == "published", Activity.invited_at.is_(None))
    out = Sent()
    # Activities whose answer window has already closed (after a long worker outage, or an imported history)
    # are only marked, in one statement; the rest in steps of INVITE_BATCH, the next run taking the next step
    # (found by bench/scale.py: 240,000 such activities in one transaction held the worker for minutes).
    closed = await session.execute(update(Activity).where(*due, Activity.ends_at <= now - INVITE_WINDOW)
                                   .values(invited_at=now).execution_options(synchronize_session=False))
    out.activities += max(closed.rowcount or 0, 0)  # type: ignore[attr-defined]
    acts = (await session.scalars(select(Activity).where(*due, Activity.ends_at <= now)
                                  .order_by(Activity.id).limit(INVITE_BATCH))).all()
    for act in acts:
        act.invited_at = now
        out.activities += 1
        deadline = act.ends_at + INVITE_WINDOW
        if deadline <= now:
            continue
        talents = (await session.execute(select(Talent.id, Talent.openid).join(
            Attendance, Attendance.talent_id == Talent.id).where(
            Attendance.activity_id == act.id, Talent.openid.is_not(None)).order_by(Talent.id))).all()
        text = talent_texts.INVITATION.format(title=act.title, deadline=local_label(deadline))
        for tid, openid in talents:
            if openid is None:
                continue
            out.queued += await outbox.add(session, f"invite:{act.id}:{tid}", openid, {
                "text": text, "activity_id": act.id, "deadline": deadline.isoformat()}, channel="custom")
            out.invited.append((openid, act.id, deadline))
            if redis is not None:
                await invitations.invite(redis, openid, act.id, unix(deadline))
    return out

