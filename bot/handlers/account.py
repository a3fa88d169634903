"""A talent's account: `绑定`, `解绑`, `积分`, `排名`, `礼品`, `兑换`."""

from __future__ import annotations

from bot import texts
from bot.handlers import admin as admin_words
from bot.router import Context, Router
from scoring import accounts, gifts, staff
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.operations import parse_id
from scoring.periods import to_local

router = Router("account")


@router.word("绑定", "bind")
async def bind(ctx: Context, rest: str) -> str:
    parts = rest.split()
    if len(parts) < 2:
        return texts.BIND_USAGE
    cert_no, name = parts[0], "".join(parts[1:])
    now = ctx.incoming.received_at or utcnow()
    async with transaction(ctx.deps.sessions) as s:
        result = await accounts.bind(s, ctx.deps.redis, openid=ctx.openid, cert_no=cert_no, name=name, now=now)
    if isinstance(result, accounts.Bound):
        return (texts.BIND_ALREADY if result.already else texts.BIND_OK).format(name=result.talent.name)
    if result.reason is accounts.BindRefusal.NO_MATCH and not result.tries_left:
        return texts.BIND_NO_MATCH_LAST
    return {
        accounts.BindRefusal.NO_MATCH: texts.BIND_NO_MATCH,
        accounts.BindRefusal.TOO_MANY_TRIES: texts.BIND_TOO_MANY,
        accounts.BindRefusal.TALENT_TAKEN: texts.BIND_TALENT_TAKEN,
        accounts.BindRefusal.OPENID_TAKEN: texts.BIND_OPENID_TAKEN,
    }[result.reason].format(left=result.tries_left, name=result.bound_name)


@router.word("解绑", "unbind")
async def unbind(ctx: Context, rest: str) -> str:
    """The talent unbinds this WeChat account (an admin's `解绑 <人才证号>` is in handlers/admin.py); the
    points stay with the registry row. Audited like staff words, as role talent."""
    async with transaction(ctx.deps.sessions) as s:
        result = await accounts.unbind(s, openid=ctx.openid)
        if isinstance(result, accounts.Unbound):
            reply = texts.UNBIND_OK.format(name=result.talent.name, cert_no=result.talent.cert_no)
        else:
            reply = texts.UNBIND_NOT_BOUND
        unbound = isinstance(result, accounts.Unbound)
        # A refusal is audited as one (kind refusal), so that 解绑 sent by any follower cannot push real
        # actions out of 审计's view (found by bench/fuzz.py).
        await staff.audit(s, ctx.openid, staff.Role.TALENT, ctx.incoming.text.strip(),
                          reply if unbound else f"refused: {result.reason}", refused=not unbound)
    return reply


def entry_words(line: accounts.Line) -> str:
    """An entry's reason in words: 到某站打卡, 参加活动「…」, 兑换礼品「…」, 撤销：…"""
    rule = line.rule
    if line.reversal:
        rule = {"visit": "R3", "redemption": "G"}.get(line.fact_kind, "other")
    if rule == "R3":
        words = texts.ENTRY_WORDS["R3:activity" if line.activity else "R3"].format(
            subject=line.subject or texts.ENTRY_WORDS["station"])
    elif rule == "G":
        words = texts.ENTRY_WORDS["G"].format(subject=line.subject) if line.subject else texts.ENTRY_WORDS["G:unknown"]
    else:
        words = texts.ENTRY_WORDS["other"]
    return texts.ENTRY_WORDS["V"].format(subject=words) if line.reversal else words


@router.word("积分", "points", changes_state=False)
async def points(ctx: Context, rest: str) -> str:
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    now = ctx.incoming.received_at or utcnow()
    async with ctx.deps.sessions() as s:
        mine = await accounts.points_of(s, talent.id, now)
    p = mine.points
    out = [texts.POINTS_OWED.format(owed=mine.owed, **p) if mine.owed > 0 else texts.POINTS.format(**p)]
    if mine.lines:
        out.append(texts.POINTS_RECENT)
        for line in mine.lines:
            local = to_local(line.occurred_at)
            day = texts.DAY_LABEL.format(month=local.month, day=local.day)
            out.append(texts.POINTS_LINE.format(date=day, amount=line.amount, what=entry_words(line)))
    else:
        out.append(texts.POINTS_EMPTY)
    out.append(texts.POINTS_FOOT)
    out.append(texts.ME_LINK.format(url=ctx.deps.settings.page_url("/me")))
    return "\n".join(out)


@router.word("排名", "rank", changes_state=False)
async def rank(ctx: Context, rest: str) -> str:
    now = ctx.incoming.received_at or utcnow()
    talent = await ctx.talent()
    async with ctx.deps.sessions() as s:
        board = await accounts.standings(s, ctx.deps.redis, talent.id if talent else None, now)
    mine = board.mine
    out = [texts.RANK_HEAD, *(texts.RANK_LINE.format(rank=r.rank, name=r.standing.name, points=r.points)
                              for r in board.top)] if board.top else [texts.RANK_NONE]
    if talent is None:
        out.append(texts.NEED_BIND)
    elif mine is None or mine[0] is None:
        out.append(texts.RANK_MINE_NONE)
    else:
        out.append(texts.RANK_MINE.format(rank=mine[0], points=mine[1]))
    return "\n".join(out)


@router.word("礼品", "gifts", changes_state=False)
async def gift_list(ctx: Context, rest: str) -> str:
    """The catalogue: city-wide gifts and station gifts (with where to pick them up). An admin who is not
    a bound talent sees the admin list (礼品 列表) instead."""
    talent = await ctx.talent()
    if talent is None and "admin" in await ctx.roles():
        return await admin_words.gift_listing(ctx)
    async with ctx.deps.sessions() as s:
        shown = await gifts.catalogue_for(s, talent.id if talent else None)
    items, available = shown.offers, shown.available
    if not items:
        return texts.GIFTS_NONE
    out = [texts.GIFTS_HEAD]
    for g in items:
        stock = texts.GIFT_STOCK.format(stock=g.stock) if g.stock > 0 else texts.GIFT_OUT
        where = texts.GIFT_WHERE.format(station=g.station) if g.station else ""
        about = texts.GIFT_DESCRIPTION.format(description=g.description) if g.description else ""
        out.append(texts.GIFT_LINE.format(id=g.id, name=g.name, cost=g.cost, stock=stock, where=where,
                                          description=about))
    if available is not None:
        out.append(texts.GIFTS_BALANCE.format(balance=available))
    out.append(texts.GIFTS_FOOT.format(example=items[0].id))
    return "\n".join(out)


@router.word("兑换", "redeem")
async def redeem(ctx: Context, rest: str) -> str:
    gift_id = parse_id(rest)
    if gift_id is None:
        return texts.REDEEM_USAGE
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    async with transaction(ctx.deps.sessions) as s:
        result = await gifts.request_redemption(s, talent_id=talent.id, gift_id=gift_id)
    if isinstance(result, gifts.Requested):
        await ctx.deps.enqueue_fact(result.job)
        return texts.REDEEM_OK.format(gift=result.gift.name, cost=result.gift.cost)
    name, cost = (result.gift.name, result.gift.cost) if result.gift else ("", 0)
    return {
        gifts.RedeemRefusal.NOT_FOUND: texts.REDEEM_NOT_FOUND,
        gifts.RedeemRefusal.STOCK: texts.REDEEM_STOCK,
        gifts.RedeemRefusal.BALANCE: texts.REDEEM_BALANCE,
    }[result.reason].format(id=gift_id, gift=name, cost=cost, available=result.available)
