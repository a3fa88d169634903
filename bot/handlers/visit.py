"""Check-ins: a station's code (`st:`), an activity's code (`ac:`), and the talent's personal code.

A scan arrives as SCAN, as subscribe with `qrscene_` (general.follow), or as a menu scan; all reach these
handlers through `Dispatcher.dispatch_scene`. The handler turns the scan into a domain call and picks the
reply; points are applied by the worker (scoring/facts/visit.py, job `visit:{visit_id}`), never here.
Station scans go through the group-commit batcher (bot/batcher.py): the visit row is committed and the job
enqueued before the reply is sent.
"""

from __future__ import annotations

from datetime import timedelta

from bot import texts
from bot.handlers.signup import when
from bot.router import Context, Router
from scoring import visits
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.facts import attendance
from scoring.rules import RULES
from scoring.settings import Settings
from scoring.tokens import TALENT_CODE_TTL_S, SceneError, parse_scene, talent_scene

router = Router("visit")


def credit_text(settings: Settings, station: str) -> str:
    r3 = RULES["R3"]
    if r3.station == r3.talent:
        return texts.VISIT_OK.format(station=station, points=r3.talent)
    return texts.VISIT_OK_UNEVEN.format(station=station, station_points=r3.station, talent_points=r3.talent)


def rejected_text(settings: Settings, reason: visits.Reason, *, station: str = "", title: str = "",
                  start: str = "") -> str:
    return texts.VISIT_REJECTED[reason.value].format(
        station=station or texts.VISIT_THIS_STATION, title=title, start=start,
        minutes=max(1, settings.station_code_rotation_s // 60))


@router.scene("st:")
async def station_scan(ctx: Context, scene: str) -> str:
    settings = ctx.deps.settings
    at = ctx.incoming.received_at or utcnow()
    scan = visits.station_scan(settings.scene_key, scene, ctx.openid, at, settings.station_code_rotation_s)
    if ctx.deps.visits is not None:
        outcome = await ctx.deps.visits.record(scan)
    else:  # no batcher (a Deps built by hand): one transaction of its own
        async with transaction(ctx.deps.sessions) as s:
            outcome = await visits.record_visit(s, scan)
        if isinstance(outcome, visits.Accepted):
            await ctx.deps.enqueue_fact(outcome.job)
    if isinstance(outcome, visits.Accepted):
        return credit_text(settings, outcome.station_name)
    return rejected_text(settings, outcome.reason, station=outcome.station_name)


@router.scene("ac:")
async def activity_scan(ctx: Context, scene: str) -> str:
    settings = ctx.deps.settings
    at = ctx.incoming.received_at or utcnow()
    parsed = parse_scene(settings.scene_key, scene, visits.unix(at), settings.station_code_rotation_s)
    code_error, activity_id = None, None
    if isinstance(parsed, SceneError) or parsed.kind != "activity":
        code_error = visits.Reason.FORGED_CODE
    else:
        activity_id = int(parsed.ref)
    async with transaction(ctx.deps.sessions) as s:
        outcome = await attendance.record(s, openid=ctx.openid, activity_id=activity_id, at=at,
                                          code_error=code_error,
                                          grace=timedelta(minutes=settings.activity_code_grace_minutes))
    if isinstance(outcome, visits.Rejected):
        return rejected_text(settings, outcome.reason, station=outcome.station_name, title=outcome.title,
                             start=when(outcome.starts_at) if outcome.starts_at else "")
    if isinstance(outcome.visit, visits.Accepted):
        await ctx.deps.enqueue_fact(outcome.visit.job)
        r3 = RULES["R3"]
        credit = texts.ATTEND_CREDIT.format(points=r3.talent)
    else:
        credit = texts.ATTEND_NO_CREDIT
    template = texts.ATTEND_OK if outcome.first else texts.ATTEND_AGAIN
    return template.format(title=outcome.activity.title, credit=credit)


@router.word("我的码", "mycode", changes_state=False)
async def my_code(ctx: Context, rest: str) -> str:
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    at = ctx.incoming.received_at or utcnow()
    scene = talent_scene(ctx.deps.settings.scene_key, talent.id, visits.unix(at))
    return "\n".join((texts.MYCODE.format(scene=scene, minutes=TALENT_CODE_TTL_S // 60),
                      texts.ME_LINK.format(url=ctx.deps.settings.page_url("/me"))))
