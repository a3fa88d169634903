"""The admin's city overview (scoring.cityview) and the kiosk's keys (scoring.kiosk), on both databases."""

from __future__ import annotations

from datetime import datetime

from scoring import cityview, kiosk, periods
from scoring.db import transaction
from scoring.models import Activity, DeadLetter, Flag, Station
from tests import factories as f

NOW = periods.to_utc_naive(datetime(2026, 11, 18, 10, 0))


def local(*args: int) -> datetime:
    return periods.to_utc_naive(datetime(*args))


async def test_city_view(sessions) -> None:
    async with transaction(sessions) as s:
        a = await f.station(s, "CA")
        b = await f.station(s, "CB")
        b.county = "丰泽区"
        gone = await f.station(s, "CX", status="delisted")
        t1 = await f.talent(s, "C1", openid="oC1")
        t2 = await f.talent(s, "C2")
        t1.county = t2.county = "鲤城区"
        t3 = await f.talent(s, "C3", openid="oC3")
        t3.county = ""
        # Check-ins: two in November at CA (鲤城区), one in October at CB (丰泽区), one a year ago (out).
        v = await f.visit(s, t1, a, local(2026, 11, 2, 9))
        await f.visit(s, t3, a, local(2026, 11, 3, 9))
        await f.visit(s, t1, b, local(2026, 10, 31, 23, 30))  # local October, UTC too
        await f.visit(s, t1, b, local(2025, 11, 3, 9))
        # CA has a plan for December (published before 1 December), CB only one published too late.
        s.add(Activity(station_id=a.id, title="计划内", starts_at=local(2026, 12, 5, 9), ends_at=local(2026, 12, 5, 10),
                       published_at=NOW))
        s.add(Activity(station_id=b.id, title="迟到", starts_at=local(2026, 12, 5, 9), ends_at=local(2026, 12, 5, 10),
                       published_at=local(2026, 12, 1, 8)))
        s.add(Flag(rule="multi_station", hold=True, station_id=a.id, talent_id=t1.id, visit_id=v.id))
        s.add(Flag(rule="daily_volume", hold=False, station_id=a.id))
        s.add(DeadLetter(task="visit", fact_id=v.id, reason="boom"))
        s.add(DeadLetter(task="visit", fact_id=v.id + 1, reason="done", resolved_at=NOW))
    async with sessions() as s:
        view = await cityview.city_view(s, NOW)
    assert [(c.district, c.bound, c.registered) for c in view.coverage] == [("—", 1, 1), ("鲤城区", 1, 2)]
    assert view.coverage_total.rate == 2 / 3
    assert view.checkins.months == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"]
    assert view.checkins.districts == ["鲤城区", "丰泽区"]
    assert view.checkins.counts["鲤城区"]["2026-11"] == 2 and view.checkins.counts["丰泽区"]["2026-10"] == 1
    assert view.checkins.peak == 2
    assert view.plan_month == "2026-12"
    assert [u.code for u in view.without_plan] == ["CB"] and gone.code not in [u.code for u in view.without_plan]
    assert (view.held_visits, view.dead_letters) == (1, 1)


async def test_kiosk_keys_rotate(sessions) -> None:
    secret = b"k"
    async with transaction(sessions) as s:
        st = await f.station(s, "KK")
        await f.station(s, "KD", status="delisted")
    key = kiosk.key_for(secret, "KK", 1)
    assert key != kiosk.key_for(secret, "KL", 1) and key != kiosk.key_for(b"other", "KK", 1)
    async with sessions() as s:
        assert (await kiosk.open_station(s, secret, "KK", key)) is not None
        assert await kiosk.open_station(s, secret, "KK", "0" * kiosk.KEY_LEN) is None
        assert await kiosk.open_station(s, secret, "KD", kiosk.key_for(secret, "KD", 1)) is None
        assert await kiosk.link_key(s, secret, st.id) == ("KK", key)
    async with transaction(sessions) as s:
        assert await kiosk.rotate_key(s, "KK") == 2
        assert await kiosk.rotate_key(s, "NOPE") is None
    async with sessions() as s:
        assert await kiosk.open_station(s, secret, "KK", key) is None
        assert (await kiosk.open_station(s, secret, "KK", kiosk.key_for(secret, "KK", 2))) is not None
        assert (await s.get(Station, st.id)).kiosk_key_version == 2


async def test_kiosk_open_marks_expire(redis) -> None:
    await kiosk.ask(redis, "A", 1000.0)
    await kiosk.ask(redis, "B", 1000.0 - kiosk.OPEN_FOR_S - 1)
    assert await kiosk.open_codes(redis, 1000.0) == {"A"}
    assert await kiosk.claim_issue(redis, "A", 7, 10) and not await kiosk.claim_issue(redis, "A", 7, 10)
    assert await kiosk.claim_issue(redis, "A", 8, 10)
