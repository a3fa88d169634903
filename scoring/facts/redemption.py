"""G redemption [A2] "人才获取的积分，可换取相应物品": a talent spends points on a gift.

- **Never below zero**: the gift's cost is debited only when the talent's balance covers it, and one
  of its stock is taken only when there is one. The talent's row and the gift's are locked first
  (PostgreSQL; SQLite's write lock is held from BEGIN), so concurrent redemptions cannot overdraw either.
- A balance below zero (points taken back by a void after they were spent, scoring/facts/void.py) covers
  nothing: no redemption until later points cover the debt and the cost.
- Applied: entry `redeem:{id}` (-cost, talent), the stock less one, a pickup code (six digits), and the
  talent is told the code. Refused (BALANCE, STOCK): the request is marked rejected with its reason, and
  the talent is told why; nothing is debited. A redemption is spending: it is on no board.
- The bot refuses a request at once only when it obviously cannot succeed (scoring/gifts.py).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import ledger
from scoring.clock import utcnow
from scoring.db import lock
from scoring.dead_letters import blocks
from scoring.facts.common import DEFAULT, Applied, Audience, Job, Notice, NoticeKind, Params, Refusal, Refused
from scoring.ledger import Draft
from scoring.models import Gift, Redemption, Talent
from scoring.rules import RULES

KIND: Final = "redemption"


def pickup_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


async def apply(session: AsyncSession, redemption_id: int, params: Params = DEFAULT, *,
                now: datetime | None = None) -> Applied | Refused:
    red = await session.get(Redemption, redemption_id)
    if red is None:
        return Refused(Refusal.NOT_FOUND)
    await lock(session, Talent, red.talent_id)
    gift = await lock(session, Gift, red.gift_id)
    await session.refresh(red)
    assert gift is not None
    if red.status == "applied":
        return Applied(await ledger.entries_of(session, KIND, [red.id]))
    if red.status == "rejected":
        return Refused(Refusal(red.reason or Refusal.BALANCE))
    balance = await ledger.talent_balance(session, red.talent_id)
    refusal = Refusal.STOCK if gift.stock <= 0 or not gift.active else \
        Refusal.BALANCE if balance < gift.cost else None
    data: dict[str, int | str | None] = {"redemption_id": red.id, "gift_id": gift.id, "cost": gift.cost}
    if refusal is not None:
        red.status, red.reason = "rejected", refusal.value
        told = Notice(NoticeKind.REDEEM_REFUSED, Audience.TALENT, red.talent_id, f"redeem:{red.id}",
                      {**data, "reason": refusal.value, "balance": balance})
        return Refused(refusal, (told,))
    g = RULES["G"]
    now = now or utcnow()
    posted = await ledger.post(session, [Draft(
        key=f"redeem:{red.id}", amount=-gift.cost, rule=g.tag, fact_kind=KIND, fact_id=red.id, occurred_at=now,
        talent_id=red.talent_id)])
    gift.stock -= 1
    red.status, red.applied_at, red.pickup_code = "applied", now, pickup_code()
    told = Notice(NoticeKind.REDEEMED, Audience.TALENT, red.talent_id, f"redeem:{red.id}",
                  {**data, "pickup_code": red.pickup_code})
    return Applied(await ledger.entries_of(session, KIND, [red.id]), (told,), written=len(posted.written))


async def unapplied(session: AsyncSession, *, cutoff: datetime, now: datetime, params: Params = DEFAULT,
                    limit: int = 5000) -> list[int]:
    return list((await session.scalars(select(Redemption.id).where(
        Redemption.status == "pending", Redemption.created_at < cutoff, ~blocks(KIND, Redemption.id))
        .order_by(Redemption.id).limit(limit))).all())


def job(redemption_id: int) -> Job:
    return Job(KIND, redemption_id)
