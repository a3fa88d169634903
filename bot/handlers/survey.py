"""Satisfaction answers: a bare 1-5 (optionally with a comment) answers the talent's pending invitation.

The invitation (scoring.invitations, Redis, 48 h) is written by the worker when the activity ends. The
answer goes to the pending invitation with the earliest deadline; a short per-openid lock in Redis keeps
two quick answers from racing (the database's UNIQUE (activity, talent) is the final guard).
"""

from __future__ import annotations

import re
import secrets

from bot import texts
from bot.router import Context, Router
from scoring import invitations, satisfaction
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.visits import unix

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
        pending = await invitations.pending(redis, ctx.openid, unix(now))
        if not pending:
            return texts.SAT_NONE
        stale: list[int] = []
        recorded: satisfaction.Recorded | None = None
        already: satisfaction.SatisfactionRefused | None = None
        async with transaction(ctx.deps.sessions) as s:
            answered = await satisfaction.answered(s, talent.id, pending)
            todo = [a for a in pending if a not in answered]
            while todo and recorded is None:
                activity_id = todo.pop(0)
                result = await satisfaction.record(s, talent_id=talent.id, activity_id=activity_id, score=score,
                                                   comment=comment, now=now, alert_text=texts.LOW_SCORE_ALERT)
                if isinstance(result, satisfaction.Recorded):
                    recorded = result
                elif result.reason is satisfaction.SatisfactionRefusal.ALREADY:
                    already = result
                else:  # not an attendee, or the activity is gone: a stale invitation
                    stale.append(activity_id)
            if recorded is None and already is None and answered:
                already = await satisfaction.already(s, [a for a in pending if a in answered][-1])
        for activity_id in stale:
            await invitations.close(redis, ctx.openid, activity_id)
        more = texts.SAT_MORE.format(n=len(todo)) if todo else ""
        if recorded is not None:
            template = texts.SAT_OK_LOW if score <= satisfaction.LOW_SCORE else texts.SAT_OK
            return "\n".join(filter(None, [template.format(title=recorded.activity.title, score=score), more]))
        if already is not None and already.activity is not None:
            return texts.SAT_ALREADY.format(title=already.activity.title)
        return texts.SAT_NONE
    finally:
        if (await redis.get(_lock_key(ctx.openid))) == token.encode():
            await redis.delete(_lock_key(ctx.openid))
