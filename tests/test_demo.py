"""`talenthome demo`: the sample city, built in-process at pinned times on SQLite and PostgreSQL.

The dates that matter: 1 January 00:00:30 local (last year just closed and rated, this year has no closed
month yet; the running activity starts at midnight) and the middle of a month. What the city must hold is
checked against the ledger itself: the live boards equal what the entries sum to, every closed month has a
featured station, last year's rating is confirmed, one hold and one void, gifts in stock, an upcoming
activity with free seats, and nothing the worker would still apply. Tests use a smaller city than the
command's default (fewer check-ins and activities; the same 40 stations) to stay fast.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
import time_machine
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import texts
from scoring import boards, live
from scoring.clock import utcnow
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts.common import Params
from scoring.models import (
    Activity,
    Entry,
    Flag,
    Gift,
    MonthClose,
    Notification,
    RatingRun,
    Signup,
    Staff,
    Station,
    Talent,
    Visit,
    Void,
)
from scoring.periods import TZ, Period, local_day, month_key, next_month, to_utc_naive
from scoring.signups import upcoming
from talenthome import demo
from talenthome.commands.demo import report, run
from talenthome.runtime import CliError
from tests.bot.conftest import Bot, make_settings, start_bot
from tests.cli import run_cli
from worker.tasks import unapplied

SIZE = demo.Size(stations=40, talents=100, visits=600, activities=20, upcoming=4)
TINY = demo.Size(stations=14, talents=30, visits=100, activities=4, upcoming=2)
NEW_YEAR = to_utc_naive(datetime(2027, 1, 1, 0, 0, 30))
MID_MONTH = to_utc_naive(datetime(2026, 6, 17, 15, 20))


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def build(db_url: str, redis_url: str, now: datetime, seed: int = 7, force: bool = False,
                size: demo.Size = SIZE) -> Any:
    return await run(make_settings(db_url, redis_url), redis_url, now=now, seed=seed, force=force, size=size)


def months_between(first: str, last: str) -> list[str]:
    out = [first]
    while out[-1] != last:
        out.append(next_month(out[-1]))
    return out


# -- the city ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("now", [NEW_YEAR, MID_MONTH], ids=["new-year", "mid-month"])
async def test_the_city(db_url: str, redis_url: str, redis: aioredis.Redis,
                        sessions: async_sessionmaker[AsyncSession], now: datetime) -> None:
    done = await build(db_url, redis_url, now)
    b = done.built
    year = local_day(now).year
    async with sessions() as s:
        stations = (await s.scalars(select(Station))).all()
        assert len(stations) == 40
        assert {st.county for st in stations} == set(demo.COUNTIES)
        assert {st.type for st in stations} == set(demo.TYPES) and {st.kind for st in stations} == {"home", "community"}
        assert {st.stars for st in stations} >= {2, 3, 4}
        # the station card on the window has something to show
        assert all(st.address.startswith("泉州市") and st.opening_hours for st in stations)
        # Certified this year: recorded, not yet eligible, so not on this year's board (SPEC 3).
        new = [st for st in stations if st.certified_on.year == year]
        assert new and all(st.certified_on <= local_day(now) for st in new)
        year_board = await boards.station_board(s, Period("year", str(year)), now=now)
        assert not {st.id for st in new} & {r.standing.id for r in year_board}
        assert len(year_board) >= 25

        talents = (await s.scalars(select(Talent))).all()
        assert {t.category for t in talents} == set("ABCDE")
        assert {t.county for t in talents} <= set(demo.COUNTIES)
        bound = [t for t in talents if t.openid]
        assert 0.5 * len(talents) < len(bound) < len(talents)

        # Whom to try: a bound talent with points, an operator of the station to scan, a real admin.
        openid, cert_no, name = b.talent
        talent = await s.scalar(select(Talent).where(Talent.openid == openid))
        assert talent is not None and (talent.cert_no, talent.name) == (cert_no, name)
        assert (await boards.talent_points(s, talent.id, now))["total"] > 0
        assert await s.scalar(select(Staff.role).where(Staff.openid == b.admin, Staff.active)) == "admin"
        op = await s.scalar(select(Staff).where(Staff.openid == b.operator[0]))
        station = await s.scalar(select(Station).where(Station.code == b.station[0]))
        assert op is not None and station is not None and op.role == "operator" and op.station_id == station.id
        assert station.status == "active" and station.certified_on.year < year
        assert not await s.scalar(select(Visit.id).where(  # their first scan today is the newcomer's to make
            Visit.talent_id == talent.id, Visit.local_day == local_day(now)))

        # Every closed month has its featured station: last year's twelve and this year's past months.
        closed = (await s.scalars(select(MonthClose).order_by(MonthClose.period))).all()
        expected = months_between(f"{year - 1}-01", f"{year - 1}-12")
        if local_day(now).month > 1:
            expected += months_between(f"{year}-01", f"{year}-{local_day(now).month - 1:02d}")
        assert [c.period for c in closed] == expected == b.months_closed
        assert all(c.featured_station_id is not None and c.featured_month == next_month(c.period) for c in closed)
        # Last year's rating is confirmed: stars moved, and the year's new stations are on the subsidy list.
        rated = await s.get(RatingRun, year - 1)
        assert rated is not None and rated.status == "confirmed"

        # Rules at work: R1, R2, R3, R4 and V entries, visits applied through the worker's path.
        rules = Counter((await s.scalars(select(Entry.rule))).all())
        assert {"R1@1", "R2@1", "R3@1", "R4@1", "V@1"} <= set(rules)
        assert await s.scalar(select(func.count(Entry.id)).where(Entry.occurred_at > now)) == 0

        # One hold, still open; its visit has no entries. One void, applied: its visit nets to zero.
        (flag,) = (await s.scalars(select(Flag))).all()
        assert (flag.rule, flag.hold, flag.status, flag.id) == ("multi_station", True, "open", b.hold_flag_id)
        assert await s.scalar(select(func.count(Entry.id)).where(
            Entry.fact_kind == "visit", Entry.fact_id == flag.visit_id)) == 0
        (void,) = (await s.scalars(select(Void))).all()
        assert void.target_kind == "visit" and void.applied_at is not None and void.applied_at <= now
        amounts = (await s.scalars(select(Entry.amount).where(
            Entry.fact_kind == "visit", Entry.fact_id == void.target_id))).all()
        assert sorted(amounts) == [-1, -1, 1, 1]

        # Gifts in stock, city-wide and at stations; an upcoming activity with sign-ups and free seats.
        gifts = (await s.scalars(select(Gift))).all()
        assert any(g.station_id is None and g.stock > 0 for g in gifts)
        assert any(g.station_id is not None and g.stock > 0 for g in gifts)
        soon = (await upcoming(s, now, per_page=50)).items
        assert any(a.capacity and 0 < a.taken < a.capacity for a in soon)
        assert await s.scalar(select(func.count(Signup.id)).join(Activity).where(
            Signup.talent_id == talent.id, Activity.starts_at > now)) == 1
        running = (await s.scalars(select(Activity).where(Activity.starts_at <= now, Activity.ends_at > now))).all()
        assert len(running) == 1 and month_key(running[0].starts_at) == month_key(now)

    # Nothing left for the worker to apply (the held visit waits for an admin, as it should), nor to send:
    # the history's notifications went to made-up openids.
    settings = make_settings(db_url, redis_url)
    assert await unapplied(sessions, Params.from_settings(settings), cutoff=now + timedelta(days=1), now=now) == []
    async with sessions() as s:
        statuses = Counter((await s.scalars(select(Notification.status))).all())
    assert set(statuses) == {"given_up"} and statuses["given_up"] > 40

    # The live boards equal the ledger: every station's and talent's sums, and every board the SQL ranks.
    assert await live.is_built(redis)
    async with sessions() as s:
        assert await live.compare(s, redis, now=now) == []
        for key in expected:
            month = Period("month", key)
            assert [(r.code, r.points) for r in await live.station_board(s, redis, month, now=now)] == \
                [(r.code, r.points) for r in await boards.station_board(s, month, now=now)]
        totals = dict((await s.execute(select(Entry.station_id, func.sum(Entry.amount)).join(
            Station, Station.id == Entry.station_id).where(Entry.occurred_at >= Station.eligible_from)
            .group_by(Entry.station_id))).all())
        talent_totals = dict((await s.execute(select(Entry.talent_id, func.sum(Entry.amount)).where(
            Entry.talent_id.is_not(None), Entry.fact_kind != "redemption").group_by(Entry.talent_id))).all())
    zset = live.board_key("station", Period("total", "all"))
    assert {int(m): int(p) for m, p in await redis.zrange(zset, 0, -1, withscores=True)} == totals
    zset = live.board_key("talent", Period("total", "all"))
    assert {int(m): int(p) for m, p in await redis.zrange(zset, 0, -1, withscores=True)} == talent_totals


@pytest.mark.parametrize("local", [datetime(2026, 12, 31, 23, 59, 59), datetime(2028, 3, 1, 0, 0, 1),
                                   datetime(2028, 2, 29, 12, 0)], ids=str)
async def test_any_day(sqlite_url: str, redis_url: str, redis: aioredis.Redis, local: datetime) -> None:
    """A small city on other days that matter: the last second of a year, just after a leap February."""
    now = to_utc_naive(local)
    done = await build(sqlite_url, redis_url, now, size=TINY)
    year, month = local.year, local.month
    last_closed = f"{year}-{month - 1:02d}" if month > 1 else f"{year - 1}-12"
    assert done.built.months_closed == months_between(f"{year - 1}-01", last_closed)
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    params = Params.from_settings(make_settings(sqlite_url, redis_url))
    assert await unapplied(sessions, params, cutoff=now + timedelta(days=1), now=now) == []
    async with sessions() as s:
        assert await live.compare(s, redis, now=now) == []
        assert (await s.get(RatingRun, year - 1)) is not None
    await engine.dispose()


async def test_same_seed_same_city(sqlite_url: str, pg_url: str, redis_url: str, tmp_path: Any,
                                   sqlite_template: str) -> None:
    """Same seed, same now: the same city, even on another database; another seed: another city."""
    from tests.conftest import new_sqlite_database

    await build(sqlite_url, redis_url, MID_MONTH, seed=5, size=TINY)
    await build(pg_url, redis_url, MID_MONTH, seed=5, size=TINY)
    other = new_sqlite_database(sqlite_template, str(tmp_path))
    await build(other, redis_url, MID_MONTH, seed=6, size=TINY)
    first, second, third = [await fingerprint(url) for url in (sqlite_url, pg_url, other)]
    assert first == second
    assert first["stations"] != third["stations"] and first["entries"] != third["entries"]


async def fingerprint(url: str) -> dict[str, Any]:
    """The city by natural keys (codes, certificate numbers, times), not by row ids."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            codes = dict((await s.execute(select(Station.id, Station.code))).all())
            certs = dict((await s.execute(select(Talent.id, Talent.cert_no))).all())
            return {
                "stations": sorted((await s.execute(select(
                    Station.code, Station.name, Station.county, Station.type, Station.kind, Station.certified_on,
                    Station.stars, Station.status))).all()),
                "talents": sorted((await s.execute(select(
                    Talent.cert_no, Talent.name, Talent.category, Talent.county, Talent.openid,
                    Talent.bound_at))).all(),
                    key=str),
                "entries": sorted(((codes.get(e.station_id), certs.get(e.talent_id), e.amount, e.rule, e.fact_kind,
                                    e.occurred_at) for e in (await s.scalars(select(Entry))).all()), key=str),
                "activities": sorted((codes[a.station_id], a.title, a.starts_at, a.ends_at, a.capacity, a.published_at)
                                     for a in (await s.scalars(select(Activity))).all()),
                "closed": sorted((m.period, codes.get(m.featured_station_id))
                                 for m in (await s.scalars(select(MonthClose))).all()),
                "gifts": sorted((await s.execute(select(Gift.name, Gift.cost, Gift.stock))).all()),
            }
    finally:
        await engine.dispose()


# -- refusals, --force ---------------------------------------------------------------------------------------


async def test_refuses_a_database_that_is_not_empty(sqlite_url: str, redis_url: str) -> None:
    engine = make_engine(sqlite_url)
    async with transaction(make_sessionmaker(engine)) as s:
        s.add(Talent(cert_no="QZ-REAL-1", name="真实人才"))
    result = await run_cli("demo", "--seed", "3", env={"DATABASE_URL": sqlite_url, "REDIS_URL": redis_url})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "not empty" in result.stderr and "--force" in result.stderr
    # A real city's data is never wiped, not even with --force: only a database the demo built.
    forced = await run_cli("demo", "--force", env={"DATABASE_URL": sqlite_url, "REDIS_URL": redis_url})
    assert forced.returncode == 2 and forced.stderr.count("\n") == 1 and "did not make" in forced.stderr
    async with make_sessionmaker(engine)() as s:
        assert await s.scalar(select(func.count(Station.id))) == 0
        assert await s.scalar(select(func.count(Talent.id))) == 1
    await engine.dispose()
    help_text = " ".join((await run_cli("demo", "--help", env={})).stdout.split())
    assert "--force" in help_text and "DELETE EVERY ROW" in help_text


async def test_force_wipes_first(db_url: str, redis_url: str, redis: aioredis.Redis,
                                 sessions: async_sessionmaker[AsyncSession], capsys: pytest.CaptureFixture[str]
                                 ) -> None:
    """--force on a used database: nothing of the old data, nothing of the old Redis state, the demo."""
    await build(db_url, redis_url, MID_MONTH, seed=1, size=TINY)
    async with transaction(sessions) as s:
        s.add(Station(code="OLD1", name="旧站点", kind="home", type="service", county="鲤城",
                      certified_on=date(2020, 1, 1), eligible_from=to_utc_naive(datetime(2021, 1, 1))))
    await redis.setbit(live.done_bit("visit", 1)[0], live.done_bit("visit", 1)[1], 1)
    await redis.set("arq:job:apply_visit:1", "stale")
    with pytest.raises(CliError, match="not empty"):
        await build(db_url, redis_url, MID_MONTH, seed=2)
    done = await build(db_url, redis_url, MID_MONTH, seed=2, force=True)
    assert done.wiped == (15, 30)
    async with sessions() as s:
        assert await s.scalar(select(Station.id).where(Station.code == "OLD1")) is None
        assert await s.scalar(select(func.count(Station.id))) == 40
        assert await s.scalar(select(func.count(RatingRun.year))) == 1
        assert await s.scalar(select(func.count(Flag.id))) == 1
        assert await live.compare(s, redis, now=MID_MONTH) == []
    assert not await redis.exists("arq:job:apply_visit:1")
    assert not await live.is_done(redis, "visit", 1)
    report(done)
    out = capsys.readouterr().out
    assert "--force" in out and f"talenthome chat --openid {done.built.talent[0]}" in out
    assert f"talenthome qr station {done.built.station[0]}" in out and "oDemoAdmin" in out


# -- what a newcomer sees in the chat ---------------------------------------------------------------------------


async def test_the_chat_after_the_demo(sqlite_url: str, redis_url: str) -> None:
    """The printed talent, operator and admin get answers with substance, on the bot's own clock."""
    async for bot in start_bot(sqlite_url, redis_url):
        await chat(bot)


async def chat(bot: Bot) -> None:
    with time_machine.travel(datetime(2026, 3, 9, 10, 30, tzinfo=TZ), tick=True):
        done = await run(bot.settings, bot.settings.redis_url or "", now=utcnow(), seed=11, force=False, size=SIZE)
        b = done.built
        talent = b.talent[0]
        points = (await bot.wx.text(talent, "积分")).text
        assert points.startswith("您的可用积分") and "打卡" in points, points
        rank = (await bot.wx.text(talent, "排名")).text
        assert texts.RANK_HEAD in rank and "第 1 名" in rank and "您今年的积分排名：第" in rank, rank
        activities = (await bot.wx.text(talent, "活动")).text
        assert activities.startswith("近期活动") and "您已报名：#" in activities, activities
        gifts = (await bot.wx.text(talent, "礼品")).text
        assert gifts.startswith(texts.GIFTS_HEAD) and "咖啡券" in gifts, gifts
        flags = (await bot.wx.text(b.admin, "风险")).text
        assert "暂扣" in flags, flags
        station = (await bot.wx.text(b.operator[0], "本站")).text
        assert b.operator[2] in station, station
