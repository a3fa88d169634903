"""Operator words (one station each). The whole router is gated by the operator role; state-changing
words need safe mode (bot/router.py) and leave an audit row."""

from __future__ import annotations

from bot import texts
from bot.router import Context, Router
from scoring import operations as ops
from scoring import visits
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.facts import activity as activity_fact
from scoring.facts import media as media_fact
from scoring.facts.common import Params
from scoring.rules import RULES
from scoring.tokens import activity_scene

router = Router("operator", roles=frozenset({"operator"}))

REFUSALS = {
    ops.OpRefusal.BAD_TIME: texts.OP_BAD_TIME,
    ops.OpRefusal.START_IN_PAST: texts.OP_START_IN_PAST,
    ops.OpRefusal.END_BEFORE_START: texts.OP_END_BEFORE_START,
    ops.OpRefusal.BAD_CAPACITY: texts.OP_BAD_CAPACITY,
    ops.OpRefusal.BAD_TITLE: texts.OP_BAD_TITLE,
    ops.OpRefusal.NOT_FOUND: texts.OP_NOT_FOUND,
    ops.OpRefusal.OTHER_STATION: texts.OP_OTHER_STATION,
    ops.OpRefusal.VOIDED: texts.OP_VOIDED,
    ops.OpRefusal.BAD_URL: texts.OP_BAD_URL,
    ops.OpRefusal.BAD_LEVEL: texts.OP_BAD_LEVEL,
    ops.OpRefusal.STATION_DELISTED: texts.OP_STATION_DELISTED,
}


def refusal(r: ops.OpRefusal, activity_id: int | None = None) -> str:
    return REFUSALS[r].format(id=activity_id)


async def station_id_of(ctx: Context) -> int | None:
    return (await ctx.access()).station_id


@router.word("发布活动", "/activity new")
async def publish(ctx: Context, rest: str) -> str:
    station_id = await station_id_of(ctx)
    if station_id is None:
        return texts.OP_NO_STATION
    return await publish_at(ctx, station_id, rest, max_hours=ctx.deps.settings.activity_max_hours)


async def publish_at(ctx: Context, station_id: int, rest: str, *, max_hours: int | None) -> str:
    """Publish an activity at a station: an operator's own, up to ACTIVITY_MAX_HOURS long (its code credits
    talents throughout), or an admin's 代发活动 at any station with no limit (`max_hours` None)."""
    parts = [p.strip() for p in rest.split("|")]
    if len(parts) != 5:
        return texts.OP_PUBLISH_USAGE
    title, start, end, capacity, theme = parts
    try:
        starts_at, ends_at = ops.parse_local_time(start), ops.parse_local_time(end)
    except ValueError:
        return texts.OP_BAD_TIME
    if not capacity.isdigit():
        return texts.OP_BAD_CAPACITY
    async with transaction(ctx.deps.sessions) as s:
        result = await ops.publish(s, station_id, title=title, starts_at=starts_at, ends_at=ends_at,
                                   capacity=int(capacity), theme=theme, actor=ctx.openid,
                                   lead_hours=ctx.deps.settings.activity_lead_hours, max_hours=max_hours)
    if result is ops.OpRefusal.TOO_LONG:
        return texts.OP_TOO_LONG.format(hours=max_hours)
    if isinstance(result, ops.OpRefusal):
        return refusal(result)
    a = result.activity
    # R1 is decided at the activity's end (and again whenever a publicity report arrives).
    await ctx.deps.enqueue_fact(result.job)
    if not result.meets_lead:
        return texts.OP_PUBLISHED_SHORT_LEAD.format(id=a.id, title=a.title, start=start, end=end,
                                                    hours=result.lead_hours, points=RULES["R1"].station)
    return texts.OP_PUBLISHED.format(id=a.id, title=a.title, start=start, end=end)


@router.word("宣传", "/publicity")
async def publicity(ctx: Context, rest: str) -> str:
    station_id = await station_id_of(ctx)
    if station_id is None:
        return texts.OP_NO_STATION
    parts = rest.split()
    activity_id = ops.parse_id(parts[0]) if len(parts) == 2 else None
    if activity_id is None:
        return texts.OP_PUBLICITY_USAGE
    async with transaction(ctx.deps.sessions) as s:
        result = await ops.add_publicity(s, station_id, activity_id, parts[1], actor=ctx.openid)
    if isinstance(result, ops.OpRefusal):
        return refusal(result, activity_id)
    await ctx.deps.enqueue_fact(activity_fact.job(activity_id, publicity_id=result.id))
    return texts.OP_PUBLICITY_OK.format(id=activity_id)


@router.word("报道", "/media")
async def media(ctx: Context, rest: str) -> str:
    station_id = await station_id_of(ctx)
    if station_id is None:
        return texts.OP_NO_STATION
    parts = rest.split()
    activity_id = ops.parse_id(parts[0]) if len(parts) >= 4 else None
    if activity_id is None:
        return texts.OP_MEDIA_USAGE
    level, outlet, url = parts[1], " ".join(parts[2:-1]), parts[-1]
    async with transaction(ctx.deps.sessions) as s:
        result = await ops.add_media(s, station_id, activity_id, level=level, outlet=outlet, url=url,
                                     actor=ctx.openid)
    if isinstance(result, ops.OpRefusal):
        return refusal(result, activity_id)
    await ctx.deps.enqueue_fact(media_fact.job(activity_id, result.id))
    return texts.OP_MEDIA_OK.format(id=activity_id, level=texts.MEDIA_LEVEL_NAMES[result.level],
                                    outlet=result.outlet or "-")


@router.word("我的活动", "/activities", changes_state=False)
async def my_activities(ctx: Context, rest: str) -> str:
    station_id = await station_id_of(ctx)
    if station_id is None:
        return texts.OP_NO_STATION
    async with ctx.deps.sessions() as s:
        rows = await ops.station_activities(s, station_id, now=utcnow(),
                                            params=Params.from_settings(ctx.deps.settings))
    if not rows:
        return texts.OP_NO_ACTIVITIES
    lines = []
    for a in rows:
        rate = f"{a.satisfaction_rate:.0%}" if a.satisfaction_rate is not None else "-"
        status = texts.OP_STATUS_SCORED if a.scored else (
            texts.OP_STATUS_NOT_ENDED if "ended" in a.r1_missing else
            texts.OP_STATUS_NO_PUBLICITY if "publicity" in a.r1_missing else
            texts.OP_STATUS_UNMET if a.r1_missing else texts.OP_STATUS_SCORING)
        lines.append(texts.OP_ACTIVITY_LINE.format(
            id=a.id, title=a.title, start=ops.format_local(a.starts_at), signups=a.signups,
            cap=f"/{a.capacity}" if a.capacity else "", attendees=a.attendees, rate=rate, points=a.points,
            status=status))
    return "\n".join(lines)


@router.word("活动码", "/code", changes_state=False)
async def activity_code(ctx: Context, rest: str) -> str:
    station_id = await station_id_of(ctx)
    if station_id is None:
        return texts.OP_NO_STATION
    activity_id = ops.parse_id(rest)
    if activity_id is None:
        return texts.OP_CODE_USAGE
    async with ctx.deps.sessions() as s:
        result = await ops.own_activity(s, station_id, activity_id)
    if isinstance(result, ops.OpRefusal):
        return refusal(result, activity_id)
    scene = activity_scene(ctx.deps.settings.scene_key, activity_id, utcnow().timestamp())
    return texts.OP_CODE.format(id=activity_id, scene=scene)


@router.word("本站", "/station", changes_state=False)
async def my_station(ctx: Context, rest: str) -> str:
    station_id = await station_id_of(ctx)
    if station_id is None:
        return texts.OP_NO_STATION
    async with ctx.deps.sessions() as s:
        fig = await ops.station_figures(s, station_id, now=utcnow())
    if isinstance(fig, ops.OpRefusal):
        return texts.OP_NO_STATION
    ranks = {kind: texts.OP_UNRANKED if rank is None else str(rank) for kind, rank in fig.ranks.items()}
    return texts.OP_STATION.format(
        name=fig.station.name, code=fig.station.code, stars=fig.station.stars,
        status=texts.OP_STATION_ACTIVE if fig.station.status == "active" else texts.OP_STATION_DELISTED_STATUS,
        month=fig.points["month"], year=fig.points["year"], total=fig.points["total"], rank_month=ranks["month"],
        rank_year=ranks["year"], rank_total=ranks["total"],
        rate=texts.OP_RATE.format(rate=f"{fig.satisfied / fig.replies:.0%}", n=fig.replies) if fig.replies
        else texts.OP_NO_RATINGS,
        flags=fig.open_flags, plan=texts.OP_PLAN_UPLOADED if fig.has_plan else texts.OP_PLAN_MISSING)


@router.scene("tl:")
async def scan_talent(ctx: Context, scene: str) -> str:
    """The operator scanned a talent's personal code with the menu's scan button: a visit at the operator's
    station (source operator); R3 applies as to any visit."""
    station_id = await station_id_of(ctx)
    if station_id is None:
        return texts.OP_NO_STATION
    at = ctx.incoming.received_at or utcnow()
    scan = visits.personal_code_scan(ctx.deps.settings.scene_key, scene, operator_openid=ctx.openid,
                                     station_id=station_id, at=at)
    async with transaction(ctx.deps.sessions) as s:
        outcome = await visits.record_personal_scan(s, scan)
    if isinstance(outcome, visits.Accepted):
        await ctx.deps.enqueue_fact(outcome.job)
        return texts.OP_SCAN_OK.format(name=outcome.talent_name, points=RULES["R3"].talent)
    return texts.OP_SCAN_REJECTED.get(outcome.reason.value, texts.OP_SCAN_REJECTED_OTHER)
