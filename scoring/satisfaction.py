"""Satisfaction replies (SPEC 3, "Satisfaction"): after an activity each attendee is invited (the worker,
scoring.calendar) to reply 1-5 with an optional comment within 48 hours.

- `parse_answer` reads a bare score: "5", "4 很好", "2分，太吵了", "３" (full-width digits too).
- `answer` picks the invitation an answer belongs to: the talent's pending invitation (scoring.invitations)
  with the earliest deadline that is not answered yet; invitations that turn out stale (not an attendee,
  the activity gone) are closed on the way.
- One answer per attendee per activity (Satisfaction is UNIQUE on (activity, talent); the insert is
  `ON CONFLICT DO NOTHING`, so a second answer, even a concurrent one, is reported as already recorded).
- A score of `LOW_SCORE` or less alerts the station's operators at once: an outbox row per operator, key
  `lowscore:{activity}:{talent}:{openid}`, written in the same transaction as the answer (no operators:
  the active admins). The worker delivers it.
- The rated station never learns who rated it: the operators' alert (`alert_text`) and its payload carry
  the score and the comment, not the talent. Admins may see who: the admins' alert (`admin_alert_text`,
  when the station has no operators) names the talent, and `low_scores` lists recent low scores with names.
- Satisfaction rate = share of replies >= 4.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import invitations, outbox
from scoring.clock import unix
from scoring.db import insert
from scoring.models import Activity, Attendance, Satisfaction, Staff, Station, Talent

LOW_SCORE: Final = 2
MAX_COMMENT: Final = 500
ANSWER_RE: Final = re.compile(r"\s*([1-5])\s*(?:分|星|颗星)?(?:$|[\s,，.。、;；:：!！~～-]+(.*))", re.S)


def parse_answer(text: str) -> tuple[int, str] | None:
    """(score, comment) for a bare 1-5 with an optional comment, else None. The score and the separators are
    read after NFKC normalisation (full-width digits, "２分，"); the comment keeps the talent's own
    characters ("太吵了，听不清" stays with its full-width comma)."""
    normalised, origin = _nfkc_with_origin(text)
    m = ANSWER_RE.fullmatch(normalised)
    if m is None:
        return None
    comment = text[origin[m.start(2)]:] if m.group(2) is not None else ""
    return int(m.group(1)), comment.strip()[:MAX_COMMENT]


def _nfkc_with_origin(text: str) -> tuple[str, list[int]]:
    """NFKC of `text` character by character, and for each normalised position the index of the original
    character it came from (plus one past the end)."""
    parts: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        n = unicodedata.normalize("NFKC", ch)
        parts.append(n)
        origin += [i] * len(n)
    origin.append(len(text))
    return "".join(parts), origin


class SatisfactionRefusal(StrEnum):
    ALREADY = "already"
    NOT_ATTENDED = "not_attended"
    NOT_FOUND = "not_found"
    NOT_INVITED = "not_invited"  # no pending invitation to answer


@dataclass(frozen=True)
class Recorded:
    satisfaction: Satisfaction
    activity: Activity
    alerted: int  # operators (or admins) told of a low score
    more: int = 0  # other pending invitations still unanswered (from `answer`)


@dataclass(frozen=True)
class SatisfactionRefused:
    reason: SatisfactionRefusal
    activity: Activity | None = None


async def record(session: AsyncSession, *, talent_id: int, activity_id: int, score: int, comment: str,
                 now: datetime, alert_text: str, admin_alert_text: str | None = None
                 ) -> Recorded | SatisfactionRefused:
    """Store one answer in the caller's transaction. `alert_text` is the operators' message for a low
    score, with str.format fields {station} {title} {score} {comment} (the talent's {name} and {cert_no}
    are given to it empty: operators are not told who); `admin_alert_text` the admins' (no operators), with
    {name} and {cert_no} filled (default: `alert_text`)."""
    if not 1 <= score <= 5:
        raise ValueError(f"score must be 1-5, got {score}")
    activity = await session.get(Activity, activity_id)
    if activity is None:
        return SatisfactionRefused(SatisfactionRefusal.NOT_FOUND)
    if await session.scalar(select(Attendance.id).where(
            Attendance.activity_id == activity_id, Attendance.talent_id == talent_id)) is None:
        return SatisfactionRefused(SatisfactionRefusal.NOT_ATTENDED, activity)
    stmt = insert(session, Satisfaction).values(
        activity_id=activity_id, talent_id=talent_id, score=score, comment=comment[:MAX_COMMENT], created_at=now,
    ).on_conflict_do_nothing(
        index_elements=["activity_id", "talent_id"]).returning(Satisfaction)
    row = (await session.scalars(stmt)).first()
    if row is None:
        return SatisfactionRefused(SatisfactionRefusal.ALREADY, activity)
    alerted = 0
    if score <= LOW_SCORE:
        alerted = await _alert(session, activity, talent_id, score, row.comment, alert_text,
                               admin_alert_text or alert_text)
    return Recorded(satisfaction=row, activity=activity, alerted=alerted)


async def answer(session: AsyncSession, redis: Any, *, openid: str, talent_id: int, score: int, comment: str,
                 now: datetime, alert_text: str,
                 admin_alert_text: str | None = None) -> Recorded | SatisfactionRefused:
    """Record a bare 1-5 answer for the invitation it belongs to, in the caller's transaction: the pending
    invitation with the earliest deadline not answered yet. `Recorded.more` counts the others still open.
    Refusals: NOT_INVITED (nothing pending), ALREADY (with the activity: every pending one is answered)."""
    pending = await invitations.pending(redis, openid, unix(now))
    if not pending:
        return SatisfactionRefused(SatisfactionRefusal.NOT_INVITED)
    done = await answered(session, talent_id, pending)
    todo = [a for a in pending if a not in done]
    recorded: Recorded | None = None
    refused: SatisfactionRefused | None = None
    while todo and recorded is None:
        activity_id = todo.pop(0)
        result = await record(session, talent_id=talent_id, activity_id=activity_id, score=score, comment=comment,
                              now=now, alert_text=alert_text, admin_alert_text=admin_alert_text)
        if isinstance(result, Recorded):
            recorded = result
        elif result.reason is SatisfactionRefusal.ALREADY:  # answered a moment ago (another process)
            refused = result
        else:  # not an attendee, or the activity is gone: a stale invitation
            await invitations.close(redis, openid, activity_id)
    if recorded is not None:
        return Recorded(recorded.satisfaction, recorded.activity, recorded.alerted, more=len(todo))
    if refused is None and done:
        refused = await already(session, [a for a in pending if a in done][-1])
    if refused is not None and refused.activity is not None:
        return refused
    return SatisfactionRefused(SatisfactionRefusal.NOT_INVITED)


async def _alert(session: AsyncSession, activity: Activity, talent_id: int, score: int, comment: str,
                 alert_text: str, admin_alert_text: str) -> int:
    station = await session.get(Station, activity.station_id)
    recipients = list((await session.scalars(select(Staff.openid).where(
        Staff.role == "operator", Staff.station_id == activity.station_id, Staff.active.is_(True))
        .order_by(Staff.id))).all())
    fields = {"station": station.name if station else "", "title": activity.title, "score": score,
              "comment": comment or "无", "name": "", "cert_no": ""}  # the rated station is not told who
    payload: dict[str, Any] = {"template": "lowscore", "activity_id": activity.id, "score": score,
                               "comment": comment}
    if recipients:
        text = alert_text.format(**fields)
    else:  # no operators: the admins, who may know who it was
        recipients = list((await session.scalars(select(Staff.openid).where(
            Staff.role == "admin", Staff.active.is_(True)).order_by(Staff.id))).all())
        talent = await session.get(Talent, talent_id)
        text = admin_alert_text.format(**{**fields, "name": talent.name if talent else "",
                                          "cert_no": talent.cert_no if talent else ""})
        payload["talent_id"] = talent_id
    sent = 0
    for openid in recipients:
        sent += await outbox.add(session, f"lowscore:{activity.id}:{talent_id}:{openid}", openid,
                                 {"text": text, **payload})
    return sent


@dataclass(frozen=True)
class LowScore:
    """A low score as admins see it: who gave it, to which activity of which station."""

    at: datetime
    score: int
    comment: str
    activity_id: int
    title: str
    station: str
    name: str
    cert_no: str


async def low_scores(session: AsyncSession, n: int = 10) -> list[LowScore]:
    """The latest `n` answers of LOW_SCORE or less, newest first, with the talent's name (admins only)."""
    rows = (await session.execute(
        select(Satisfaction, Activity.title, Station.code, Talent.name, Talent.cert_no)
        .join(Activity, Activity.id == Satisfaction.activity_id).join(Station, Station.id == Activity.station_id)
        .join(Talent, Talent.id == Satisfaction.talent_id).where(Satisfaction.score <= LOW_SCORE)
        .order_by(Satisfaction.id.desc()).limit(n))).all()
    return [LowScore(r.Satisfaction.created_at, r.Satisfaction.score, r.Satisfaction.comment,
                     r.Satisfaction.activity_id, r.title, r.code, r.name, r.cert_no) for r in rows]


async def rate(session: AsyncSession, activity_id: int) -> tuple[int, float | None]:
    """(answers, satisfaction rate = share of scores >= 4) of one activity; rate None without answers."""
    total, good = (await session.execute(select(
        func.count(Satisfaction.id), func.coalesce(func.sum(case((Satisfaction.score >= 4, 1), else_=0)), 0))
        .where(Satisfaction.activity_id == activity_id))).one()
    return int(total), (int(good) / int(total) if total else None)


async def answered(session: AsyncSession, talent_id: int, activity_ids: list[int]) -> set[int]:
    """Which of these activities the talent has already answered."""
    if not activity_ids:
        return set()
    return set((await session.scalars(select(Satisfaction.activity_id).where(
        Satisfaction.talent_id == talent_id, Satisfaction.activity_id.in_(activity_ids)))).all())


async def already(session: AsyncSession, activity_id: int) -> SatisfactionRefused:
    return SatisfactionRefused(SatisfactionRefusal.ALREADY, await session.get(Activity, activity_id))
