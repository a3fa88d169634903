"""Admin words (Chinese, and English `/word` aliases). The router is gated by the admin role; state-changing
words need safe mode (or `talenthome admin`) and leave an audit row (bot/router.py)."""

from __future__ import annotations

import unicodedata
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.handlers import operator as operator_words
from bot.router import Context, Router
from scoring import accounts, gifts, periods, rating, satisfaction, staff
from scoring import admin as adm
from scoring.calendar import CloseRefused, month_close
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.facts import survey as survey_fact
from scoring.facts import void as void_fact
from scoring.models import Station
from scoring.operations import format_local, parse_id
from scoring.texts import admin as admin_texts

router = Router("admin", roles=frozenset({"admin"}))

USAGE = texts.AD_USAGE
GIFT_FIELDS = texts.AD_GIFT_FIELD_WORDS
CITY_WIDE = texts.AD_CITY_WIDE_WORDS
GIFT_LIST_MAX = 15


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
    station = texts.AD_STAFF_STATION.format(code=code) if role == "operator" else ""
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
    await ctx.deps.enqueue_fact(void_fact.job(result.id))
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
    if result == adm.AdminRefusal.NO_STATION:
        return texts.AD_NO_STATION.format(code=code)
    if isinstance(result, adm.SurveyCapped):
        return texts.AD_SURVEY_CAP.format(code=code, year=year, total=result.committed)
    if isinstance(result, adm.AdminRefusal):
        return bad("survey")
    await ctx.deps.enqueue_fact(survey_fact.job(result.id))
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
        id=f.id, rule=f.rule, hold=texts.AD_FLAG_HOLD if f.hold else "", station=f.station or "-",
        talent=f.talent_id or "-", visit=f.visit_id or "-", detail=admin_texts.flag_detail(f.rule, f.params)[:60])
        for f in rows)


@router.word("释放", "/release")
async def release(ctx: Context, rest: str) -> str:
    flag_id = parse_id(rest)
    if flag_id is None:
        return bad("release")
    async with transaction(ctx.deps.sessions) as s:
        result = await adm.release_flag(s, flag_id, ctx.openid)
    if isinstance(result, adm.AdminRefusal):
        return texts.AD_NO_FLAG.format(id=flag_id)
    if result.job is not None:
        await ctx.deps.enqueue_fact(result.job)
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
    await ctx.deps.enqueue_fact(adm.retry_job(result))
    return texts.AD_RETRY_OK.format(id=dead_id)


@router.word("审计", "/audit", changes_state=False)
async def audit(ctx: Context, rest: str) -> str:
    """The latest staff actions (`审计 [n]`), and a count of refused words beside them; `审计 拒绝 [n]`
    (`/audit refused`) lists the refusals themselves."""
    words = rest.split()
    kind = staff.AuditKind.ACTION
    if words and words[0].lower() in texts.AD_AUDIT_REFUSED_WORDS:
        kind, words = staff.AuditKind.REFUSAL, words[1:]
    n = parse_id(words[0]) if words else 10
    async with ctx.deps.sessions() as s:
        view = await staff.audit_view(s, min(n or 10, 50), kind)
    if not view.rows:
        return texts.AD_NO_AUDIT if kind is staff.AuditKind.ACTION else texts.AD_NO_REFUSALS
    lines = [texts.AD_AUDIT_LINE.format(
        at=periods.to_local(a.at).strftime("%m-%d %H:%M"), actor=a.actor, role=a.role, command=a.command[:60],
        outcome=a.outcome[:40]) for a in view.rows]
    if kind is staff.AuditKind.ACTION and view.refusals:
        lines.append(texts.AD_AUDIT_REFUSALS.format(n=view.refusals))
    return "\n".join(lines)


@router.word("低分", "/lowscores", changes_state=False)
async def low_scores(ctx: Context, rest: str) -> str:
    """The latest low scores with who gave them (`低分 [n]`): admins may know; the station is not told."""
    n = parse_id(rest) if rest.strip() else 10
    async with ctx.deps.sessions() as s:
        rows = await satisfaction.low_scores(s, min(n or 10, 50))
    if not rows:
        return texts.AD_NO_LOW_SCORES
    return "\n".join(texts.AD_LOW_SCORE_LINE.format(
        at=periods.to_local(r.at).strftime("%m-%d %H:%M"), station=r.station, activity=r.activity_id,
        title=r.title[:30], score=r.score, name=r.name, cert_no=r.cert_no, comment=(r.comment or texts.AD_NONE)[:60])
        for r in rows)


@router.word("代发活动", "/activity new-for")
async def publish_for(ctx: Context, rest: str) -> str:
    """`代发活动 <站点编码> 标题 | 开始 | 结束 | 名额 | 主题`: an admin publishes at a station, with no
    length limit (an operator's activity is at most ACTIVITY_MAX_HOURS long)."""
    code, _, args = rest.strip().partition(" ")
    if not code or "|" not in args:
        return texts.AD_PUBLISH_FOR_USAGE
    async with ctx.deps.sessions() as s:
        station = await adm.station_by_code(s, code)
    if station is None:
        return texts.AD_NO_STATION.format(code=code)
    return await operator_words.publish_at(ctx, station.id, args, max_hours=None)


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
            or (len(parts) == 2 and parts[1].lower() not in texts.AD_CONFIRM_WORDS):
        return texts.AD_BAD_ARGS.format(usage=texts.AD_RATE_USAGE)
    year, confirming = int(parts[0]), len(parts) == 2
    async with transaction(ctx.deps.sessions) as s:
        result = await rating.rate(s, year, ctx.deps.settings, mode="confirm" if confirming else "preview",
                                   actor=ctx.openid)
    if isinstance(result, rating.RatingRefused):
        return texts.AD_RATE_REFUSED.format(detail=result.detail)
    summary = result.summary()
    if result.status == "confirmed":
        if result.already:
            return texts.AD_RATE_ALREADY.format(year=year)
        return texts.AD_RATE_CONFIRMED.format(year=year, **summary)
    delisted = texts.LIST_SEP.join(x.code for x in result.delisted)
    detail = texts.AD_RATE_DELISTED.format(codes=delisted) if delisted else ""
    return texts.AD_RATE_PREVIEW.format(year=year, rev=result.revision, detail=detail, **summary)


# -- the gift catalogue ----------------------------------------------------------------------------------
def _int(text: str) -> int | None:
    """A whole number as typed (full-width digits too, an optional sign); None when it is not one."""
    t = unicodedata.normalize("NFKC", text).strip()
    digits = t[1:] if t[:1] in "+-" else t
    return int(t) if digits.isascii() and digits.isdigit() and len(digits) < 10 else None


def _where(code: str | None, name: str | None) -> str:
    return texts.AD_GIFT_AT.format(name=name, code=code) if code else texts.AD_GIFT_CITY


async def _station_where(session: AsyncSession, station_id: int | None) -> str:
    station = await session.get(Station, station_id) if station_id is not None else None
    return _where(station.code, station.name) if station else texts.AD_GIFT_CITY


def _gift_refused(result: gifts.GiftRefused, gift_id: int | None = None, where: str = "") -> str:
    g = result.gift
    return texts.AD_GIFT_REFUSED[result.reason].format(
        id=g.id if g else gift_id, name=g.name if g else "", where=where,
        retired=texts.AD_GIFT_RETIRED_SUFFIX if g is not None and not g.active else "")


@router.word("礼品 新增", "/gift add")
async def gift_add(ctx: Context, rest: str) -> str:
    parts = rest.split()
    if len(parts) not in (3, 4) or _int(parts[1]) is None or _int(parts[2]) is None:
        return bad("gift add")
    name, cost, stock = parts[0], _int(parts[1]), _int(parts[2])
    assert cost is not None and stock is not None
    code = parts[3] if len(parts) == 4 else None
    async with transaction(ctx.deps.sessions) as s:
        station = await adm.station_by_code(s, code) if code else None
        if code and station is None:
            return texts.AD_NO_STATION.format(code=code)
        result = await gifts.add_gift(s, name=name, cost=cost, stock=stock,
                                      station_id=station.id if station else None)
    where = _where(station.code, station.name) if station else texts.AD_GIFT_CITY
    if isinstance(result, gifts.GiftRefused):
        return _gift_refused(result, where=where)
    return texts.AD_GIFT_ADDED.format(id=result.id, name=result.name, cost=result.cost, stock=result.stock,
                                      where=where)


@router.word("礼品 修改", "/gift edit")
async def gift_edit(ctx: Context, rest: str) -> str:
    parts = rest.split(None, 2)
    gift_id = parse_id(parts[0]) if parts else None
    field = GIFT_FIELDS.get(parts[1].lower()) if len(parts) == 3 else None
    if gift_id is None or field is None:
        return bad("gift edit")
    value = parts[2].strip()
    changes: dict[str, object] = {}
    async with transaction(ctx.deps.sessions) as s:
        if field in ("cost", "stock"):
            number = _int(value)
            if number is None:
                return bad("gift edit")
            changes[field] = number
        elif field == "station":
            station = None if value.lower() in CITY_WIDE else await adm.station_by_code(s, value)
            if station is None and value.lower() not in CITY_WIDE:
                return texts.AD_NO_STATION.format(code=value)
            changes["station_id"] = station.id if station else None
        elif field == "description":
            changes[field] = "" if value in texts.AD_EMPTY_WORDS else value
        else:
            changes[field] = value
        result = await gifts.edit_gift(s, gift_id, **changes)  # type: ignore[arg-type]
        if isinstance(result, gifts.GiftRefused):
            where = await _station_where(s, result.gift.station_id) if result.gift else ""
            return _gift_refused(result, gift_id, where)
        g = result.gift
        shown = []
        for key, old in result.before.items():
            label = texts.AD_GIFT_FIELD_NAMES[key]
            if key == "station_id":
                old_where = await _station_where(s, old if isinstance(old, int) else None)
                shown.append(f"{label} {old_where} → {await _station_where(s, g.station_id)}")
            else:
                shown.append(f"{label} {old or texts.AD_EMPTY} → {getattr(g, key) or texts.AD_EMPTY}")
    if not shown:
        return texts.AD_GIFT_UNCHANGED.format(id=g.id, name=g.name, field=texts.AD_GIFT_FIELD_NAMES[
            "station_id" if field == "station" else field])
    return texts.AD_GIFT_EDITED.format(id=g.id, name=g.name, changes=texts.CLAUSE_SEP.join(shown))


@router.word("礼品 补货", "/gift restock")
async def gift_restock(ctx: Context, rest: str) -> str:
    parts = rest.split()
    gift_id = parse_id(parts[0]) if len(parts) == 2 else None
    add = _int(parts[1]) if len(parts) == 2 else None
    if gift_id is None or add is None:
        return bad("gift restock")
    async with transaction(ctx.deps.sessions) as s:
        result = await gifts.restock_gift(s, gift_id, add)
    if isinstance(result, gifts.GiftRefused):
        return _gift_refused(result, gift_id)
    return texts.AD_GIFT_RESTOCKED.format(id=result.id, name=result.name, added=add, stock=result.stock)


@router.word("礼品 下架", "/gift retire")
async def gift_retire(ctx: Context, rest: str) -> str:
    gift_id = parse_id(rest)
    if gift_id is None:
        return bad("gift retire")
    async with transaction(ctx.deps.sessions) as s:
        result = await gifts.retire_gift(s, gift_id)
    if isinstance(result, gifts.GiftRefused):
        return _gift_refused(result, gift_id)
    return texts.AD_GIFT_RETIRED.format(id=result.id, name=result.name)


@router.word("礼品 恢复", "/gift restore")
async def gift_restore(ctx: Context, rest: str) -> str:
    gift_id = parse_id(rest)
    if gift_id is None:
        return bad("gift restore")
    async with transaction(ctx.deps.sessions) as s:
        result = await gifts.restore_gift(s, gift_id)
    if isinstance(result, gifts.GiftRefused):
        return _gift_refused(result, gift_id)
    return texts.AD_GIFT_RESTORED.format(id=result.id, name=result.name, stock=result.stock)


async def gift_listing(ctx: Context) -> str:
    """Every gift, on offer first: cost, stock, redeemed and pending, where, retired (the first
    GIFT_LIST_MAX; `talenthome gift list` and `talenthome export gifts` show them all)."""
    async with ctx.deps.sessions() as s:
        views = await gifts.gift_views(s)
    if not views:
        return texts.AD_GIFT_NONE
    out = [texts.AD_GIFT_LINE.format(
        id=v.id, name=v.name, cost=v.cost, stock=v.stock, redeemed=v.redeemed,
        pending=texts.AD_GIFT_PENDING.format(pending=v.pending) if v.pending else "",
        where=_where(v.station_code, v.station_name), retired="" if v.active else texts.AD_GIFT_RETIRED_MARK)
        for v in views[:GIFT_LIST_MAX]]
    if len(views) > GIFT_LIST_MAX:
        out.append(texts.AD_GIFT_MORE.format(n=len(views), shown=GIFT_LIST_MAX))
    return "\n".join(out)


@router.word("礼品 列表", "/gift list", changes_state=False)
async def gift_list(ctx: Context, rest: str) -> str:
    return await gift_listing(ctx)


# -- unbinding -------------------------------------------------------------------------------------------
@router.word("解绑 *", "/unbind")
async def unbind(ctx: Context, rest: str) -> str:
    """`解绑 <人才证号>`: unbind a talent from their WeChat account (the bare `解绑` is the talent's own
    word, handlers/account.py). Points stay with the talent."""
    cert_no = rest.strip()
    if not cert_no or " " in cert_no:
        return bad("unbind")
    async with transaction(ctx.deps.sessions) as s:
        result = await accounts.unbind(s, cert_no=cert_no)
    if isinstance(result, accounts.Unbound):
        return texts.AD_UNBIND_OK.format(cert_no=result.talent.cert_no, name=result.talent.name)
    if result.talent is not None:
        return texts.AD_UNBIND_NOT_BOUND.format(cert_no=result.talent.cert_no, name=result.talent.name)
    return texts.AD_UNBIND_NO_TALENT.format(cert_no=cert_no)
