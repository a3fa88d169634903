"""A per-openid rate limit, so that a flood from one sender cannot starve the others (issue 13).

Promises
- State is in Redis (`th:rl:{openid}`: a counter that lives one window from its first message), so several
  bot processes share one limit. A check is one EVAL (RATE_SCRIPT); the bot's `AutoPipeline` sends it
  together with every other small Redis call made in the same event-loop iteration (bot/redis_pipe.py).
- `RATE_LIMIT_MESSAGES` messages per `RATE_LIMIT_WINDOW_S` seconds (settings; 0 turns the limit off) are
  handled as usual. The first message over the limit gets one polite reply (texts.RATE_LIMITED); every later
  one in the same window is acknowledged silently. Nothing at all is done for a message over the limit: no
  database call, no handler, no state.
- Only what the router will handle counts: text and other messages, and events that have a route. Events the
  bot ignores anyway (template-send reports, card events, ...) cost nothing and are not counted.
- WeChat's retries never reach the router (bot/webhook.py de-duplicates them before dispatch and answers a
  retry with the first attempt's reply), so a retried message counts once.
- Staff are never locked out: the limit is per openid (a talent's flood touches only that talent's
  counter); openids in ADMIN_OPENIDS and `talenthome admin` (via cli) are not counted at all; an operator
  or admin who reaches the limit (a busy desk scanning talents' codes) is recognised once, at the first
  message over it (one roles query), and is exempt for the rest of the window (`th:rl:staff:{openid}`).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.router import Context

# KEYS: the counter, the staff exemption; ARGV: the window in ms. Returns {count, ms left in the window};
# count 0 = exempt.
RATE_SCRIPT = """
if redis.call('exists', KEYS[2]) == 1 then return {0, 0} end
local n = redis.call('incr', KEYS[1])
if n == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end
local left = redis.call('pttl', KEYS[1])
if left < 0 then redis.call('pexpire', KEYS[1], ARGV[1]); left = tonumber(ARGV[1]) end
return {n, left}
"""


class Verdict(enum.Enum):
    ALLOW = "allow"
    WARN = "warn"  # the first message over the limit: one polite reply
    DROP = "drop"  # later ones in the window: silent acknowledgement


def counter_key(openid: str) -> str:
    return f"th:rl:{openid}"


def exempt_key(openid: str) -> str:
    return f"th:rl:staff:{openid}"


async def check(ctx: Context) -> tuple[Verdict, int]:
    """The verdict for this message and the seconds left in the sender's window (for the reply)."""
    settings = ctx.deps.settings
    limit, window_s = settings.rate_limit_messages, settings.rate_limit_window_s
    inc = ctx.incoming
    if limit <= 0 or inc.via != "wechat" or inc.openid in settings.admin_openid_set:
        return Verdict.ALLOW, 0
    count, left_ms = await ctx.deps.redis.eval(RATE_SCRIPT, 2, counter_key(inc.openid), exempt_key(inc.openid),
                                               window_s * 1000)
    count, left_s = int(count), max(1, -(-int(left_ms) // 1000))
    if count <= limit:
        return Verdict.ALLOW, left_s
    if count > limit + 1:
        return Verdict.DROP, left_s
    if (await ctx.roles()) - {"talent"}:  # an operator or admin at a busy desk
        await ctx.deps.redis.set(exempt_key(inc.openid), b"1", px=left_s * 1000)
        return Verdict.ALLOW, left_s
    return Verdict.WARN, left_s
