"""Services, bookings and consultations (policy measures 1, 7, 8, 9).

Talents: `服务 [站点]`, `预约 站点 日期 时间 [服务编号]` (bare: the usage and their bookings), `取消预约 编号`,
`咨询 [站点编码|全市] 问题`, `评价咨询 编号 分数`. Staff (operators for their station, admins for any):
`答复 #id 内容`, `接单 #id`, `转交 #id 同事编号`, `结单 #id`, `待办`, `服务 新增|修改|下架 ...`, `服务职责 ...`,
`活动分类 id 分类`. The staff router's words are audited and need safe mode (bot/router.py).
"""

from __future__ import annotations

from datetime import datetime

from bot import texts
from bot.router import Context, Router
from scoring import bookings, consultations, services
from scoring.clock import utcnow
from scoring.consultations import ConsultRefusal
from scoring.db import transaction
from scoring.models import ServiceItem, Station
from scoring.operations import parse_id
from scoring.staff import Role

router = Router("services")
staff_router = Router("services-staff", roles=frozenset({"operator", "admin"}))

NOTICES = consultations.Notices(asked=texts.STAFF_ASKED, answer=texts.TALENT_ANSWER,
                                transferred=texts.STAFF_TRANSFERRED, closed=texts.TALENT_CLOSED)
CITY_WORDS = texts.CITY_WORDS


def _head(text: str) -> tuple[str, str]:
    """The first word and the rest (any whitespace, the full-width space too)."""
    parts = text.strip().split(None, 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0] if parts else "", "")


def _now(ctx: Context) -> datetime:
    return ctx.incoming.received_at or utcnow()


def _limits(ctx: Context) -> bookings.Limits:
    s = ctx.deps.settings
    return bookings.Limits(horizon_days=s.booking_horizon_days, visit_capacity=s.booking_visit_capacity,
                           max_open=s.talent_max_open_bookings)


async def _scope(ctx: Context) -> int | None:
    """None: an admin (every station); else the operator's station (0, matching none, if it had none)."""
    access = await ctx.access()
    if Role.ADMIN in access.roles:
        return None
    return access.station_id or 0


# -- talents: the service list ----------------------------------------------------------------------------
def _item_line(it: ServiceItem) -> str:
    return texts.SERVICE_LINE.format(
        id=it.id, name=it.name, schedule=texts.IN_BRACKETS.format(it.schedule) if it.schedule else "",
        bookable=texts.SERVICE_BOOKABLE.format(cap=it.capacity) if it.bookable else "",
        description=texts.AFTER_COLON.format(it.description) if it.description else "")


@router.word("服务", "services", changes_state=False)
async def service_list(ctx: Context, rest: str) -> str:
    talent = await ctx.talent()
    async with ctx.deps.sessions() as s:
        if rest:
            station = await services.find_station(s, rest)
            if station is None:
                return texts.SERVICES_NO_STATION.format(text=rest[:30])
        else:
            station = await services.last_visited(s, talent.id) if talent is not None else None
            if station is None:
                return texts.SERVICES_WHICH
        if station.status != "active":
            return texts.SERVICES_DELISTED.format(name=station.name)
        found = await services.service_list(s, station)
    lines = [texts.SERVICES_HEAD.format(name=station.name, code=station.code)]
    if found.duties:
        lines.append(texts.SERVICES_DUTIES.format(duties=found.duties))
    if found.common:
        lines.append(texts.SERVICES_COMMON)
        lines += [_item_line(it) for it in found.common]
    lines.append(texts.SERVICES_OWN)
    lines += [_item_line(it) for it in found.own] or [texts.SERVICES_NONE_OWN]
    lines.append(texts.SERVICES_FOOT.format(code=station.code))
    return "\n".join(lines)


# -- talents: bookings ------------------------------------------------------------------------------------
def _usage() -> str:
    return texts.BOOK_USAGE.format(first=bookings.FIRST_HOUR, last=bookings.LAST_HOUR)


@router.word("预约", "book")
async def book(ctx: Context, rest: str) -> str:
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    now = _now(ctx)
    parts = rest.split()
    if len(parts) < 3:
        async with ctx.deps.sessions() as s:
            mine = await bookings.my_bookings(s, talent.id, now)
        if not mine:
            return _usage()
        lines = "\n".join(texts.BOOK_LINE.format(
            id=b.id, when=bookings.label(b.slot_start), station=b.station,
            service=texts.IN_BRACKETS.format(b.service) if b.service else "") for b in mine)
        return texts.BOOK_MINE.format(lines=lines) + "\n" + _usage()
    slot = bookings.parse_slot(parts[1], parts[2], now)
    if slot is None:
        return texts.BOOK_BAD_DATE + "\n" + _usage()
    service_text = " ".join(parts[3:])
    async with transaction(ctx.deps.sessions) as s:
        station = await services.find_station(s, parts[0])
        if station is None:
            return texts.BOOK_REFUSED["no_station"]
        service_id = None
        if service_text:
            service_id = parse_id(service_text)
            if service_id is None:
                named = [it for it in await services.station_items(s, station.id) + await services.common_items(s)
                         if it.name == service_text]
                if not named:
                    return texts.BOOK_REFUSED["no_service"]
                service_id = named[0].id
        result = await bookings.book(s, talent_id=talent.id, station_id=station.id, slot_start=slot,
                                     service_id=service_id, now=now, limits=_limits(ctx), alert=texts.OP_NEW_BOOKING)
    if isinstance(result, bookings.Booked):
        b = result.booking
        return texts.BOOK_OK.format(id=b.id, when=bookings.label(b.slot_start), station=result.station.name,
                                    service=texts.IN_BRACKETS.format(result.service.name) if result.service else "")
    return texts.BOOK_REFUSED[result.reason].format(limit=result.limit, first=bookings.FIRST_HOUR,
                                                    last=bookings.LAST_HOUR)


@router.word("取消预约", "unbook")
async def unbook(ctx: Context, rest: str) -> str:
    booking_id = parse_id(rest)
    if booking_id is None:
        return texts.UNBOOK_USAGE
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    async with transaction(ctx.deps.sessions) as s:
        result = await bookings.cancel(s, talent_id=talent.id, booking_id=booking_id, now=_now(ctx))
        station = await s.get(Station, result.station_id) if not isinstance(result, bookings.BookingRefused) \
            else None
    if isinstance(result, bookings.BookingRefused):
        return texts.UNBOOK_REFUSED.get(result.reason, texts.UNBOOK_REFUSED["not_found"]).format(id=booking_id)
    return texts.UNBOOK_OK.format(id=result.id, when=bookings.label(result.slot_start),
                                  station=station.name if station else "")


# -- talents: consultations -------------------------------------------------------------------------------
@router.word("咨询", "ask")
async def ask(ctx: Context, rest: str) -> str:
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    if not rest:
        return texts.ASK_USAGE
    head, tail = _head(rest)
    settings = ctx.deps.settings
    if head.startswith(texts.NUMBER_SIGNS) and parse_id(head) is not None:  # 咨询 #12 追问: adds to an open question
        cid = parse_id(head) or 0
        async with transaction(ctx.deps.sessions) as s:
            more = await consultations.follow_up(s, talent_id=talent.id, cid=cid, text=tail.strip(), now=_now(ctx),
                                                 notice=texts.STAFF_FOLLOW_UP, admin_openids=settings.admin_openid_set)
        if isinstance(more, consultations.Done):
            return texts.FOLLOW_UP_OK.format(id=cid)
        return texts.FOLLOW_UP_REFUSED.get(more.reason, texts.ASK_USAGE).format(id=cid, max=consultations.MAX_TEXT)
    async with transaction(ctx.deps.sessions) as s:
        station: Station | None
        if head.lower() in CITY_WORDS and tail.strip():
            station, question = None, tail.strip()
        else:
            named = await services.find_station(s, head, exact=True) if tail.strip() else None
            if named is not None:
                station, question = named, tail.strip()
            else:
                station, question = await services.last_visited(s, talent.id), rest
        result = await consultations.ask(s, talent_id=talent.id, station_id=station.id if station else None,
                                         text=question, now=_now(ctx), max_open=settings.talent_max_open_questions,
                                         notices=NOTICES, admin_openids=settings.admin_openid_set)
    name = station.name if station else texts.CITY_NAME
    if isinstance(result, consultations.Done):
        return texts.ASK_OK.format(id=result.consultation.id, station=name)
    return texts.ASK_REFUSED[result.reason].format(max=consultations.MAX_TEXT, limit=result.limit, station=name)


@router.word("评价咨询", "rate")
async def rate(ctx: Context, rest: str) -> str:
    parts = rest.split()
    cid = parse_id(parts[0]) if parts else None
    score = parse_id(parts[1]) if len(parts) == 2 else None
    if cid is None or score is None:
        return texts.RATE_USAGE
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    async with transaction(ctx.deps.sessions) as s:
        result = await consultations.rate(s, talent_id=talent.id, cid=cid, score=score, now=_now(ctx))
    if isinstance(result, consultations.Done):
        return texts.RATE_OK.format(id=cid, score=score)
    return texts.RATE_REFUSED.get(result.reason, texts.RATE_USAGE).format(id=cid)


# -- staff: consultations ---------------------------------------------------------------------------------
async def _colleagues(ctx: Context, station_id: int | None) -> str:
    async with ctx.deps.sessions() as s:
        ids = await consultations.colleagues(s, station_id)
    return texts.LIST_SEP.join(f"#{i}" for i in ids) or "-"


async def _refused(ctx: Context, r: consultations.Refused, cid: int, scope: int | None) -> str:
    owner = texts.OWNER_ADMIN
    if r.owner is not None:
        async with ctx.deps.sessions() as s:
            sid = await consultations.staff_id(s, r.owner)
        owner = texts.OWNER_STAFF.format(id=sid) if sid is not None else texts.OWNER_ADMIN
    colleagues = await _colleagues(ctx, scope) if r.reason == ConsultRefusal.BAD_TARGET else ""
    return texts.CONSULT_REFUSED.get(r.reason, texts.CONSULT_REFUSED["not_found"]).format(
        id=cid, owner=owner, colleagues=colleagues, max=consultations.MAX_TEXT)


@staff_router.word("答复", "answer")
async def answer(ctx: Context, rest: str) -> str:
    head, text = _head(rest)
    cid = parse_id(head)
    if cid is None or not text.strip():
        return texts.ANSWER_USAGE
    scope = await _scope(ctx)
    async with transaction(ctx.deps.sessions) as s:
        result = await consultations.answer(s, cid=cid, actor=ctx.openid, scope=scope, text=text.strip(),
                                            now=_now(ctx), notices=NOTICES)
    if isinstance(result, consultations.Done):
        return texts.ANSWER_OK.format(id=cid, claimed=texts.ANSWER_CLAIMED if result.claimed else "")
    return await _refused(ctx, result, cid, scope)


@staff_router.word("接单", "claim")
async def claim(ctx: Context, rest: str) -> str:
    cid = parse_id(rest)
    if cid is None:
        return texts.CLAIM_USAGE
    scope = await _scope(ctx)
    async with transaction(ctx.deps.sessions) as s:
        result = await consultations.claim(s, cid=cid, actor=ctx.openid, scope=scope, now=_now(ctx))
    if isinstance(result, consultations.Done):
        return texts.CLAIM_OK.format(id=cid)
    return await _refused(ctx, result, cid, scope)


@staff_router.word("转交", "transfer")
async def transfer(ctx: Context, rest: str) -> str:
    scope = await _scope(ctx)
    parts = rest.split()
    cid = parse_id(parts[0]) if parts else None
    if cid is None or len(parts) != 2:
        return texts.TRANSFER_USAGE.format(colleagues=await _colleagues(ctx, scope))
    async with transaction(ctx.deps.sessions) as s:
        result = await consultations.transfer(s, cid=cid, actor=ctx.openid, scope=scope, target=parts[1],
                                              now=_now(ctx), notices=NOTICES)
        to = await consultations.staff_id(s, result.consultation.owner_openid or "") \
            if isinstance(result, consultations.Done) else None
    if isinstance(result, consultations.Done):
        return texts.TRANSFER_OK.format(id=cid, to=to)
    return await _refused(ctx, result, cid, scope)


@staff_router.word("结单", "close")
async def close(ctx: Context, rest: str) -> str:
    cid = parse_id(rest)
    if cid is None:
        return texts.CLOSE_USAGE
    scope = await _scope(ctx)
    async with transaction(ctx.deps.sessions) as s:
        result = await consultations.close(s, cid=cid, actor=ctx.openid, scope=scope, now=_now(ctx),
                                           notices=NOTICES)
    if isinstance(result, consultations.Done):
        return texts.CLOSE_OK.format(id=cid)
    return await _refused(ctx, result, cid, scope)


@staff_router.word("待办", "todo", changes_state=False)
async def todo(ctx: Context, rest: str) -> str:
    scope = await _scope(ctx)
    async with ctx.deps.sessions() as s:
        items = await consultations.todo(s, actor=ctx.openid, scope=scope)
    if not items:
        return texts.TODO_NONE
    lines = [texts.TODO_HEAD.format(n=len(items))]
    lines += [texts.TODO_LINE.format(id=o.id, state=texts.TODO_MINE if o.mine else texts.TODO_UNOWNED,
                                     station=o.station or texts.CITY_NAME, when=" " + bookings.label(o.created_at),
                                     question=o.question[:60]) for o in items]
    lines.append(texts.TODO_FOOT)
    return "\n".join(lines)


# -- staff: service lists, duties, activity categories ----------------------------------------------------
def _fields(parts: list[str]) -> services.ItemFields | None:
    """名称 | 说明 | 提供时间 | 可预约(是/否) | 每时段名额 (the last two optional)."""
    if not 1 <= len(parts) <= 5:
        return None
    name, description, schedule, flag, cap = [*parts, "", "", "", "", ""][:5]
    if flag.lower() not in services.YES | services.NO:
        return None
    capacity = parse_id(cap) if cap else None
    if cap and capacity is None:
        return None
    return services.ItemFields(name=name, description=description, schedule=schedule,
                               bookable=flag.lower() in services.YES, capacity=capacity)


def _svc_refused(r: services.ServiceRefusal, item_id: int | None = None) -> str:
    return texts.SVC_REFUSED[r].format(id=item_id)


@staff_router.word("服务 新增", "/service add")
async def service_add(ctx: Context, rest: str) -> str:
    scope = await _scope(ctx)
    parts = [p.strip() for p in rest.split("|")]
    station_id: int | None = scope
    async with transaction(ctx.deps.sessions) as s:
        if scope is None:  # an admin names the list first: a station code or 全市
            target, name = _head(parts[0])
            if not name.strip():
                return texts.SVC_ADD_USAGE
            parts[0] = name.strip()
            if target.lower() in CITY_WORDS:
                station_id = None
            else:
                station = await services.find_station(s, target, exact=True)
                if station is None:
                    return _svc_refused(services.ServiceRefusal.NO_STATION)
                station_id = station.id
        fields = _fields(parts)
        if fields is None or not fields.name:
            return texts.SVC_ADD_USAGE
        result = await services.add_item(s, station_id=station_id, fields=fields, scope=scope, now=_now(ctx))
    if isinstance(result, services.ServiceRefusal):
        return _svc_refused(result)
    return texts.SVC_ADDED.format(id=result.id, name=result.name)


@staff_router.word("服务 修改", "/service edit")
async def service_edit(ctx: Context, rest: str) -> str:
    scope = await _scope(ctx)
    head, tail = _head(rest)
    item_id = parse_id(head)
    fields = _fields([p.strip() for p in tail.split("|")]) if item_id is not None else None
    if item_id is None or fields is None or not fields.name:
        return texts.SVC_EDIT_USAGE
    async with transaction(ctx.deps.sessions) as s:
        result = await services.edit_item(s, item_id=item_id, fields=fields, scope=scope, now=_now(ctx))
    if isinstance(result, services.ServiceRefusal):
        return _svc_refused(result, item_id)
    return texts.SVC_EDITED.format(id=result.id, name=result.name)


@staff_router.word("服务 下架", "/service remove")
async def service_remove(ctx: Context, rest: str) -> str:
    scope = await _scope(ctx)
    item_id = parse_id(rest)
    if item_id is None:
        return texts.SVC_REMOVE_USAGE
    async with transaction(ctx.deps.sessions) as s:
        result = await services.withdraw_item(s, item_id=item_id, scope=scope, now=_now(ctx))
    if isinstance(result, services.ServiceRefusal):
        return _svc_refused(result, item_id)
    return texts.SVC_REMOVED.format(id=result.id, name=result.name)


@staff_router.word("服务职责", "/duties")
async def duties(ctx: Context, rest: str) -> str:
    scope = await _scope(ctx)
    text = rest
    async with transaction(ctx.deps.sessions) as s:
        if scope is None:
            code, text = _head(rest)
            station = await services.find_station(s, code, exact=True) if code else None
        else:
            station = await s.get(Station, scope)
        if not text.strip():
            return texts.DUTIES_USAGE
        if station is None:
            return _svc_refused(services.ServiceRefusal.NO_STATION)
        result = await services.set_duties(s, station_id=station.id, text=text.strip(), scope=scope,
                                           actor=ctx.openid, now=_now(ctx))
    if isinstance(result, services.ServiceRefusal):
        return texts.DUTIES_USAGE if result == services.ServiceRefusal.TOO_LONG else _svc_refused(result)
    return texts.DUTIES_OK.format(name=station.name)


CATEGORY_CODES = {name: code for code, name in texts.CATEGORY_NAMES.items()} | {
    code: code for code in services.CATEGORIES}


@staff_router.word("活动分类", "/activity category")
async def category(ctx: Context, rest: str) -> str:
    scope = await _scope(ctx)
    parts = rest.split()
    activity_id = parse_id(parts[0]) if len(parts) == 2 else None
    code = CATEGORY_CODES.get(parts[1].lower()) if activity_id is not None else None
    if activity_id is None or code is None:
        return texts.CATEGORY_USAGE
    async with transaction(ctx.deps.sessions) as s:
        result = await services.set_category(s, activity_id=activity_id, category=code, scope=scope)
    if isinstance(result, services.ServiceRefusal):
        return texts.OP_NOT_FOUND.format(id=activity_id) if result == services.ServiceRefusal.NOT_FOUND \
            else _svc_refused(result)
    return texts.CATEGORY_OK.format(id=activity_id, title=result.title, category=texts.CATEGORY_NAMES[code])
