"""Admin words (Chinese, and English `/word` aliases). The router is gated by the admin role; state-changing
words need safe mode (or `talenthome admin`) and leave an audit row (bot/router.py)."""

from __future__ import annotations

from datetime import date

from bot import texts
from bot.router import Context, Router
from scoring import admin as adm
from scoring import periods, rating
from scoring.calendar import CloseRefused, month_close
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.operations import format_local, parse_id

router = Router("admin", roles=frozenset({"admin"}))

USAGE = {
    "station add": "站点 新增 编码 名称 home|community 类型 县市区 认定日期(YYYY-MM-DD)",
    "station delist": "站点 摘牌 编码 原因",
    "station reinstate": "站点 恢复 编码",
    "staff add": "人员 新增 openid operator|admin [站点编码]",
    "staff remove": "人员 移除 openid",
    "void": "作废 entry|visit|activity|media 编号 原因",
    "survey": "调查 站点编码 年份 +N|-N 原因",
    "extend": "延期 站点编码 年份 天数 原因",
    "warn": "提醒 站点编码 内容",
    "release": "释放 风险编号",
    "retry": "重试 失败任务编号",
}


def bad(key: str) -> str:
    return texts.AD_BAD_ARGS.format(usage=USAGE[key])


@router.word("站点 新增", "/station add")
async def station_add(ctx: Context, rest: str) -> str:
    parts = rest.split()
    if len(parts) != 6:
        return bad("station add")
    code, name, kind, type_, county, certified = parts
    try:
        certified_on = date.fromisoformat(certified)
    except ValueError:
        return bad("station add")
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.add_station(s, code=code, name=name, kind=kind.lower(), type=type_.lower(),
                                       county=county, certified_on=certified_on)
    if result == adm.AdminRefusal.EXISTS:
        return texts.AD_EXISTS.format(code=code)
    if isinstance(result, adm.AdminRefusal):
        return bad("station add")
    return texts.AD_STATION_ADDED.format(code=code, name=name, eligible=f"{certified_on.year + 1}-01-01")


@router.word("站点 摘牌", "/station delist")
async def station_delist(ctx: Context, rest: str) -> str:
    parts = rest.split(None, 1)
    if len(parts) != 2:
        return bad("station delist")
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.delist_station(s, parts[0], parts[1])
    if result == adm.AdminRefusal.NO_STATION:
        return texts.AD_NO_STATION.format(code=parts[0])
    if result == adm.AdminRefusal.ALREADY:
        return texts.AD_ALREADY_DELISTED.format(code=parts[0])
    return texts.AD_DELISTED.format(code=parts[0])


@router.word("站点 恢复", "/station reinstate")
async def station_reinstate(ctx: Context, rest: str) -> str:
    code = rest.strip()
    if not code or " " in code:
        return bad("station reinstate")
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.reinstate_station(s, code)
    if result == adm.AdminRefusal.NO_STATION:
        return texts.AD_NO_STATION.format(code=code)
    if result == adm.AdminRefusal.ALREADY:
        return texts.AD_ALREADY_ACTIVE.format(code=code)
    return texts.AD_REINSTATED.format(code=code)


@router.word("人员 新增", "/staff add")
async def staff_add(ctx: Context, rest: str) -> str:
    parts = rest.split()
    if len(parts) not in (2, 3):
        return bad("staff add")
    openid, role = parts[0], parts[1].lower()
    code = parts[2] if len(parts) == 3 else None
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.add_staff(s, openid, role, code)
    if result == adm.AdminRefusal.NO_STATION:
        return texts.AD_NO_STATION.format(code=code)
    if isinstance(result, adm.AdminRefusal):
        return bad("staff add")
    station = f"（站点 {code}）" if role == "operator" else ""
    return texts.AD_STAFF_ADDED.format(openid=openid, role=texts.ROLE_NAMES[role], station=station)


@router.word("人员 移除", "/staff remove")
async def staff_remove(ctx: Context, rest: str) -> str:
    openid = rest.strip()
    if not openid or " " in openid:
        return bad("staff remove")
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.remove_staff(s, openid)
    if isinstance(result, adm.AdminRefusal):
        return texts.AD_STAFF_MISSING.format(openid=openid)
    return texts.AD_STAFF_REMOVED.format(openid=openid)


@router.word("作废", "/void")
async def void(ctx: Context, rest: str) -> str:
    parts = rest.split(None, 2)
    target = parse_id(parts[1]) if len(parts) == 3 else None
    if target is None or parts[0].lower() not in adm.VOID_TARGETS:
        return bad("void")
    kind = parts[0].lower()
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.request_void(s, kind, target, actor=ctx.openid, reason=parts[2])
    name = texts.VOID_KIND_NAMES[kind]
    if result == adm.AdminRefusal.NO_TARGET:
        return texts.AD_VOID_MISSING.format(kind=name, target=target)
    if result == adm.AdminRefusal.ALREADY:
        return texts.AD_VOID_ALREADY.format(kind=name, target=target)
    if isinstance(result, adm.AdminRefusal):
        return bad("void")
    await ctx.deps.enqueue("apply_void", result.id, job_id=f"apply_void:{result.id}")
    return texts.AD_VOID_OK.format(id=result.id, kind=name, target=target)


@router.word("调查", "/survey")
async def survey(ctx: Context, rest: str) -> str:
    parts = rest.split(None, 3)
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].lstrip("+-").isdigit() \
            or parts[2][0] not in "+-" or len(parts[2]) > 4:
        return bad("survey")
    code, year, amount = parts[0], int(parts[1]), int(parts[2])
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.record_survey(s, code, year, amount, actor=ctx.openid, reason=parts[3])
        total = 0
        if result == adm.AdminRefusal.SURVEY_CAP:
            station = await adm.station_by_code(s, code)
            assert station is not None
            total = await adm.survey_committed(s, station.id, year)
    if result == adm.AdminRefusal.NO_STATION:
        return texts.AD_NO_STATION.format(code=code)
    if result == adm.AdminRefusal.SURVEY_CAP:
        return texts.AD_SURVEY_CAP.format(code=code, year=year, total=total)
    if isinstance(result, adm.AdminRefusal):
        return bad("survey")
    await ctx.deps.enqueue("apply_survey", result.id, job_id=f"apply_survey:{result.id}")
    return texts.AD_SURVEY_OK.format(code=code, year=year, amount=amount, id=result.id)


@router.word("延期", "/extend")
async def extend(ctx: Context, rest: str) -> str:
    parts = rest.split(None, 3)
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
        return bad("extend")
    code, year, days = parts[0], int(parts[1]), int(parts[2])
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.grant_extension(s, code, year, days, actor=ctx.openid, reason=parts[3])
    if result == adm.AdminRefusal.NO_STATION:
        return texts.AD_NO_STATION.format(code=code)
    if result == adm.AdminRefusal.OUT_OF_RANGE:
        return texts.AD_EXTEND_RANGE
    if isinstance(result, adm.AdminRefusal):
        return bad("extend")
    return texts.AD_EXTEND_OK.format(code=code, year=year, days=days, id=result.id)


@router.word("提醒", "/warn")
async def warn(ctx: Context, rest: str) -> str:
    parts = rest.split(None, 1)
    if len(parts) != 2:
        return bad("warn")
    code, note = parts
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.warn_station(s, code, note, actor=ctx.openid,
                                        message=texts.AD_WARN_MESSAGE.format(note=note.strip()))
    if result == adm.AdminRefusal.NO_STATION:
        return texts.AD_NO_STATION.format(code=code)
    if isinstance(result, adm.AdminRefusal):
        return bad("warn")
    return texts.AD_WARN_OK.format(code=code, id=result.id)


@router.word("风险", "/flags", changes_state=False)
async def flags(ctx: Context, rest: str) -> str:
    async with ctx.deps.sessions() as s:
        rows = await adm.list_flags(s)
    if not rows:
        return texts.AD_NO_FLAGS
    return "\n".join(texts.AD_FLAG_LINE.format(
        id=f.id, rule=f.rule, hold="（暂扣）" if f.hold else "", station=f.station or "-",
        talent=f.talent_id or "-", visit=f.visit_id or "-", detail=f.detail[:60]) for f in rows)


@router.word("释放", "/release")
async def release(ctx: Context, rest: str) -> str:
    flag_id = parse_id(rest)
    if flag_id is None:
        return bad("release")
    async with ctx.deps.sessions() as s:
        result = await adm.open_flag(s, flag_id)
    if isinstance(result, adm.AdminRefusal):
        return texts.AD_NO_FLAG.format(id=flag_id)
    await ctx.deps.enqueue("release_flag", flag_id, ctx.openid, job_id=f"release_flag:{flag_id}")
    return texts.AD_RELEASE_OK.format(id=flag_id)


@router.word("失败任务", "/dead", changes_state=False)
async def dead(ctx: Context, rest: str) -> str:
    async with ctx.deps.sessions() as s:
        rows = await adm.dead_letters(s)
    if not rows:
        return texts.AD_NO_DEAD
    return "\n".join(texts.AD_DEAD_LINE.format(id=d.id, task=d.task, fact=d.fact_id, reason=d.reason[:60],
                                               at=format_local(d.created_at)) for d in rows)


@router.word("重试", "/retry")
async def retry(ctx: Context, rest: str) -> str:
    dead_id = parse_id(rest)
    if dead_id is None:
        return bad("retry")
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.take_dead_letter(s, dead_id)
    if isinstance(result, adm.AdminRefusal):
        return texts.AD_DEAD_MISSING.format(id=dead_id)
    await ctx.deps.enqueue(result.task, result.fact_id, job_id=f"{result.task}:{result.fact_id}:retry{dead_id}")
    return texts.AD_RETRY_OK.format(id=dead_id)


@router.word("审计", "/audit", changes_state=False)
async def audit(ctx: Context, rest: str) -> str:
    n = parse_id(rest) if rest.strip() else 10
    async with ctx.deps.sessions() as s:
        rows = await adm.audit_tail(s, min(n or 10, 50))
    if not rows:
        return texts.AD_NO_AUDIT
    return "\n".join(texts.AD_AUDIT_LINE.format(
        at=periods.to_local(a.at).strftime("%m-%d %H:%M"), actor=a.actor, role=a.role, command=a.command[:60],
        outcome=a.outcome[:40]) for a in rows)


@router.word("月结", "/month-close")
async def close_month(ctx: Context, rest: str) -> str:
    key = rest.strip()
    if len(key) != 7:
        return texts.AD_BAD_ARGS.format(usage=texts.AD_CLOSE_USAGE)
    async with transaction(ctx.deps.sessions) as s:
        result = await month_close(s, key, utcnow())
    if isinstance(result, CloseRefused):
        return texts.AD_CLOSE_REFUSED.format(month=key)
    top = next((r for r in result.board if r.station_id == result.featured_station_id), None)
    top_text = texts.AD_CLOSE_TOP.format(code=top.code, name=top.name, points=top.points,
                                         featured=result.featured_month) if top else texts.AD_CLOSE_NO_TOP
    if result.already:
        return texts.AD_CLOSED_ALREADY.format(month=key, top=top_text)
    return texts.AD_CLOSED.format(month=key, top=top_text, n=result.notified)


@router.word("评星", "/rate")
async def rate(ctx: Context, rest: str) -> str:
    parts = rest.split()
    if not parts or not parts[0].isdigit() or len(parts[0]) != 4 or len(parts) > 2 \
            or (len(parts) == 2 and parts[1].lower() not in ("确认", "confirm")):
        return texts.AD_BAD_ARGS.format(usage=texts.AD_RATE_USAGE)
    year, confirming = int(parts[0]), len(parts) == 2
    settings = ctx.deps.settings
    async with transaction(ctx.deps.sessions) as s:
        stored = await rating.load(s, year)
        result: rating.Outcome | rating.RatingRefused
        was_confirmed = stored is not None and stored.status == "confirmed"
        if stored is not None and was_confirmed:
            result = stored
        else:
            result = await rating.preview(s, year, settings)
            if confirming and isinstance(result, rating.Outcome):
                result = await rating.confirm(s, year, ctx.openid, admin_openids=settings.admin_openid_set)
    if isinstance(result, rating.RatingRefused):
        return texts.AD_RATE_REFUSED.format(detail=result.detail)
    summary = result.summary()
    if result.status == "confirmed":
        if was_confirmed or result.already:
            return texts.AD_RATE_ALREADY.format(year=year)
        return texts.AD_RATE_CONFIRMED.format(year=year, **summary)
    delisted = "、".join(x.code for x in result.delisted)
    detail = f"摘牌：{delisted}。" if delisted else ""
    return texts.AD_RATE_PREVIEW.format(year=year, rev=result.revision, detail=detail, **summary)
