"""Satisfaction answers: a bare 1-5 (optionally with a comment) answers the talent's pending invitation.

The invitation (scoring.invitations, Redis, 48 h) is written by the worker when the activity ends;
scoring.satisfaction.answer picks the one an answer belongs to. A short per-openid lock in Redis keeps two
quick answers from racing (the database's UNIQUE (activity, talent) is the final guard).
"""

from __future__ import annotations

import re
import secrets

from bot import texts
from bot.router import Context, Router
from scoring import satisfaction
from scoring.clock import utcnow
from scoring.db import transaction

router = Router("survey")

LOCK_TTL_S = 5

# Full-width digits too; scoring.satisfaction.parse_answer has the last word.
ANSWER = r"\s*[1-5１-５]\s*(?:分|星|颗星)?(?:[\s,，.。、;；:：!！~～\-].*)?"


def _lock_key(openid: str) -> str:
    return f"th:satlock:{openid}"


@router.pattern(ANSWER)
async def answer(ctx: Context, match: re.Match[str]) -> str:
    parsed = satisfaction.parse_answer(match.string)
    if parsed is None:
        return texts.UNKNOWN.format(word=match.string.strip()[:20])
    score, comment = parsed
    talent = await ctx.talent()
    if talent is None:
        return texts.NEED_BIND
    redis = ctx.deps.redis
    token = secrets.token_hex(8)
    if not await redis.set(_lock_key(ctx.openid), token, nx=True, ex=LOCK_TTL_S):
        return texts.SAT_BUSY
    try:
        now = ctx.incoming.received_at or utcnow()
        async with transaction(ctx.deps.sessions) as s:
            result = await satisfaction.answer(s, redis, openid=ctx.openid, talent_id=talent.id, score=score,
                                               comment=comment, now=now, alert_text=texts.LOW_SCORE_ALERT,
                                               admin_alert_text=texts.LOW_SCORE_ALERT_ADMIN)
        if isinstance(result, satisfaction.Recorded):
            template = texts.SAT_OK_LOW if score <= satisfaction.LOW_SCORE else texts.SAT_OK
            more = texts.SAT_MORE.format(n=result.more) if result.more else ""
            return "\n".join(filter(None, [template.format(title=result.activity.title, score=score), more]))
        if result.reason is satisfaction.SatisfactionRefusal.ALREADY and result.activity is not None:
            return texts.SAT_ALREADY.format(title=result.activity.title)
        return texts.SAT_NONE
    finally:
        if (await redis.get(_lock_key(ctx.openid))) == token.encode():
            await redis.delete(_lock_key(ctx.openid))
