"""Periods in Asia/Shanghai, eligibility and extensions (SPEC 3), through real visits and SQL boards."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from scoring import periods
from scoring.boards import station_board, station_points, talent_board, talent_points
from scoring.db import transaction
from scoring.facts import visit
from scoring.periods import Period
from tests import factories as f
from tests.scoring import builders as b

LAST_SECOND_2026 = datetime(2026, 12, 31, 15, 59, 59)  # 2026-12-31 23:59:59+08:00
FIRST_SECOND_2027 = datetime(2026, 12, 31, 16, 0, 0)  # 2027-01-01 00:00:00+08:00


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    return await b.clean_db_url(request, tmp_path)


async def visit_and_apply(sessions, t, st, at: datetime):
    async with transaction(sessions) as s:
        v = await f.visit(s, t, st, at)
        assert await visit.credit(s, [v.id]) == 1
    return v


async def board(sessions, kind: str, key: str, now: datetime, scope: str = "station") -> dict[str, int]:
    async with sessions() as s:
        if scope == "station":
            ranked = await station_board(s, Period(kind, key), now=now)
        else:
            ranked = await talent_board(s, Period(kind, key))
    return {r.code: r.points for r in ranked}


def test_helpers_put_the_new_year_in_shanghai_time():
    assert periods.to_utc_naive(datetime(2027, 1, 1, tzinfo=periods.TZ)) == FIRST_SECOND_2027
    assert periods.to_utc_naive(datetime(2027, 1, 1)) == FIRST_SECOND_2027  # naive means local
    assert periods.local_day(LAST_SECOND_2026) == date(2026, 12, 31)
    assert periods.local_day(FIRST_SECOND_2027) == date(2027, 1, 1)
    assert (periods.year_of(LAST_SECOND_2026), periods.month_key(LAST_SECOND_2026)) == (2026, "2026-12")
    assert (periods.year_of(FIRST_SECOND_2027), periods.month_key(FIRST_SECOND_2027)) == (2027, "2027-01")
    assert periods.year_of(datetime(2026, 12, 31, 16, 0, tzinfo=UTC)) == 2027
    assert Period("year", "2026").bounds() == (datetime(2025, 12, 31, 16), FIRST_SECOND_2027)
    assert Period("month", "2027-01").bounds() == (FIRST_SECOND_2027, datetime(2027, 1, 31, 16))
    assert Period("month", "2026-12").bounds() == (datetime(2026, 11, 30, 16), FIRST_SECOND_2027)
    assert Period("total", "all").bounds() == (None, None)
    assert Period.parse("year", now=FIRST_SECOND_2027) == Period("year", "2027")
    assert Period.parse("month", now=LAST_SECOND_2026) == Period("month", "2026-12")
    assert periods.eligible_from(date(2026, 6, 1)) == FIRST_SECOND_2027
    assert periods.next_month("2026-12") == "2027-01" and periods.previous_month("2027-01") == "2026-12"


@pytest.mark.parametrize("bad", [("year", "26"), ("month", "2026-13"), ("month", "2026-1"), ("week", None)])
def test_period_parse_refuses_bad_input(bad):
    with pytest.raises(ValueError):
        Period.parse(*bad)


async def test_last_second_of_2026_and_first_second_of_2027_through_visits_and_boards(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST")
        t = await f.talent(s, "QZ1")
    v1 = await visit_and_apply(sessions, t, st, LAST_SECOND_2026)
    v2 = await visit_and_apply(sessions, t, st, FIRST_SECOND_2027)
    # Two local days, so two credits, though both are 2026-12-31 in UTC.
    assert (v1.local_day, v2.local_day) == (date(2026, 12, 31), date(2027, 1, 1))
    now = datetime(2027, 3, 1)
    assert await board(sessions, "year", "2026", now) == {"ST": 1}
    assert await board(sessions, "month", "2026-12", now) == {"ST": 1}
    assert await board(sessions, "year", "2027", now) == {"ST": 1}
    assert await board(sessions, "month", "2027-01", now) == {"ST": 1}
    assert await board(sessions, "month", "2026-11", now) == {"ST": 0}
    assert await board(sessions, "total", "all", now) == {"ST": 2}
    assert await board(sessions, "year", "2026", now, "talent") == {"QZ1": 1}
    assert await board(sessions, "year", "2027", now, "talent") == {"QZ1": 1}
    async with sessions() as s:
        # "now" is the first second of 2027 local: the current year and month are 2027 and January
        assert await talent_points(s, t.id, now=FIRST_SECOND_2027) == {
            "total": 2, "year": 1, "month": 1, "balance": 2}
        assert await talent_points(s, t.id, now=LAST_SECOND_2026) == {
            "total": 2, "year": 1, "month": 1, "balance": 2}
        assert await station_points(s, st.id, now=FIRST_SECOND_2027) == {"total": 2, "year": 1, "month": 1}


async def test_a_check_in_at_0730_local_on_new_years_day_is_in_the_new_year(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST")
        t = await f.talent(s, "QZ1")
    v = await visit_and_apply(sessions, t, st, datetime(2026, 12, 31, 23, 30))  # 2027-01-01 07:30 local
    assert v.local_day == date(2027, 1, 1)
    assert await board(sessions, "year", "2027", datetime(2027, 2, 1)) == {"ST": 1}
    assert await board(sessions, "year", "2026", datetime(2027, 2, 1)) == {"ST": 0}


async def test_station_certified_mid_2026_is_ranked_from_2027_and_its_talents_earn_in_2026(sessions):
    async with transaction(sessions) as s:
        old = await f.station(s, "OLD", certified_on=date(2020, 5, 1))
        new = await f.station(s, "NEW", certified_on=date(2026, 6, 1))
        t = await f.talent(s, "QZ1")
    await visit_and_apply(sessions, t, new, b.local(2026, 7, 1, 10))
    await visit_and_apply(sessions, t, new, LAST_SECOND_2026)
    await visit_and_apply(sessions, t, old, b.local(2026, 7, 1, 10))

    # Not on any 2026 board, nor on the total board before 2027 begins.
    assert await board(sessions, "year", "2026", datetime(2027, 3, 1)) == {"OLD": 1}
    assert await board(sessions, "month", "2026-07", datetime(2027, 3, 1)) == {"OLD": 1}
    assert await board(sessions, "month", "2026-12", datetime(2027, 3, 1)) == {"OLD": 0}
    assert await board(sessions, "total", "all", LAST_SECOND_2026) == {"OLD": 1}
    # Its talent earned those points in 2026 all the same, and the station's own figures record them.
    assert await board(sessions, "year", "2026", datetime(2027, 3, 1), "talent") == {"QZ1": 3}
    async with sessions() as s:
        assert (await talent_points(s, t.id, now=LAST_SECOND_2026))["year"] == 3
        assert await station_points(s, new.id, now=LAST_SECOND_2026) == {"total": 2, "year": 2, "month": 1}

    # From 2027-01-01 00:00 local it is ranked; the total board counts its points from then on only.
    assert await board(sessions, "total", "all", FIRST_SECOND_2027) == {"OLD": 1, "NEW": 0}
    assert await board(sessions, "year", "2027", FIRST_SECOND_2027) == {"OLD": 0, "NEW": 0}
    await visit_and_apply(sessions, t, new, FIRST_SECOND_2027)
    assert await board(sessions, "year", "2027", FIRST_SECOND_2027) == {"OLD": 0, "NEW": 1}
    assert await board(sessions, "month", "2027-01", FIRST_SECOND_2027) == {"OLD": 0, "NEW": 1}
    async with sessions() as s:
        ranked = await station_board(s, Period("total", "all"), now=FIRST_SECOND_2027)
    # tied: OLD reached its point (July 2026) before NEW did (January 2027)
    assert [(r.rank, r.code, r.points) for r in ranked] == [(1, "OLD", 1), (1, "NEW", 1)]


async def test_delisted_station_is_not_ranked_but_its_talents_keep_their_points(sessions):
    async with transaction(sessions) as s:
        gone = await f.station(s, "GONE", status="delisted")
        live = await f.station(s, "LIVE")
        t = await f.talent(s, "QZ1")
    await visit_and_apply(sessions, t, gone, b.local(2026, 5, 1, 10))
    await visit_and_apply(sessions, t, live, b.local(2026, 5, 1, 10))
    for kind, key in (("total", "all"), ("year", "2026"), ("month", "2026-05")):
        assert await board(sessions, kind, key, datetime(2026, 6, 1)) == {"LIVE": 1}
    assert await board(sessions, "year", "2026", datetime(2026, 6, 1), "talent") == {"QZ1": 2}


async def test_extension_days_count_toward_the_extended_year_not_the_next(sessions):
    async with transaction(sessions) as s:
        ext = await f.station(s, "EXT")
        plain = await f.station(s, "PLAIN")
        # two grants add up: the 2026 window of EXT ends 2027-01-11 00:00 local
        await b.extension(s, ext, 2026, 4)
        await b.extension(s, ext, 2026, 6)
        t = await f.talent(s, "QZ1")
    for st in (ext, plain):
        await visit_and_apply(sessions, t, st, b.local(2026, 12, 20, 10))
        await visit_and_apply(sessions, t, st, b.local(2027, 1, 5, 10))  # an extra day for EXT
        await visit_and_apply(sessions, t, st, b.local(2027, 1, 10, 23, 59, 59))  # EXT's window's last second
        await visit_and_apply(sessions, t, st, b.local(2027, 1, 11, 0, 0, 0))  # 2027 for both
    now = datetime(2027, 3, 1)
    assert await board(sessions, "year", "2026", now) == {"EXT": 3, "PLAIN": 1}
    assert await board(sessions, "year", "2027", now) == {"EXT": 1, "PLAIN": 3}
    async with sessions() as s:
        assert (await station_points(s, ext.id, now=b.local(2027, 1, 20)))["year"] == 1
        assert (await station_points(s, ext.id, now=b.local(2026, 12, 25)))["year"] == 3
        ranked = await station_board(s, Period("year", "2026"), now=now)
    assert [(r.rank, r.code) for r in ranked] == [(1, "EXT"), (2, "PLAIN")]
    # Talents are not on station windows: their year is the calendar year.
    assert await board(sessions, "year", "2026", now, "talent") == {"QZ1": 2}


async def test_extension_of_one_station_leaves_the_others_and_other_years_alone(sessions):
    async with transaction(sessions) as s:
        ext = await f.station(s, "EXT")
        await b.extension(s, ext, 2025, 3)  # an old extension: 2026 starts 2026-01-04 for EXT
        t = await f.talent(s, "QZ1")
    await visit_and_apply(sessions, t, ext, b.local(2026, 1, 2, 10))
    await visit_and_apply(sessions, t, ext, b.local(2026, 1, 4, 0, 0))
    now = datetime(2026, 6, 1)
    assert await board(sessions, "year", "2025", now) == {"EXT": 1}
    assert await board(sessions, "year", "2026", now) == {"EXT": 1}


def test_scoring_window_helper():
    start, end = periods.scoring_window(2026, 10, 0)
    assert (start, end) == (datetime(2025, 12, 31, 16), FIRST_SECOND_2027 + timedelta(days=10))
    start, end = periods.scoring_window(2027, 0, 10)
    assert (start, end) == (FIRST_SECOND_2027 + timedelta(days=10), datetime(2027, 12, 31, 16))
