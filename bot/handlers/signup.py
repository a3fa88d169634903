"""Activities: the list (`活动 [page]`), `报名 <id>` and `取消 <id>` (ids typed as `#12` or `12`)."""

from __future__ import annotations

from datetime import datetime

from bot import texts
from bot.router import Context, Router
from scoring import signups
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.operations import parse_id
from scoring.periods import to_local

router = Router("signup")


def when(starts_at: datetime, ends_at: datetime | None = None) -> str:
    """Local time as people read it: 12月5日 14:00-16:00 (the end's date too when another day)."""
    s = to_local(starts_at)
    out = texts.DAY_TIME_LABEL.format(month=s.month, day=s.day, time=f"{s:%H:%M}")
    if ends_at is not None:
        e = to_local(ends_at)
        out += f"-{e:%H:%M}" if e.date() == s.date() else texts.UNTIL_LABEL.format(
            when=texts.DAY_TIME_LABEL.format(month=e.month, day=e.day, time=f"{e:%H:%M}"))
    return out


def seats(item: signups.Listed) -> str:
    left = item.seats_left
    if left is None:
        return texts.SEATS_UNLIMITED
    return texts.SEATS_LEFT.format(left=left) if left > 0 else texts.SEATS_FULL


# Activity categories as people type them (policy measure 9): 人才讲堂, 研修班, ... or the stored code.
CATEGORIES = {name: code for code, name in texts.CATEGORY_NAMES.items()} | {c: c for c in texts.CATEGORY_NAMES}


@router.word("活动", "activities", changes_state=False)
async def activities(ctx: Context, rest: str) -> str:
    head, _, tail = rest.partition(" ")
    category = CATEGORIES.get(head.lower())  # 活动 人才讲堂 [page]
    page = parse_id(tail if category else rest) if (tail if category else rest) else 1
    now = ctx.incoming.received_at or utcnow()
    talent = await ctx.talent()  # before our session: on SQLite a second one would wait for its lock
    async with ctx.deps.sessions() as s:
        found = await signups.upcoming(s, now, page or 1, category=category)
        mine = await signups.my_signups(s, talent.id, now) if talent is not None else []
    if not found.items:
        return texts.ACTIVITIES_CATEGORY_NONE.format(category=head) if category else texts.ACTIVITIES_NONE
    lines = [texts.ACTIVITIES_HEAD.format(page=found.page, pages=found.pages, total=found.total)]
    lines += [texts.ACTIVITY_LINE.format(id=a.id, title=a.title, station=a.station, when=when(a.starts_at, a.ends_at),
                                         seats=seats(a)) for a in found.items]
    if mine:
        lines.append(texts.ACTIVITIES_MINE.format(ids=texts.LIST_SEP.join(f"#{a.id}" for a in mine)))
    lines.append(texts.ACTIVITIES_FOOT.format(example=found.items[0].id))
    if found.page < found.pages:
        lines.append(texts.ACTIVITIES_NEXT.format(page=found.page + 1))
    return "\n".join(lines)


# Who hears of a sign-up is the domain's decision (scoring.signups); the words are ours.
OPERATOR_ALERTS = signups.OperatorAlerts(signup=texts.OP_NEW_SIGNUP, full=texts.OP_ACTIVITY_FULL)


@router.word("报名", "signup")
async def signup(ctx: Context, rest: str) -> str:
    activity_id = parse_id(rest)
    if activity_id is None:
        return texts.SIGNUP_USAGE
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    now = ctx.incoming.received_at or utcnow()
    async with transaction(ctx.deps.sessions) as s:
        result = await signups.signup(s, talent_id=talent.id, activity_id=activity_id, now=now,
                                      alerts=OPERATOR_ALERTS)
    if isinstance(result, signups.SignedUp):
        a = result.activity
        return texts.SIGNUP_OK.format(title=a.title, when=when(a.starts_at, a.ends_at), station=result.station,
                                      id=a.id)
    title = result.activity.title if result.activity else ""
    return {
        signups.SignupRefusal.NOT_FOUND: texts.SIGNUP_NOT_FOUND,
        signups.SignupRefusal.CLOSED: texts.SIGNUP_CLOSED,
        signups.SignupRefusal.FULL: texts.SIGNUP_FULL,
        signups.SignupRefusal.ALREADY: texts.SIGNUP_ALREADY,
    }.get(result.reason, texts.SIGNUP_NOT_FOUND).format(id=activity_id, title=title)


@router.word("取消", "cancel")
async def cancel(ctx: Context, rest: str) -> str:
    activity_id = parse_id(rest)
    if activity_id is None:
        return texts.CANCEL_USAGE
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    now = ctx.incoming.received_at or utcnow()
    async with transaction(ctx.deps.sessions) as s:
        result = await signups.cancel(s, talent_id=talent.id, activity_id=activity_id, now=now)
    if isinstance(result, signups.Cancelled):
        return texts.CANCEL_OK.format(title=result.activity.title, id=activity_id)
    title = result.activity.title if result.activity else ""
    return {
        signups.SignupRefusal.NOT_FOUND: texts.SIGNUP_NOT_FOUND,
        signups.SignupRefusal.CLOSED: texts.CANCEL_CLOSED,
        signups.SignupRefusal.NOT_SIGNED_UP: texts.CANCEL_NOT_SIGNED,
    }.get(result.reason, texts.SIGNUP_NOT_FOUND).format(id=activity_id, title=title)
