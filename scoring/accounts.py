"""A talent's account: binding a WeChat openid to the imported registry, and what the talent may see of
their points (balance, periods, recent entries, rank).

Binding decisions:

- `绑定 <cert_no> <name>` matches one registry row: the certificate number exactly (or in upper or lower
  case), the name after Unicode NFKC normalisation, without spaces, with the middle-dot variants of
  minority names unified, case-insensitive for Latin letters.
- One openid per talent and one talent per openid (both UNIQUE in the database; the bind is a guarded
  UPDATE .. WHERE openid IS NULL, so two openids racing for one talent cannot both win). Re-binding or
  moving to another WeChat account is an admin's job.
- Unbinding (`解绑`; an admin's `解绑 <cert_no>`) clears the openid and the bind time and nothing else: the
  talent's points, sign-ups and redemptions stay with the registry row, and either WeChat account may bind
  it again with `绑定`. It is a guarded UPDATE .. WHERE openid = <the one read>, like binding.
- Against guessing: at most `MAX_FAILED_BINDS` failed tries (no such cert_no/name pair) per openid per
  hour, counted in Redis (`th:bindfail:{openid}`); once over, tries are refused unchecked until the hour
  is over. Losing the counter only resets the limit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import live
from scoring.boards import EARNED, talent_points
from scoring.models import Activity, Entry, Gift, Redemption, Station, Talent, Visit
from scoring.periods import Period
from scoring.ranking import Ranked

MAX_FAILED_BINDS: Final = 5
BIND_WINDOW_S: Final = 3600
_DOTS = re.compile(r"[·•‧・･.]")
_SPACE = re.compile(r"\s+")


class BindRefusal(StrEnum):
    NO_MATCH = "no_match"  # no registry row with this cert_no and name (counts as a failed try)
    TALENT_TAKEN = "talent_taken"  # this talent is bound to another WeChat account
    OPENID_TAKEN = "openid_taken"  # this WeChat account is bound to another talent
    TOO_MANY_TRIES = "too_many_tries"


@dataclass(frozen=True)
class Bound:
    talent: Talent
    already: bool = False  # it was bound to this openid before


@dataclass(frozen=True)
class BindRefused:
    reason: BindRefusal
    tries_left: int | None = None  # for NO_MATCH
    bound_name: str = ""  # for OPENID_TAKEN: whom this openid is bound to


def normalise_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    return _DOTS.sub("·", _SPACE.sub("", text)).casefold()


# INCR, and start the window on the first failure (EXPIRE's NX option is Redis 7; this runs on 6.2 too).
_COUNT_FAILURE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""


def _fail_key(openid: str) -> str:
    return f"th:bindfail:{openid}"


async def failed_binds(redis: Any, openid: str) -> int:
    raw = await redis.get(_fail_key(openid))
    return int(raw) if raw is not None else 0


async def note_failed_bind(redis: Any, openid: str) -> int:
    """Count a failed try; the count lives one hour from the first failure."""
    count = await redis.eval(_COUNT_FAILURE, 1, _fail_key(openid), str(BIND_WINDOW_S))
    return int(count)


async def find_talent(session: AsyncSession, cert_no: str, name: str) -> Talent | None:
    cert_no = unicodedata.normalize("NFKC", cert_no).strip()
    if not cert_no or not name.strip():
        return None
    variants = list(dict.fromkeys([cert_no, cert_no.upper(), cert_no.lower()]))
    for talent in (await session.scalars(select(Talent).where(Talent.cert_no.in_(variants)))).all():
        if normalise_name(talent.name) == normalise_name(name):
            return talent
    return None


async def bind(session: AsyncSession, redis: Any, *, openid: str, cert_no: str, name: str,
               now: datetime) -> Bound | BindRefused:
    """Bind `openid` to the registry row (cert_no, name), in the caller's transaction."""
    if await failed_binds(redis, openid) >= MAX_FAILED_BINDS:
        return BindRefused(BindRefusal.TOO_MANY_TRIES)
    talent = await find_talent(session, cert_no, name)
    if talent is None:
        count = await note_failed_bind(redis, openid)
        return BindRefused(BindRefusal.NO_MATCH, tries_left=max(0, MAX_FAILED_BINDS - count))
    if talent.openid == openid:
        return Bound(talent, already=True)
    if talent.openid is not None:
        return BindRefused(BindRefusal.TALENT_TAKEN)
    mine = await session.scalar(select(Talent.name).where(Talent.openid == openid))
    if mine is not None:
        return BindRefused(BindRefusal.OPENID_TAKEN, bound_name=mine)
    try:
        async with session.begin_nested():
            done = await session.execute(update(Talent).where(Talent.id == talent.id, Talent.openid.is_(None))
                                         .values(openid=openid, bound_at=now))
    except IntegrityError:  # the openid was bound to another talent a moment ago
        return BindRefused(BindRefusal.OPENID_TAKEN)
    if getattr(done, "rowcount", 1) != 1:  # another openid won this talent a moment ago
        return BindRefused(BindRefusal.TALENT_TAKEN)
    await session.refresh(talent)
    return Bound(talent)


class UnbindRefusal(StrEnum):
    NOT_BOUND = "not_bound"  # the openid is bound to no talent, or the talent to no WeChat account
    NO_TALENT = "no_talent"  # no registry row with this cert_no


@dataclass(frozen=True)
class Unbound:
    talent: Talent
    openid: str  # the WeChat account it was bound to


@dataclass(frozen=True)
class UnbindRefused:
    reason: UnbindRefusal
    talent: Talent | None = None  # for NOT_BOUND by cert_no: the talent, who is bound to no account


async def talent_by_openid(session: AsyncSession, openid: str) -> Talent | None:
    """The talent bound to this WeChat account, if any."""
    return await session.scalar(select(Talent).where(Talent.openid == openid))


async def talent_by_cert_no(session: AsyncSession, cert_no: str) -> Talent | None:
    """The registry row of this certificate number, written exactly or in upper or lower case."""
    cert_no = unicodedata.normalize("NFKC", cert_no).strip()
    if not cert_no:
        return None
    variants = list(dict.fromkeys([cert_no, cert_no.upper(), cert_no.lower()]))
    return await session.scalar(select(Talent).where(Talent.cert_no.in_(variants)).order_by(Talent.id).limit(1))


async def unbind(session: AsyncSession, *, openid: str | None = None, cert_no: str | None = None
                 ) -> Unbound | UnbindRefused:
    """Unbind the talent bound to `openid` (the talent's own word) or the talent `cert_no` (an admin's),
    in the caller's transaction. Give exactly one of them."""
    if (openid is None) == (cert_no is None):
        raise ValueError("unbind: give exactly one of openid and cert_no")
    if openid is not None:
        talent = await session.scalar(select(Talent).where(Talent.openid == openid))
        if talent is None:
            return UnbindRefused(UnbindRefusal.NOT_BOUND)
    else:
        assert cert_no is not None
        talent = await talent_by_cert_no(session, cert_no)
        if talent is None:
            return UnbindRefused(UnbindRefusal.NO_TALENT)
    was = talent.openid
    if was is None:
        return UnbindRefused(UnbindRefusal.NOT_BOUND, talent)
    done = await session.execute(update(Talent).where(Talent.id == talent.id, Talent.openid == was)
                                 .values(openid=None, bound_at=None))
    if getattr(done, "rowcount", 1) != 1:  # unbound (or moved) a moment ago by someone else
        return UnbindRefused(UnbindRefusal.NOT_BOUND, talent)
    await session.refresh(talent)
    return Unbound(talent, was)


# -- what a talent sees ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One ledger entry of a talent, in words a reply can use."""

    amount: int
    rule: str  # rule id: R3, G, V, ...
    fact_kind: str
    occurred_at: datetime
    subject: str  # station name, gift name, activity title, or ""
    reversal: bool = False
    activity: bool = False  # a visit made by attending an activity (subject is its title)


async def recent_entries(session: AsyncSession, talent_id: int, limit: int = 5) -> list[Line]:
    """The talent's last `limit` entries, newest first, each with what it was about."""
    entries = (await session.scalars(select(Entry).where(Entry.talent_id == talent_id)
                                     .order_by(Entry.occurred_at.desc(), Entry.id.desc()).limit(limit))).all()
    subjects: dict[tuple[str, int], tuple[str, bool]] = {}
    visit_ids = [e.fact_id for e in entries if e.fact_kind == "visit" and e.fact_id is not None]
    if visit_ids:
        visit_rows = (await session.execute(select(Visit.id, Station.name, Activity.title)
                                      .join(Station, Station.id == Visit.station_id)
                                      .outerjoin(Activity, Activity.id == Visit.activity_id)
                                      .where(Visit.id.in_(visit_ids)))).all()
        subjects.update({("visit", vid): (title or sname, title is not None) for vid, sname, title in visit_rows})
    red_ids = [e.fact_id for e in entries if e.fact_kind == "redemption" and e.fact_id is not None]
    if red_ids:
        rows = (await session.execute(select(Redemption.id, Gift.name).join(Gift, Gift.id == Redemption.gift_id)
                                      .where(Redemption.id.in_(red_ids)))).all()
        subjects.update({("redemption", rid): (gname, False) for rid, gname in rows})
    out = []
    for e in entries:
        subject, activity = subjects.get((e.fact_kind, e.fact_id or 0), ("", False))
        out.append(Line(amount=e.amount, rule=e.rule.split("@")[0], fact_kind=e.fact_kind,
                        occurred_at=e.occurred_at, subject=subject, reversal=e.reverses_id is not None,
                        activity=activity))
    return out


async def talent_year_rank(session: AsyncSession, talent_id: int, now: datetime) -> tuple[int | None, int]:
    """(rank, points) of the talent on this year's talent board (competition ranking, SPEC 3); rank None
    when the talent earned nothing this year (talent boards list only talents with points).

    Counts the talents with more points instead of ranking everyone: one aggregate, no rows to Python."""
    start, end = Period.parse("year", now=now).bounds()
    in_year = (Entry.occurred_at >= start, Entry.occurred_at < end, EARNED)
    mine = await session.scalar(select(func.sum(Entry.amount)).where(Entry.talent_id == talent_id, *in_year))
    if mine is None:
        return None, 0
    sums = (select(Entry.talent_id).where(Entry.talent_id.is_not(None), *in_year)
            .group_by(Entry.talent_id).having(func.sum(Entry.amount) > mine).subquery())
    ahead = await session.scalar(select(func.count()).select_from(sums))
    return int(ahead or 0) + 1, int(mine)


# -- the talent's replies: 积分 and 排名, one call each ------------------------------------------------------
@dataclass(frozen=True)
class Points:
    """What `积分` shows: the talent's points ({"total", "year", "month", "balance"}) and recent entries."""

    points: Mapping[str, int]
    lines: list[Line]

    @property
    def owed(self) -> int:
        """Points a void took back that were spent already (a negative balance), else 0."""
        return max(0, -self.points["balance"])


async def points_of(session: AsyncSession, talent_id: int, now: datetime, recent: int = 5) -> Points:
    return Points(await talent_points(session, talent_id, now), await recent_entries(session, talent_id, recent))


@dataclass(frozen=True)
class Standings:
    """What `排名` shows: the month board's first stations with points, and the talent's year standing
    (rank None: no points this year; `mine` None: no talent bound)."""

    top: list[Ranked]
    mine: tuple[int | None, int] | None


async def talent_rank(session: AsyncSession, redis: Any, talent_id: int, now: datetime) -> tuple[int | None, int]:
    """(rank, points) this year: from the live boards in Redis when built, else one aggregate in SQL."""
    if await live.is_built(redis):
        standing = await live.talent_standing(redis, talent_id, Period.parse("year", now=now))
        return standing if standing is not None else (None, 0)
    return await talent_year_rank(session, talent_id, now)


async def standings(session: AsyncSession, redis: Any, talent_id: int | None, now: datetime,
                    top: int = 5) -> Standings:
    board = await live.station_board(session, redis, Period.parse("month", now=now), now=now)
    mine = await talent_rank(session, redis, talent_id, now) if talent_id is not None else None
    return Standings([r for r in board if r.points > 0][:top], mine)
