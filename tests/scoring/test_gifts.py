"""scoring.gifts: the catalogue an admin keeps (add, edit, restock, retire, restore) and the talent's view."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import select

from scoring import gifts
from scoring.db import transaction
from scoring.facts import redemption as redemption_fact
from scoring.facts import visit
from scoring.gifts import GiftRefusal, GiftRefused
from scoring.models import Gift
from tests import factories as f
from tests.scoring.builders import redemption


async def add(sessions, **kw):
    kw.setdefault("name", "茶叶")
    kw.setdefault("cost", 10)
    kw.setdefault("stock", 5)
    async with transaction(sessions) as s:
        return await gifts.add_gift(s, **kw)


async def all_gifts(sessions) -> list[Gift]:
    async with sessions() as s:
        return list((await s.scalars(select(Gift).order_by(Gift.id))).all())


async def test_add_city_wide_and_station_gifts(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1", name="鲤城人才之家")
    city = await add(sessions, name=" 保温杯 ", cost=20, stock=3, description=" 不锈钢 ")
    local = await add(sessions, name="保温杯", cost=15, stock=2, station_id=st.id)
    assert isinstance(city, Gift) and isinstance(local, Gift)
    assert (city.name, city.cost, city.stock, city.station_id, city.description, city.active) == \
        ("保温杯", 20, 3, None, "不锈钢", True)
    assert local.station_id == st.id and local.id != city.id and city.created_at is not None


async def test_add_refusals_change_nothing(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
    first = await add(sessions, name="茶叶", station_id=st.id)
    assert isinstance(first, Gift)
    cases = [
        (dict(cost=0), GiftRefusal.BAD_COST),
        (dict(cost=-5), GiftRefusal.BAD_COST),
        (dict(cost=gifts.MAX_COST + 1), GiftRefusal.BAD_COST),
        (dict(stock=-1), GiftRefusal.BAD_STOCK),
        (dict(stock=gifts.MAX_STOCK + 1), GiftRefusal.BAD_STOCK),
        (dict(name="  "), GiftRefusal.BAD_NAME),
        (dict(name="长" * (gifts.MAX_NAME + 1)), GiftRefusal.BAD_NAME),
        (dict(name="书", description="x" * (gifts.MAX_DESCRIPTION + 1)), GiftRefusal.BAD_DESCRIPTION),
        (dict(name="书", station_id=st.id + 100), GiftRefusal.NO_STATION),
        (dict(name="茶叶", station_id=st.id), GiftRefusal.EXISTS),
    ]
    for kw, reason in cases:
        result = await add(sessions, **kw)
        assert isinstance(result, GiftRefused) and result.reason is reason, (kw, result)
    exists = await add(sessions, name="茶叶", station_id=st.id)
    assert isinstance(exists, GiftRefused) and exists.gift is not None and exists.gift.id == first.id
    # the same name city-wide is another gift
    assert isinstance(await add(sessions, name="茶叶"), Gift)
    assert len(await all_gifts(sessions)) == 2


async def test_edit_changes_only_what_is_given(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
    g = await add(sessions, name="茶叶", cost=10, stock=5, station_id=st.id)
    async with transaction(sessions) as s:
        done = await gifts.edit_gift(s, g.id, cost=12, description="铁观音")
    assert isinstance(done, gifts.Edited)
    assert done.before == {"cost": 10, "description": ""}
    async with transaction(sessions) as s:
        done = await gifts.edit_gift(s, g.id, station_id=None, stock=0, name="好茶")
    assert isinstance(done, gifts.Edited) and done.before == {"station_id": st.id, "stock": 5, "name": "茶叶"}
    [stored] = await all_gifts(sessions)
    assert (stored.name, stored.cost, stored.stock, stored.station_id, stored.description) == \
        ("好茶", 12, 0, None, "铁观音")


async def test_edit_refusals_change_nothing(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
    g = await add(sessions, name="茶叶")
    await add(sessions, name="书")
    cases = [
        (g.id + 100, dict(cost=3), GiftRefusal.NO_GIFT),
        (g.id, dict(cost=0), GiftRefusal.BAD_COST),
        (g.id, dict(stock=-1), GiftRefusal.BAD_STOCK),
        (g.id, dict(name=""), GiftRefusal.BAD_NAME),
        (g.id, dict(station_id=st.id + 9), GiftRefusal.NO_STATION),
        (g.id, dict(name="书"), GiftRefusal.EXISTS),
        (g.id, dict(cost=3, name="书"), GiftRefusal.EXISTS),  # all or nothing
    ]
    for gift_id, kw, reason in cases:
        async with transaction(sessions) as s:
            result = await gifts.edit_gift(s, gift_id, **kw)
        assert isinstance(result, GiftRefused) and result.reason is reason, (kw, result)
    stored = (await all_gifts(sessions))[0]
    assert (stored.name, stored.cost, stored.stock, stored.station_id) == ("茶叶", 10, 5, None)


async def test_restock_adds_and_refuses_bad_amounts(sessions):
    g = await add(sessions, stock=5)
    async with transaction(sessions) as s:
        done = await gifts.restock_gift(s, g.id, 7)
    assert isinstance(done, Gift) and done.stock == 12
    for gift_id, n, reason in [(g.id, 0, GiftRefusal.BAD_STOCK), (g.id, -3, GiftRefusal.BAD_STOCK),
                               (g.id, gifts.MAX_STOCK, GiftRefusal.BAD_STOCK), (g.id + 1, 5, GiftRefusal.NO_GIFT)]:
        async with transaction(sessions) as s:
            result = await gifts.restock_gift(s, gift_id, n)
        assert isinstance(result, GiftRefused) and result.reason is reason
    assert (await all_gifts(sessions))[0].stock == 12


async def test_restock_beside_redemptions_loses_nothing(sessions):
    """Stock taken by redemptions applying at the same time as restocks: every unit counted once."""
    async with transaction(sessions) as s:
        talents = [await f.talent(s) for _ in range(4)]
        st = await f.station(s)
        for t in talents:
            v = await f.visit(s, t, st, datetime(2026, 11, 1, 2))
            await visit.credit(s, [v.id])
    g = await add(sessions, cost=1, stock=4)
    async with transaction(sessions) as s:
        reds = [await redemption(s, t, g.id) for t in talents]

    async def redeem(red_id: int) -> None:
        async with transaction(sessions) as s:
            await redemption_fact.apply(s, red_id)

    async def restock() -> None:
        async with transaction(sessions) as s:
            assert isinstance(await gifts.restock_gift(s, g.id, 3), Gift)

    await asyncio.gather(*(redeem(r.id) for r in reds), restock(), restock())
    [view] = await _views(sessions)
    assert (view.redeemed, view.pending, view.stock) == (4, 0, 4 + 3 + 3 - 4)


async def _views(sessions):
    async with sessions() as s:
        return await gifts.gift_views(s)


async def test_retire_and_restore(sessions):
    g = await add(sessions)
    async with transaction(sessions) as s:
        assert isinstance(await gifts.retire_gift(s, g.id), Gift)
    async with sessions() as s:
        assert await gifts.catalogue(s) == []
    for call, reason in [(gifts.retire_gift, GiftRefusal.RETIRED),
                         (lambda s, i: gifts.restock_gift(s, i, 1), GiftRefusal.RETIRED),
                         (lambda s, i: gifts.edit_gift(s, i, cost=3), GiftRefusal.RETIRED)]:
        async with transaction(sessions) as s:
            result = await call(s, g.id)
        assert isinstance(result, GiftRefused) and result.reason is reason
    # a retired gift still holds its name at its place
    again = await add(sessions)
    assert isinstance(again, GiftRefused) and again.reason is GiftRefusal.EXISTS and again.gift.id == g.id
    async with transaction(sessions) as s:
        assert isinstance(await gifts.restore_gift(s, g.id), Gift)
        refused = await gifts.restore_gift(s, g.id)
        missing = await gifts.restore_gift(s, g.id + 5)
        assert isinstance(refused, GiftRefused) and refused.reason is GiftRefusal.ACTIVE
        assert isinstance(missing, GiftRefused) and missing.reason is GiftRefusal.NO_GIFT
    async with sessions() as s:
        assert [o.id for o in await gifts.catalogue(s)] == [g.id]


async def test_retired_gift_cannot_be_requested(sessions):
    async with transaction(sessions) as s:
        t = await f.talent(s)
    g = await add(sessions, cost=1)
    async with transaction(sessions) as s:
        await gifts.retire_gift(s, g.id)
    async with transaction(sessions) as s:
        result = await gifts.request_redemption(s, talent_id=t.id, gift_id=g.id)
    assert isinstance(result, gifts.RedeemRefused) and result.reason is gifts.RedeemRefusal.NOT_FOUND


async def test_catalogue_lists_city_and_station_gifts_with_the_station_name(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1", name="丰泽人才之家")
    a = await add(sessions, name="书", cost=30)
    b = await add(sessions, name="茶叶", cost=10, station_id=st.id, description="铁观音")
    c = await add(sessions, name="伞", cost=20)
    async with transaction(sessions) as s:
        await gifts.retire_gift(s, c.id)
    async with sessions() as s:
        offers = await gifts.catalogue(s)
    assert offers == [gifts.Offer(b.id, "茶叶", 10, 5, "铁观音", "丰泽人才之家"),
                      gifts.Offer(a.id, "书", 30, 5, "", None)]


async def test_gift_views_count_redemptions(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1", name="丰泽人才之家")
        t = await f.talent(s)
    a = await add(sessions, name="书", station_id=st.id)
    b = await add(sessions, name="伞")
    async with transaction(sessions) as s:
        r1 = await redemption(s, t, a.id)
        await redemption(s, t, a.id)
        r3 = await redemption(s, t, a.id)
        r1.status, r3.status = "applied", "rejected"
        await gifts.retire_gift(s, b.id)
    views = await _views(sessions)
    assert [(v.id, v.station_code, v.station_name, v.redeemed, v.pending, v.active) for v in views] == [
        (a.id, "ST1", "丰泽人才之家", 1, 1, True), (b.id, None, None, 0, 0, False)]
    async with sessions() as s:
        assert [v.id for v in await gifts.gift_views(s, include_retired=False)] == [a.id]


async def test_gifts_export(sessions):
    from scoring.exports import ExportError, build

    async with transaction(sessions) as s:
        st = await f.station(s, "ST1", name="丰泽人才之家")
        t = await f.talent(s)
    a = await add(sessions, name="茶叶", cost=10, stock=3, station_id=st.id, description="铁观音")
    b = await add(sessions, name="书", cost=30, stock=0)
    async with transaction(sessions) as s:
        (await redemption(s, t, a.id)).status = "applied"
        await redemption(s, t, a.id)
        await gifts.retire_gift(s, b.id)
    now = datetime(2026, 11, 30, 17, 0)  # 2026-12-01 01:00 local
    async with sessions() as s:
        wb, key = await build(s, "gifts", None, now=now)
        with pytest.raises(ExportError, match="no period"):
            await build(s, "gifts", "2026-11", now=now)
    rows = [list(r) for r in wb.active.iter_rows(values_only=True)]
    assert key == "2026-12-01" and rows[0][0] == "礼品目录（截至 2026-12-01）"
    assert rows[1][:9] == ["编号", "礼品名称", "站点编码", "领取站点", "所需积分", "库存", "已兑换", "待处理", "状态"]
    assert rows[2:] == [[a.id, "茶叶", "ST1", "丰泽人才之家", 10, 3, 1, 1, "上架", "铁观音"],
                        [b.id, "书", None, "全市通用", 30, 0, 0, 0, "已下架", None]]


async def test_pickup_message_names_the_station(sessions):
    """The worker's message with the pickup code says where to pick a station gift up."""
    from scoring import notify
    from scoring.models import Notification

    async with transaction(sessions) as s:
        st = await f.station(s, "ST1", name="丰泽人才之家")
        t = await f.talent(s, openid="oMe")
        for day in (1, 2):
            v = await f.visit(s, t, st, datetime(2026, 11, day, 2))
            await visit.credit(s, [v.id])
    here = await add(sessions, name="茶叶", cost=1, station_id=st.id)
    anywhere = await add(sessions, name="书", cost=1)
    async with transaction(sessions) as s:
        reds = [await redemption(s, t, here.id), await redemption(s, t, anywhere.id)]
    for red in reds:
        async with transaction(sessions) as s:
            await notify.send(s, (await redemption_fact.apply(s, red.id)).notices)
    async with sessions() as s:
        texts = {n.key: n.payload for n in (await s.scalars(select(Notification))).all()}
    assert "请凭提货码到丰泽人才之家领取" in texts[f"redeem:{reds[0].id}"]
    assert "请凭提货码到人才之家领取" in texts[f"redeem:{reds[1].id}"]
