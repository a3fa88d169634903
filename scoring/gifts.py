"""Gifts and redemption requests (SPEC 2, rule G).

The bot only *requests* a redemption: it stores a pending `Redemption` and enqueues
`apply_redemption(redemption_id)` (job id `apply_redemption:{id}`); the worker debits the balance (never
below zero), takes the stock, sets the pickup code and sends it by message (scoring.ledger.apply_redemption
re-checks everything under lock). The request is refused at once only when it obviously cannot succeed:
an unknown or withdrawn gift, no stock, or a balance that, less the costs of the talent's requests still
pending, is below the gift's cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.ledger import talent_balance
from scoring.models import Gift, Redemption


class RedeemRefusal(StrEnum):
    NOT_FOUND = "not_found"
    STOCK = "stock"
    BALANCE = "balance"


@dataclass(frozen=True)
class Requested:
    redemption: Redemption
    gift: Gift
    balance: int  # the balance when requested, before the debit

    @property
    def job_id(self) -> str:
        return apply_redemption_job_id(self.redemption.id)


@dataclass(frozen=True)
class RedeemRefused:
    reason: RedeemRefusal
    gift: Gift | None = None
    available: int = 0  # balance less pending requests


def apply_redemption_job_id(redemption_id: int) -> str:
    return f"apply_redemption:{redemption_id}"


async def catalogue(session: AsyncSession) -> list[Gift]:
    """Active gifts, cheapest first."""
    return list((await session.scalars(select(Gift).where(Gift.active.is_(True))
                                       .order_by(Gift.cost, Gift.id))).all())


async def pending_costs(session: AsyncSession, talent_id: int) -> int:
    total = await session.scalar(select(func.coalesce(func.sum(Gift.cost), 0)).join(
        Redemption, Redemption.gift_id == Gift.id).where(
        Redemption.talent_id == talent_id, Redemption.status == "pending"))
    return int(total or 0)


async def request_redemption(session: AsyncSession, *, talent_id: int, gift_id: int) -> Requested | RedeemRefused:
    """Store a pending redemption in the caller's transaction (the caller enqueues the job after commit)."""
    gift = await session.get(Gift, gift_id)
    if gift is None or not gift.active:
        return RedeemRefused(RedeemRefusal.NOT_FOUND)
    if gift.stock <= 0:
        return RedeemRefused(RedeemRefusal.STOCK, gift)
    balance = await talent_balance(session, talent_id)
    available = balance - await pending_costs(session, talent_id)
    if available < gift.cost:
        return RedeemRefused(RedeemRefusal.BALANCE, gift, available)
    red = Redemption(gift_id=gift.id, talent_id=talent_id, status="pending")
    session.add(red)
    await session.flush()
    return Requested(redemption=red, gift=gift, balance=balance)
