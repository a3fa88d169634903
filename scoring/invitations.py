"""Pending satisfaction invitations (SPEC 3): conversation state in Redis, one hash per talent.

`th:sat:{openid}` maps activity id -> reply deadline (unix seconds); the hash expires with its latest
deadline. The worker invites at an activity's end; the bot reads it when a talent answers a bare 1-5.
Losing it loses only the chance to answer, never a point.
"""

from __future__ import annotations

from typing import Any

INVITE_WINDOW_S = 48 * 3600


def _key(openid: str) -> str:
    return f"th:sat:{openid}"


async def invite(redis: Any, openid: str, activity_id: int, deadline: float) -> None:
    key = _key(openid)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, str(activity_id), str(int(deadline)))
        pipe.expireat(key, int(deadline), gt=True)
        pipe.expireat(key, int(deadline), nx=True)
        await pipe.execute()


async def pending(redis: Any, openid: str, now: float) -> list[int]:
    """Activity ids still open for an answer, oldest deadline first."""
    raw = await redis.hgetall(_key(openid))
    items = sorted((int(v), int(k)) for k, v in raw.items() if int(v) > now)
    return [activity_id for _, activity_id in items]


async def close(redis: Any, openid: str, activity_id: int) -> None:
    await redis.hdel(_key(openid), str(activity_id))
