"""Gifts and redemption requests (SPEC 2, rule G).

The bot only *requests* a redemption: it stores a pending `Redemption` and enqueues the worker's job
(`Requested.job`); the worker debits the balance (never below zero), takes the stock, sets the pickup code
and sends it by message (scoring/facts/redemption.py re-checks everything under lock). The request is
refused at once only when it obviously cannot succeed: an unknown or withdrawn gift, no stock, or a
balance that, less the costs of the talent's requests still pending, is below the gift's cost (a balance
below zero, after a void, covers nothing).

The catalogue (admin words `礼品 新增|修改|补货|下架|恢复`, `talenthome gift ...`, `talenthome import-gifts`):

- A gift is city-wide (`station_id` NULL) or offered at one station only, where it is picked up. The talent's
  catalogue lists both kinds, each station gift with its station's name.
- (name, station) names one gift: adding a second gift of that name at the same place is refused (EXISTS,
  with the gift in the way, retired or not), and an import updates the gift it names instead of adding one.
- Retiring (下架) hides a gift from the catalogue and new requests; nothing is deleted, its redemptions stay.
  A retired gift cannot be edited or restocked until it is restored (恢复).
- `restock_gift` adds to the stock (stock = stock + n, one UPDATE, safe beside a redemption taking one);
  `edit_gift(stock=...)` sets the count outright (after a stocktake).
- Each function works in the caller's transaction and returns the gift or a `GiftRefused`; the callers
  (bot, CLI) write the audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.db import lock
from scoring.facts import redemption as redemption_fact
from scoring.facts.common import Job
from scoring.ledger import talent_balance
from scoring.models import Gift, Redemption, Station

MAX_NAME: Final = 100
MAX_DESCRIPTION: Final = 500
MAX_COST: Final = 1_000_000
MAX_STOCK: Final = 1_000_000


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
    def job(self) -> Job:
        return redemption_fact.job(self.redemption.id)


@dataclass(frozen=True)
class RedeemRefused:
    reason: RedeemRefusal
    gift: Gift | None = None
    available: int = 0  # balance less pending requests


@dataclass(frozen=True)
class Offer:
    """A gift in the talent's catalogue; `station` is where a station gift is picked up (None: city-wide)."""

    id: int
    name: str
    cost: int
    stock: int
    description: str
    station: str | None


async def catalogue(session: AsyncSession) -> list[Offer]:
    """Active gifts, city-wide and station ones, cheapest first."""
    rows = (await session.execute(select(Gift, Station.name).outerjoin(Station, Station.id == Gift.station_id)
                                  .where(Gift.active.is_(True)).order_by(Gift.cost, Gift.id))).all()
    return [Offer(g.id, g.name, g.cost, g.stock, g.description, station) for g, station in rows]


async def pending_costs(session: AsyncSession, talent_id: int) -> int:
    total = await session.scalar(select(func.coalesce(func.sum(Gift.cost), 0)).join(
        Redemption, Redemption.gift_id == Gift.id).where(
        Redemption.talent_id == talent_id, Redemption.status == "pending"))
    return int(total or 0)


@dataclass(frozen=True)
class Catalogue:
    """What `礼品` shows a talent: the active gifts, and what the talent may spend (balance minus pending
    redemptions; None when no talent is bound)."""

    offers: list[Offer]
    available: int | None


async def catalogue_for(session: AsyncSession, talent_id: int | None) -> Catalogue:
    available = None
    if talent_id is not None:
        available = await talent_balance(session, talent_id) - await pending_costs(session, talent_id)
    return Catalogue(await catalogue(session), available)


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


# -- the catalogue: what an admin does ------------------------------------------------------------------
class GiftRefusal(StrEnum):
    BAD_NAME = "bad_name"  # empty or longer than MAX_NAME
    BAD_COST = "bad_cost"  # not in 1..MAX_COST
    BAD_STOCK = "bad_stock"  # stock not in 0..MAX_STOCK, or a restock of less than 1
    BAD_DESCRIPTION = "bad_description"  # longer than MAX_DESCRIPTION
    NO_STATION = "no_station"
    NO_GIFT = "no_gift"
    RETIRED = "retired"  # the gift is retired (下架): restore it first; or retiring it twice
    ACTIVE = "active"  # restoring a gift that is on offer
    EXISTS = "exists"  # a gift of this name is offered at this place already


@dataclass(frozen=True)
class GiftRefused:
    reason: GiftRefusal
    gift: Gift | None = None  # the gift refused, or for EXISTS the one in the way


@dataclass(frozen=True)
class Edited:
    gift: Gift
    before: dict[str, object]  # field -> value before, for the fields that changed


class _Unset(Enum):
    UNSET = 0


UNSET: Final = _Unset.UNSET


def check_name(name: str) -> GiftRefusal | None:
    return None if 0 < len(name) <= MAX_NAME else GiftRefusal.BAD_NAME


def check_cost(cost: int) -> GiftRefusal | None:
    return None if 0 < cost <= MAX_COST else GiftRefusal.BAD_COST


def check_stock(stock: int) -> GiftRefusal | None:
    return None if 0 <= stock <= MAX_STOCK else GiftRefusal.BAD_STOCK


def check_description(description: str) -> GiftRefusal | None:
    return None if len(description) <= MAX_DESCRIPTION else GiftRefusal.BAD_DESCRIPTION


async def find_gift(session: AsyncSession, name: str, station_id: int | None) -> Gift | None:
    """The gift of this name at this place (city-wide when `station_id` is None), retired or not."""
    place = Gift.station_id.is_(None) if station_id is None else Gift.station_id == station_id
    return await session.scalar(select(Gift).where(Gift.name == name, place).order_by(Gift.id).limit(1))


async def add_gift(session: AsyncSession, *, name: str, cost: int, stock: int, station_id: int | None = None,
                   description: str = "") -> Gift | GiftRefused:
    name, description = name.strip(), description.strip()
    bad = check_name(name) or check_cost(cost) or check_stock(stock) or check_description(description)
    if bad is not None:
        return GiftRefused(bad)
    if station_id is not None and await session.get(Station, station_id) is None:
        return GiftRefused(GiftRefusal.NO_STATION)
    other = await find_gift(session, name, station_id)
    if other is not None:
        return GiftRefused(GiftRefusal.EXISTS, other)
    gift = Gift(name=name, cost=cost, stock=stock, station_id=station_id, description=description, active=True)
    session.add(gift)
    await session.flush()
    return gift


async def _live_gift(session: AsyncSession, gift_id: int) -> Gift | GiftRefused:
    """The gift, locked against a redemption applying at the same time, or why it cannot change."""
    gift = await lock(session, Gift, gift_id)
    if gift is None:
        return GiftRefused(GiftRefusal.NO_GIFT)
    if not gift.active:
        return GiftRefused(GiftRefusal.RETIRED, gift)
    return gift


async def edit_gift(session: AsyncSession, gift_id: int, *, name: str | None = None, cost: int | None = None,
                    stock: int | None = None, station_id: int | _Unset | None = UNSET,
                    description: str | None = None) -> Edited | GiftRefused:
    """Change the given fields of an active gift (`station_id=None` makes it city-wide). Pending requests
    are applied at the gift's cost when the worker applies them."""
    gift = await _live_gift(session, gift_id)
    if isinstance(gift, GiftRefused):
        return gift
    wanted: dict[str, object] = {}
    if name is not None:
        wanted["name"] = name.strip()
    if description is not None:
        wanted["description"] = description.strip()
    if cost is not None:
        wanted["cost"] = cost
    if stock is not None:
        wanted["stock"] = stock
    if not isinstance(station_id, _Unset):
        wanted["station_id"] = station_id
    bad = (check_name(name.strip()) if name is not None else None) \
        or (check_cost(cost) if cost is not None else None) \
        or (check_stock(stock) if stock is not None else None) \
        or (check_description(description.strip()) if description is not None else None)
    if bad is not None:
        return GiftRefused(bad, gift)
    if isinstance(station_id, int) and await session.get(Station, station_id) is None:
        return GiftRefused(GiftRefusal.NO_STATION, gift)
    new_name = str(wanted.get("name", gift.name))
    new_station = wanted["station_id"] if "station_id" in wanted else gift.station_id
    assert new_station is None or isinstance(new_station, int)
    if (new_name, new_station) != (gift.name, gift.station_id):
        other = await find_gift(session, new_name, new_station)
        if other is not None and other.id != gift.id:
            return GiftRefused(GiftRefusal.EXISTS, other)
    before: dict[str, object] = {}
    for field, value in wanted.items():
        if getattr(gift, field) != value:
            before[field] = getattr(gift, field)
            setattr(gift, field, value)
    await session.flush()
    return Edited(gift, before)


async def restock_gift(session: AsyncSession, gift_id: int, add: int) -> Gift | GiftRefused:
    """Add `add` (at least 1) to an active gift's stock; `edit_gift(stock=...)` sets it outright."""
    gift = await _live_gift(session, gift_id)
    if isinstance(gift, GiftRefused):
        return gift
    if add < 1 or gift.stock + add > MAX_STOCK:
        return GiftRefused(GiftRefusal.BAD_STOCK, gift)
    await session.execute(update(Gift).where(Gift.id == gift.id).values(stock=Gift.stock + add)
                          .execution_options(synchronize_session=False))
    await session.refresh(gift)
    return gift


async def retire_gift(session: AsyncSession, gift_id: int) -> Gift | GiftRefused:
    """Take a gift off offer (下架). Requests already pending are refused by the worker (no stock)."""
    gift = await _live_gift(session, gift_id)
    if isinstance(gift, GiftRefused):
        return gift
    gift.active = False
    await session.flush()
    return gift


async def restore_gift(session: AsyncSession, gift_id: int) -> Gift | GiftRefused:
    """Offer a retired gift again (恢复), with its stock as it was."""
    gift = await session.get(Gift, gift_id)
    if gift is None:
        return GiftRefused(GiftRefusal.NO_GIFT)
    if gift.active:
        return GiftRefused(GiftRefusal.ACTIVE, gift)
    gift.active = True
    await session.flush()
    return gift


@dataclass(frozen=True)
class GiftView:
    """A gift as an admin sees it: where it is offered and how many were redeemed."""

    id: int
    name: str
    cost: int
    stock: int
    active: bool
    description: str
    station_code: str | None  # None: city-wide
    station_name: str | None
    redeemed: int  # applied redemptions
    pending: int  # requests the worker has not applied yet


async def gift_views(session: AsyncSession, *, include_retired: bool = True) -> list[GiftView]:
    """Every gift (active first, then by id) with its station and redemption counts, in one query."""
    counts = (select(Redemption.gift_id,
                     func.count().filter(Redemption.status == "applied").label("redeemed"),
                     func.count().filter(Redemption.status == "pending").label("pending"))
              .group_by(Redemption.gift_id).subquery())
    query = (select(Gift, Station.code, Station.name, func.coalesce(counts.c.redeemed, 0),
                    func.coalesce(counts.c.pending, 0))
             .outerjoin(Station, Station.id == Gift.station_id)
             .outerjoin(counts, counts.c.gift_id == Gift.id)
             .order_by(Gift.active.desc(), Gift.id))
    if not include_retired:
        query = query.where(Gift.active.is_(True))
    return [GiftView(g.id, g.name, g.cost, g.stock, g.active, g.description, code, sname, int(done), int(wait))
            for g, code, sname, done, wait in (await session.execute(query)).all()]
