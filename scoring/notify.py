"""Who hears what after points move (issue 4, "Pushes"): this module decides and adds outbox rows
(scoring.outbox, idempotent on deterministic keys); worker/push.py delivers them.

Rank changes on the month board (operators of the station):
- a station "is in the top 3" when its competition rank is 1-3 with more than 0 points (at the start of a
  month every station shares rank 1 with 0 points; that is nobody's podium);
- events, against the rank at which the station's operators last heard (or were first seen): entering the
  top 3, leaving it, or moving 3 or more places up or down (moves only between two ranks with points:
  a station's first points place it silently unless they put it in the top 3);
- at most one message per station per hour: the outbox key is `rank:{station}:{yyyy-mm}:{yyyymmddhh}:
  {openid}` (the event is in the payload), so the outbox's unique key refuses a second one within the
  hour; a change held back stays pending against the old baseline and is told in a later hour if it
  still holds;
- the baseline (`th:live:ranks:{yyyy-mm}`, station id -> "rank:top") lives in Redis; losing it only means
  the next check sets it again without telling anyone. Checks run under a short Redis lock, after the
  worker bumps a month board (at most every few seconds) and every minute from cron.

The notices that applied facts raise (scoring/facts/: data, no words) become outbox rows here (`send`):
who they go to, and their texts (Chinese, for the people who read them): a redemption's pickup code or
refusal, a hold on a visit (the station, the admins, the talent), a void (the talent: what, why, the points
taken back, the balance left; the station hears of it in its hourly digest).

The hourly digest (`send_digests`, a cron job at minute 0): every entry a station gets or loses but R3's
(R1, R2, R4, reversals) is recorded, in the transaction that wrote it, as a pending DigestLine (one per
entry); each hour each station's operators get ONE message summing up the lines recorded before the hour
began (outbox key `digest:{station}:{yyyymmddhh}:{openid}`, local hour of the run), and the lines are
marked sent. A second run in the hour finds nothing pending; a line recorded later goes in the next hour's.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import ledger, live, outbox, periods
from scoring.clock import utcnow
from scoring.db import insert, transaction
from scoring.facts.common import Audience, Notice, NoticeKind, Refusal
from scoring.models import Activity, DigestLine, Entry, Flag, Gift, Notification, Staff, Station, Talent, Visit
from scoring.periods import Period
from scoring.ranking import Ranked
from scoring.texts import admin as admin_texts
from scoring.texts import day_label, month_label
from scoring.texts import operator as operator_texts
from scoring.texts import talent as talent_texts

TOP: Final = 3
MOVE: Final = 3
BASELINE_TTL_S: Final = 70 * 24 * 3600
LOCK_MS: Final = 30_000


# -- recipients --------------------------------------------------------------------------------------


async def operators(session: AsyncSession, station_ids: Iterable[int]) -> dict[int, list[str]]:
    """{station_id: [openid, ...]} of the active operators of those stations."""
    ids = sorted(set(station_ids))
    out: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return out
    rows = (await session.execute(select(Staff.station_id, Staff.openid).where(
        Staff.role == "operator", Staff.active.is_(True), Staff.station_id.in_(ids)).order_by(Staff.id))).all()
    for sid, openid in rows:
        if sid is not None:
            out[sid].append(openid)
    return out


async def admins(session: AsyncSession, extra: Iterable[str] = ()) -> list[str]:
    """Openids of the active admins, plus `extra` (ADMIN_OPENIDS)."""
    rows = (await session.scalars(select(Staff.openid).where(
        Staff.role == "admin", Staff.active.is_(True)).order_by(Staff.id))).all()
    return sorted(set(rows) | set(extra))


async def tell(session: AsyncSession, key: str, openid: str, text: str, template: str,
               data: Mapping[str, Any] | None = None) -> str | None:
    """Add one template message; returns its key when it is new."""
    added = await outbox.add(session, key, openid, {"text": text, "template": template, "data": dict(data or {})})
    return key if added else None


async def ids_of(session: AsyncSession, keys: Sequence[str]) -> list[int]:
    if not keys:
        return []
    return list((await session.scalars(select(Notification.id).where(Notification.key.in_(list(keys))))).all())


# -- rank changes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankChange:
    station_id: int
    code: str
    name: str
    event: str  # enter_top3 | leave_top3 | up | down
    old: int
    new: int
    points: int

    @property
    def top(self) -> bool:
        return in_top(self.new, self.points)


Seen = tuple[int, bool]  # (rank, in the top 3) when last told or first seen; rank 0: no points then


def in_top(rank_: int, points: int) -> bool:
    return rank_ <= TOP and points > 0


def decide(baseline: Mapping[int, Seen], board: Sequence[Ranked]) -> tuple[list[RankChange], dict[int, Seen]]:
    """The events to tell, and the silent baseline updates (stations first seen, stations without points)."""
    changes: list[RankChange] = []
    silent: dict[int, Seen] = {}
    for r in board:
        s = r.standing
        top = in_top(r.rank, s.points)
        now_seen = (r.rank if s.points > 0 else 0, top)
        seen = baseline.get(s.id)
        if seen is None:
            silent[s.id] = now_seen
            continue
        old, old_top = seen
        if top and not old_top:
            event = "enter_top3"
        elif old_top and not top:
            event = "leave_top3"
        elif s.points <= 0 or old == 0:  # no points now, or none before: no move to speak of
            if now_seen != seen:
                silent[s.id] = now_seen
            continue
        elif r.rank <= old - MOVE:
            event = "up"
        elif r.rank >= old + MOVE:
            event = "down"
        else:
            continue
        changes.append(RankChange(s.id, s.code, s.name, event, old, r.rank, s.points))
    return changes, silent


def _baseline_key(month: str) -> str:
    return f"{live.PREFIX}:ranks:{month}"


def _parse_seen(raw: bytes | str) -> Seen:
    text = raw.decode() if isinstance(raw, bytes) else raw
    rank_, top = text.split(":")
    return int(rank_), top == "1"


async def check_ranks(sessions: async_sessionmaker[AsyncSession], redis: Redis, *,
                      now: datetime | None = None) -> list[int]:
    """Compare the current month board with the baseline and tell operators; returns the new outbox ids.
    Does nothing when another check holds the lock."""
    now = now or utcnow()
    month = Period.parse("month", now=now)
    lock, token = f"{live.PREFIX}:ranks:lock:{month.key}", secrets.token_hex(8)
    if not await redis.set(lock, token, nx=True, px=LOCK_MS):
        return []
    try:
        base_key = _baseline_key(month.key)
        raw: dict[Any, Any] = await redis.hgetall(base_key)  # type: ignore[misc]
        baseline = {int(k): _parse_seen(v) for k, v in raw.items()}
        async with sessions() as s:
            board = await live.station_board(s, redis, month, now=now)
        changes, updates = decide(baseline, board)
        ids: list[int] = []
        if changes:
            hour = periods.to_local(now).strftime("%Y%m%d%H")
            async with transaction(sessions) as s:
                recipients = await operators(s, [c.station_id for c in changes])
                rows: list[tuple[int, str, str, dict[str, Any]]] = []  # (station, key, openid, payload)
                for c in changes:
                    text = operator_texts.RANK_TEXTS[c.event].format(
                        name=c.name, month=month_label(month.key), old=c.old, new=c.new, points=c.points)
                    data = {"station": c.name, "code": c.code, "month": month.key, "event": c.event,
                            "old_rank": c.old, "new_rank": c.new, "points": c.points}
                    rows += [(c.station_id, f"rank:{c.code}:{month.key}:{hour}:{openid}", openid,
                              {"text": text, "template": "rank", "data": data})
                             for openid in recipients.get(c.station_id, [])]
                added = await outbox.add_many(s, [(key, openid, payload) for _, key, openid, payload in rows])
                told = {sid for sid, key, _, _ in rows if key in added}
                for c in changes:
                    if c.station_id in told or not recipients.get(c.station_id):
                        updates[c.station_id] = (c.new, c.top)
                    # else: told this hour already; the change stays pending against the old baseline
                ids = sorted(added.values())
        if updates:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hset(base_key, mapping={str(k): f"{r}:{int(t)}" for k, (r, t) in updates.items()})
                pipe.expire(base_key, BASELINE_TTL_S)
                await pipe.execute()
        return ids
    finally:
        await redis.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
        )(keys=[lock], args=[token])


async def may_check_ranks(redis: Redis, month: str, every_ms: int = 5000) -> bool:
    """Throttle for checks triggered by bumps: True for at most one caller per `every_ms`."""
    return bool(await redis.set(f"{live.PREFIX}:ranks:throttle:{month}", "1", nx=True, px=every_ms))


# -- the notices of applied facts ------------------------------------------------------------------------


async def send(session: AsyncSession, notices: Iterable[Notice], *, admins: Iterable[str] = ()) -> list[str]:
    """Turn the notices a fact raised (scoring/facts/common.py) into outbox rows, in the caller's
    transaction: the recipients (the talent, the station's active operators, the admins and `admins`), the
    words, the template data. Returns the keys of the rows that are new."""
    keys: list[str] = []
    for n in notices:
        if n.kind is NoticeKind.ENTRY:  # a line of the station's hourly digest, not a message of its own
            await _digest_line(session, n)
            continue
        text, template, data = await _render(session, n)
        for key, openid in await _recipients(session, n, admins):
            if added := await tell(session, key, openid, text, template, data):
                keys.append(added)
    return keys


async def _recipients(session: AsyncSession, n: Notice, admin_openids: Iterable[str]) -> list[tuple[str, str]]:
    """(outbox key, openid) per recipient: a talent's key is the notice's, a group's has the openid added."""
    if n.audience is Audience.TALENT:
        openid = await session.scalar(select(Talent.openid).where(Talent.id == n.account_id))
        return [(n.key, openid)] if openid else []
    if n.audience is Audience.STATION:
        openids = (await operators(session, [n.account_id] if n.account_id is not None else [])).get(
            n.account_id or 0, [])
    else:
        openids = await admins(session, admin_openids)
    return [(f"{n.key}:{openid}", openid) for openid in openids]


async def _render(session: AsyncSession, n: Notice) -> tuple[str, str, dict[str, Any]]:
    """(text, template name, template data) of a notice."""
    d = n.data
    if n.kind is NoticeKind.HOLD:
        station = await session.scalar(select(Station.name).join(Visit, Visit.station_id == Station.id)
                                       .where(Visit.id == d["visit_id"]))
        talent = await session.get(Talent, d["talent_id"])
        assert station is not None and talent is not None
        if n.audience is Audience.TALENT:  # no fraud details for the talent: only where, and what to do
            return talent_texts.HOLD_TALENT.format(station=station), "visit_held", {"station": station,
                                                                                    "status": "held"}
        flag = await session.get(Flag, d["flag_id"])
        assert flag is not None
        data: dict[str, Any] = {"flag_id": d["flag_id"], "station": station, "talent": talent.name,
                                "detail": admin_texts.flag_detail(flag.rule, flag.params)}
        if n.audience is Audience.STATION:
            text = operator_texts.HOLD_OPERATOR.format(station=station, talent=talent.name, n=d["stations"])
        else:
            text = admin_texts.HOLD_ADMIN.format(talent=talent.name, cert_no=talent.cert_no, minutes=d["minutes"],
                                                 n=d["stations"], flag_id=d["flag_id"])
        return text, "hold", data
    if n.kind is NoticeKind.VOID:  # the talent's (the station hears of a void in its hourly digest)
        return await _render_talent_void(session, n)
    gift = await session.get(Gift, d["gift_id"])
    assert gift is not None
    data = {"redemption_id": d["redemption_id"], "gift": gift.name, "cost": d["cost"]}
    if n.kind is NoticeKind.REDEEMED:
        place = await session.scalar(select(Station.name).where(Station.id == gift.station_id)) \
            if gift.station_id is not None else None
        data.update(status="applied", pickup_code=d["pickup_code"])
        return talent_texts.REDEEMED.format(gift=gift.name, cost=d["cost"], code=d["pickup_code"],
                                            place=place or talent_texts.REDEEMED_ANYWHERE), "redeem", data
    data.update(status="rejected", reason=d["reason"])
    if d["reason"] == Refusal.STOCK:
        return talent_texts.REFUSED_STOCK.format(gift=gift.name), "redeem", data
    data["balance"] = d["balance"]
    text = talent_texts.REFUSED_BALANCE.format(gift=gift.name, cost=d["cost"], balance=d["balance"])
    return text, "redeem", data


async def _render_talent_void(session: AsyncSession, n: Notice) -> tuple[str, str, dict[str, Any]]:
    """A talent's void: what (their visit: where and when), why, the points taken back, the balance left."""
    d = n.data
    assert n.account_id is not None
    points, balance = -int(d["points"] or 0), await ledger.talent_balance(session, n.account_id)
    data: dict[str, Any] = {"void_id": d["void_id"], "points": points, "reason": d["reason"], "balance": balance}
    visit = await session.get(Visit, d["visit_id"]) if d.get("visit_id") is not None else None
    station = await session.scalar(select(Station.name).where(Station.id == visit.station_id)) \
        if visit is not None else None
    if visit is not None and station is not None:
        day = day_label(visit.local_day)
        data.update(station=station, visit_id=visit.id)
        return talent_texts.VOIDED_TALENT_VISIT.format(day=day, station=station, reason=d["reason"],
                                                       points=points, balance=balance), "talent_void", data
    text = talent_texts.VOIDED_TALENT.format(n=d["entries"], reason=d["reason"], points=points, balance=balance)
    return text, "talent_void", data


# -- the hourly digest of a station's entries ---------------------------------------------------------------


async def _digest_line(session: AsyncSession, n: Notice) -> None:
    if n.account_id is None:
        return
    await session.execute(insert(session, DigestLine).values(
        entry_id=n.data["entry_id"], station_id=n.account_id, created_at=utcnow(), sent_at=None,
    ).on_conflict_do_nothing(index_elements=["entry_id"]))


async def _digest_phrases(session: AsyncSession, entries: Sequence[Entry]) -> list[str]:
    """One phrase per entry, in the given order."""
    activity_ids = {e.fact_id for e in entries if e.fact_kind in ("activity", "media") and e.fact_id is not None}
    titles: dict[int, str] = {i: t for i, t in (await session.execute(select(Activity.id, Activity.title).where(
        Activity.id.in_(activity_ids)))).all()} if activity_ids else {}
    phrases = []
    for e in entries:
        title = titles.get(e.fact_id or 0, "")
        if e.reverses_id is not None:
            what = operator_texts.DIGEST_VOID_WHAT.get(e.fact_kind, "#{id}").format(id=e.fact_id, title=title)
            phrases.append(operator_texts.DIGEST_VOID.format(amount=e.amount, what=what, reason=e.reason or ""))
        else:
            rule = e.rule.split("@")[0]
            phrases.append(operator_texts.DIGEST_LINES.get(rule, operator_texts.DIGEST_OTHER).format(
                title=title, amount=e.amount, rule=rule))
    return phrases


async def send_digests(session: AsyncSession, now: datetime | None = None) -> list[str]:
    """Each station's pending digest lines recorded before the current hour began, as ONE message to each
    of its active operators (key `digest:{station code}:{local yyyymmddhh}:{openid}`); the lines are marked
    sent. Returns the keys of the new outbox rows. Run twice in an hour, the second run sends nothing; lines
    of a station with no operator are marked sent too (nobody to tell)."""
    now = now or utcnow()
    cutoff = now.replace(minute=0, second=0, microsecond=0)  # Asia/Shanghai's hours begin with UTC's
    hour = periods.to_local(now).strftime("%Y%m%d%H")
    rows = (await session.execute(select(DigestLine.id, DigestLine.station_id, Entry).join(
        Entry, Entry.id == DigestLine.entry_id).where(DigestLine.sent_at.is_(None), DigestLine.created_at < cutoff)
        .order_by(DigestLine.station_id, Entry.id))).all()
    if not rows:
        return []
    per_station: dict[int, list[tuple[int, Entry]]] = defaultdict(list)
    for line_id, station_id, entry in rows:
        per_station[station_id].append((line_id, entry))
    recipients = await operators(session, per_station)
    stations = {st.id: st for st in (await session.scalars(select(Station).where(
        Station.id.in_(list(per_station))))).all()}
    keys: list[str] = []
    done: list[int] = []
    for sid, lines in sorted(per_station.items()):
        entries = [e for _, e in lines]
        st, total = stations[sid], sum(e.amount for e in entries)
        phrases = await _digest_phrases(session, entries)
        text = operator_texts.DIGEST.format(station=st.name, lines=operator_texts.DIGEST_SEP.join(phrases),
                                            total=total)
        data = {"station": st.name, "code": st.code, "hour": hour, "lines": len(entries), "points": total}
        added = [key for openid in recipients.get(sid, []) if (key := await tell(
            session, f"digest:{st.code}:{hour}:{openid}", openid, text, "digest", data))]
        keys += added
        if added or not recipients.get(sid):
            done += [line_id for line_id, _ in lines]
        # else: this hour's digest went already (another run); these lines go in the next hour's
    if done:
        await session.execute(update(DigestLine).where(DigestLine.id.in_(done), DigestLine.sent_at.is_(None))
                              .values(sent_at=now).execution_options(synchronize_session=False))
    return keys
