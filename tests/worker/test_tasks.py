"""worker/tasks.py on both databases: each task through a real arq worker in burst mode against real Redis,
the sweeper, dead letters, fraud holds, voids; after every run the live boards equal the SQL boards."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from arq import Retry, create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import admin, boards, fraud, live, periods
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts import visit
from scoring.facts.common import Params
from scoring.models import (
    Activity,
    DeadLetter,
    DigestLine,
    Entry,
    Flag,
    MediaReport,
    Notification,
    Redemption,
    Staff,
    Station,
    Talent,
    Visit,
    Void,
)
from scoring.periods import Period
from scoring.ranking import Ranked
from scoring.settings import Settings
from scoring.texts.admin import flag_detail
from tests import factories as f
from tests.scoring import builders as b
from worker import tasks
from worker.settings import create

Sessions = async_sessionmaker[AsyncSession]
NOW = b.local(2026, 11, 20, 12)


# -- helpers shared with test_exactly_once.py ---------------------------------------------------------


def make_settings(db_url: str, redis_url: str, wechat_base: str = "http://127.0.0.1:9/") -> Settings:
    return Settings(_env_file=None, database_url=db_url, redis_url=redis_url,  # type: ignore[call-arg]
                    wechat_api_base=wechat_base)


async def run_burst(redis_url: str, settings: Settings, **overrides: Any) -> Worker:
    """An arq worker with every area's functions, in burst mode, without cron (tests call the sweeper)."""
    worker = create(redis_url, settings, **{"burst": True, "handle_signals": False, "cron_jobs": [],
                                            "poll_delay": 0.01, **overrides})
    try:
        await asyncio.wait_for(worker.main(), 60)
    finally:
        with warnings.catch_warnings():  # arq 0.28 closes its pool with redis' deprecated close()
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await worker.close()
    return worker


@pytest.fixture
async def lite(sqlite_url: str) -> AsyncIterator[Sessions]:
    """Sessions on SQLite only, for the tests whose subject does not depend on the database."""
    engine = make_engine(sqlite_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def arq_redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    yield pool
    await pool.aclose()


def lines(board: Sequence[Ranked]) -> list[tuple[int, str, int, datetime | None]]:
    return [(r.rank, r.code, r.points, r.standing.reached_at) for r in board]


async def board_periods(session: AsyncSession) -> tuple[list[Period], list[Period]]:
    """(station periods, talent periods) that the ledger touches, plus the totals."""
    ats = (await session.scalars(select(Entry.occurred_at).distinct())).all()
    months = {periods.month_key(a) for a in ats}
    years = {str(periods.year_of(a)) for a in ats} | {str(int(m[:4]) - 1) for m in months}
    station = [Period("total", "all")] + [Period("year", y) for y in sorted(years)] + \
        [Period("month", m) for m in sorted(months)]
    talent = [Period("total", "all")] + [Period("year", y) for y in sorted(years)]
    return station, talent


async def assert_boards_match(sessions: Sessions, redis: Any, now: datetime = NOW) -> None:
    """Every live board the ledger touches equals the SQL board (scoring.boards), line by line."""
    assert await live.is_built(redis)
    async with sessions() as s:
        station, talent = await board_periods(s)
        for p in station:
            assert lines(await live.station_board(s, redis, p, now=now)) == \
                lines(await boards.station_board(s, p, now=now)), p
        for p in talent:
            assert lines(await live.talent_board(s, redis, p)) == lines(await boards.talent_board(s, p)), p


async def count(sessions: Sessions, model: Any, *where: Any) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def ready(sessions: Sessions, redis: Any) -> None:
    """Fresh Redis: build the (empty) boards, as the worker's first sweep does."""
    await live.rebuild(sessions, redis)


# -- fixtures of data ---------------------------------------------------------------------------------


async def city(sessions: Sessions, stations: int = 3, talents: int = 4) -> tuple[list[Station], list[Talent]]:
    async with transaction(sessions) as s:
        sts = [await f.station(s, f"WS{i}") for i in range(stations)]
        sts.append(await f.station(s, "NEW", certified_on=b.certified(2026)))  # not eligible before 2027
        tls = [await f.talent(s, f"WT{i}", openid=f"o-talent-{i}") for i in range(talents)]
    return sts, tls


async def visits_over_days(sessions: Sessions, sts: Sequence[Station], tls: Sequence[Talent], days: int,
                           start: datetime = NOW - timedelta(days=40)) -> list[int]:
    """One visit per (talent, station, day), a talent's stations an hour apart (no fraud rule fires)."""
    ids = []
    async with transaction(sessions) as s:
        for d in range(days):
            for ti, t in enumerate(tls):
                for si, st in enumerate(sts):
                    at = start + timedelta(days=d, hours=si, minutes=ti)
                    ids.append((await f.visit(s, t, st, at)).id)
    return ids


# -- tests --------------------------------------------------------------------------------------------


async def test_visits_apply_once_and_boards_follow(sessions: Sessions, db_url: str, redis_url: str, redis: Any,
                                                   arq_redis: ArqRedis) -> None:
    sts, tls = await city(sessions)
    ids = await visits_over_days(sessions, sts, tls, days=3)
    ids += await visits_over_days(sessions, sts[:1], tls[:1], days=1, start=b.local(2026, 12, 31, 23, 30))
    ids += await visits_over_days(sessions, sts[:1], tls[:1], days=1, start=b.local(2027, 1, 1, 7, 30))
    await ready(sessions, redis)
    for vid in ids:
        await arq_redis.enqueue_job("apply", "visit", vid, _job_id=f"visit:{vid}")
        await arq_redis.enqueue_job("apply", "visit", vid, _job_id=f"visit:{vid}")  # refused: same id
        await arq_redis.enqueue_job("apply", "visit", vid, _job_id=f"visit:{vid}:again")
    await run_burst(redis_url, make_settings(db_url, redis_url))
    assert await count(sessions, Entry) == 2 * len(ids)
    assert await count(sessions, Visit, Visit.applied_at.is_(None)) == 0
    assert await redis.zcard(live.INTENTS) == 0
    await assert_boards_match(sessions, redis)
    async with sessions() as s:
        # the check-in at 2027-01-01 07:30 local is 2026 in UTC, yet counts in 2027 (SPEC 3)
        y2027 = await live.station_board(s, redis, Period("year", "2027"), now=b.local(2027, 2, 1))
        assert [(r.code, r.points) for r in y2027 if r.points] == [("WS0", 1)]
        # a station certified in 2026 is not ranked in 2026; its talents still earn
        assert "NEW" not in [r.code for r in await live.station_board(s, redis, Period("year", "2026"), now=NOW)]
    # a second run of everything changes nothing
    for vid in ids[:10]:
        await arq_redis.enqueue_job("apply", "visit", vid, _job_id=f"visit:{vid}:third")
    await run_burst(redis_url, make_settings(db_url, redis_url))
    assert await count(sessions, Entry) == 2 * len(ids)
    await assert_boards_match(sessions, redis)


async def test_one_job_applies_a_batch_of_pending_visits(lite: Sessions, sqlite_url: str, redis_url: str,
                                                         redis: Any, arq_redis: ArqRedis) -> None:
    sessions = lite
    sts, tls = await city(sessions, stations=5, talents=10)
    ids = await visits_over_days(sessions, sts, tls, days=2)
    await ready(sessions, redis)
    job = await arq_redis.enqueue_job("apply", "visit", ids[0], _job_id=f"visit:{ids[0]}")
    assert job is not None
    await run_burst(redis_url, make_settings(sqlite_url, redis_url))
    assert await job.result(timeout=5) == f"settled (batch of {len(ids)}, {len(ids)} new)"
    assert await count(sessions, Visit, Visit.applied_at.is_(None)) == 0
    # the other visits' own jobs now finish on the Redis marker alone
    jobs = [await arq_redis.enqueue_job("apply", "visit", v, _job_id=f"visit:{v}") for v in ids[1:6]]
    await run_burst(redis_url, make_settings(sqlite_url, redis_url))
    assert [await j.result(timeout=5) for j in jobs if j] == ["already"] * 5
    await assert_boards_match(sessions, redis)


async def test_activity_media_survey_and_redemption(sessions: Sessions, db_url: str, redis_url: str, redis: Any,
                                                    arq_redis: ArqRedis, fake_wechat: Any) -> None:
    sts, tls = await city(sessions)
    async with transaction(sessions) as s:
        act = await b.activity(s, sts[0], starts_at=b.local(2026, 11, 3, 14))
        await b.attend(s, act, tls[0])
        await b.publicity(s, act)
        await b.media(s, act, "municipal", at=b.local(2026, 11, 4))
        sv = await b.survey(s, sts[1], 2026, 30)
        over = await b.survey(s, sts[1], 2026, 30)  # would pass the +50 cap: refused
        cheap, scarce = await b.gift(s, cost=1), await b.gift(s, cost=1, stock=0, name="台历")
        dear = await b.gift(s, cost=100, name="电脑包")
        v = await f.visit(s, tls[0], sts[0], b.local(2026, 11, 3, 14, 5))
        ok, no_stock, no_balance = (await b.redemption(s, tls[0], cheap), await b.redemption(s, tls[0], scarce),
                                    await b.redemption(s, tls[0], dear))
    await ready(sessions, redis)
    jobs = [("visit", v.id), ("activity", act.id), ("media", act.id), ("survey", sv.id), ("survey", over.id)]
    for kind, fid in jobs:
        await arq_redis.enqueue_job("apply", kind, fid, _job_id=f"{kind}:{fid}")
    await run_burst(redis_url, make_settings(db_url, redis_url, fake_wechat.base_url))
    # redemptions after the visit's point is in; a higher media report later adds the difference
    async with transaction(sessions) as s:
        await b.media(s, act, "provincial", at=b.local(2026, 11, 6))
    for kind, fid in [("redemption", ok.id), ("redemption", no_stock.id), ("redemption", no_balance.id),
                      ("media", act.id)]:
        await arq_redis.enqueue_job("apply", kind, fid, _job_id=f"{kind}:{fid}:1")
        await arq_redis.enqueue_job("apply", kind, fid, _job_id=f"{kind}:{fid}:2")
    await run_burst(redis_url, make_settings(db_url, redis_url, fake_wechat.base_url))
    async with sessions() as s:
        pts = await boards.station_points(s, sts[0].id, now=NOW)
        assert pts["month"] == 1 + 5 + 10  # visit, R1, media (municipal 5, then provincial +5)
        assert (await boards.station_points(s, sts[1].id, now=NOW))["year"] == 30
        reds = {r.id: r for r in (await s.scalars(select(Redemption))).all()}
        assert (reds[ok.id].status, reds[no_stock.id].reason, reds[no_balance.id].reason) == \
            ("applied", "stock", "balance")
        notes = {n.key: n for n in (await s.scalars(select(Notification).where(
            Notification.key.like("redeem:%")))).all()}
    assert set(notes) == {f"redeem:{ok.id}", f"redeem:{no_stock.id}", f"redeem:{no_balance.id}"}
    assert reds[ok.id].pickup_code and reds[ok.id].pickup_code in notes[f"redeem:{ok.id}"].payload
    assert "已兑完" in notes[f"redeem:{no_stock.id}"].payload
    assert "余额不足" in notes[f"redeem:{no_balance.id}"].payload
    assert {n.openid for n in notes.values()} == {"o-talent-0"}
    # kicked: each delivered once through the fake WeChat API
    assert sorted(r.json["touser"] for r in fake_wechat.delivered()) == ["o-talent-0"] * 3
    await assert_boards_match(sessions, redis)
    async with sessions() as s:  # the redemption is spending: the talent board still shows the point
        assert [r.points for r in await live.talent_board(s, redis, Period("total", "all"))] == [1]


async def test_voids_reverse_once_whatever_the_target(sessions: Sessions, db_url: str, redis_url: str, redis: Any,
                                                      arq_redis: ArqRedis, fake_wechat: Any) -> None:
    sts, tls = await city(sessions)
    async with transaction(sessions) as s:
        s.add(Staff(openid="o-op-0", role="operator", station_id=sts[0].id))
        act = await b.activity(s, sts[0], starts_at=b.local(2026, 11, 3, 14))
        await b.attend(s, act, tls[0])
        await b.publicity(s, act)
        m1 = await b.media(s, act, "provincial", at=b.local(2026, 11, 4))
        await b.media(s, act, "county", at=b.local(2026, 11, 5))
        act2 = await b.activity(s, sts[1], starts_at=b.local(2026, 11, 3, 14))
        await b.attend(s, act2, tls[1])
        await b.publicity(s, act2)
        await b.media(s, act2, "central", at=b.local(2026, 11, 4))
        v1 = await f.visit(s, tls[0], sts[0], b.local(2026, 11, 3, 14, 5))
        v2 = await f.visit(s, tls[1], sts[2], b.local(2026, 11, 7, 10))
    await ready(sessions, redis)
    for kind, fid in [("visit", v1.id), ("visit", v2.id), ("activity", act.id), ("media", act.id),
                      ("activity", act2.id), ("media", act2.id)]:
        await arq_redis.enqueue_job("apply", kind, fid, _job_id=f"{kind}:{fid}")
    await run_burst(redis_url, make_settings(db_url, redis_url, fake_wechat.base_url))
    async with transaction(sessions) as s:
        entry = await s.scalar(select(Entry.id).where(Entry.fact_kind == "visit", Entry.fact_id == v2.id,
                                                      Entry.talent_id.is_not(None)))
        v3 = await f.visit(s, tls[2], sts[2], b.local(2026, 11, 8, 10))
        voids = [Void(target_kind="media", target_id=m1.id, actor="admin-1", reason="报道不实"),
                 Void(target_kind="visit", target_id=v1.id, actor="admin-1", reason="代打卡"),
                 Void(target_kind="entry", target_id=entry, actor="admin-1", reason="录入错误"),
                 Void(target_kind="activity", target_id=act2.id, actor="admin-1", reason="活动未举办"),
                 Void(target_kind="visit", target_id=v3.id, actor="admin-1", reason="代打卡")]  # before applying
        s.add_all(voids)
        await s.flush()
    for _ in range(2):  # every void twice, under other job ids: the second changes nothing
        for vd in voids:
            await arq_redis.enqueue_job("apply", "void", vd.id, _job_id=f"void:{vd.id}:{_}")
        await arq_redis.enqueue_job("apply", "visit", v3.id, _job_id=f"visit:{v3.id}:{_}")
        await run_burst(redis_url, make_settings(db_url, redis_url, fake_wechat.base_url))
        async with sessions() as s:
            st0 = await boards.station_points(s, sts[0].id, now=NOW)
            st1 = await boards.station_points(s, sts[1].id, now=NOW)
            st2 = await boards.station_points(s, sts[2].id, now=NOW)
            reversals = await s.scalar(select(func.count()).select_from(Entry).where(Entry.reverses_id.is_not(None)))
            t1 = await boards.talent_points(s, tls[1].id, now=NOW)
        # station 0: visit voided (-1), R1 stays 5, media re-settled from provincial 10 to county 3
        assert st0["month"] == 5 + 3
        assert st1["month"] == 0  # activity voided: R1 and media reversed
        assert st2["month"] == 1 and t1["total"] == 0  # only the talent's leg of v2 voided; v3 never paid
        assert reversals == 2 + 1 + 1 + 2  # visit legs, media, one entry, R1 + media of act2
        await assert_boards_match(sessions, redis)
    assert await count(sessions, Void, Void.applied_at.is_(None)) == 0
    assert await count(sessions, Entry, Entry.fact_kind == "visit", Entry.fact_id == v3.id) == 0
    async with sessions() as s:
        keys = set((await s.scalars(select(Notification.key).where(Notification.key.like("void:%")))).all())
        lines = (await s.execute(select(DigestLine.station_id, Entry.amount).join(
            Entry, Entry.id == DigestLine.entry_id).where(Entry.reverses_id.is_not(None)))).all()
    assert keys == set()  # operators hear of voids in their hourly digest only
    assert sorted(lines) == sorted([(sts[0].id, -10), (sts[0].id, -1), (sts[1].id, -5), (sts[1].id, -20)])


async def test_fraud_hold_then_release_or_void(sessions: Sessions, db_url: str, redis_url: str, redis: Any,
                                               arq_redis: ArqRedis, fake_wechat: Any) -> None:
    sts, tls = await city(sessions, stations=4)
    t0 = b.local(2026, 11, 10, 9)
    async with transaction(sessions) as s:
        s.add_all([Staff(openid="o-op-2", role="operator", station_id=sts[2].id),
                   Staff(openid="o-admin", role="admin")])
        run = [await f.visit(s, tls[0], st, t0 + timedelta(minutes=10 * i)) for i, st in enumerate(sts[:4])]
        other = [await f.visit(s, tls[1], st, t0 + timedelta(minutes=20 * i)) for i, st in enumerate(sts[:3])]
    await ready(sessions, redis)
    for v in reversed(run + other):  # in any order: the decision reads the recorded visits
        await arq_redis.enqueue_job("apply", "visit", v.id, _job_id=f"visit:{v.id}")
    await run_burst(redis_url, make_settings(db_url, redis_url, fake_wechat.base_url))
    async with sessions() as s:
        flags = {fl.visit_id: fl for fl in (await s.scalars(select(Flag))).all()}
    # talent 0: the 3rd and 4th station within 30 minutes are held; talent 1's run spans 40 minutes
    assert set(flags) == {run[2].id, run[3].id}
    assert all(fl.hold and fl.status == "open" and fl.rule == "multi_station" for fl in flags.values())
    assert await count(sessions, Entry, Entry.fact_kind == "visit") == 2 * (2 + 3)
    assert await count(sessions, Notification, Notification.key.like("hold:%")) == 2 + 1  # 2 admins, 1 operator
    # the sweeper leaves held visits alone
    assert ("visit", run[2].id) not in await tasks.unapplied(
        sessions, Params(), cutoff=NOW + timedelta(days=1), now=NOW)
    await assert_boards_match(sessions, redis)
    async with transaction(sessions) as s:  # what 释放 does: the release is recorded, the job is lost here
        released = await admin.release_flag(s, flags[run[2].id].id, "admin-1")
        assert isinstance(released, admin.Released) and released.job == visit.job(run[2].id, release=released.flag.id)
        s.add(Void(target_kind="flag", target_id=flags[run[3].id].id, actor="admin-1", reason="代打卡",
                   created_at=NOW + timedelta(days=1)))  # its own job applies it, not the sweep below
        await s.flush()
        void_id = (await s.scalars(select(Void.id))).one()
    async with transaction(sessions) as s:
        assert await admin.release_flag(s, flags[run[2].id].id, "admin-1") is admin.AdminRefusal.ALREADY
    await arq_redis.enqueue_job("apply", "void", void_id, _job_id=f"void:{void_id}")
    swept = await tasks.sweep({"redis": arq_redis, "sessions": sessions, "settings": make_settings(db_url, redis_url)},
                              now=NOW + timedelta(days=1))
    assert swept == {"visit": 1}  # the released visit
    await run_burst(redis_url, make_settings(db_url, redis_url, fake_wechat.base_url))
    async with transaction(sessions) as s:
        statuses = {fl.visit_id: fl.status for fl in (await s.scalars(select(Flag))).all()}
        assert await admin.release_flag(s, flags[run[3].id].id, "admin-1") is admin.AdminRefusal.ALREADY
    assert statuses == {run[2].id: "released", run[3].id: "voided"}
    assert await count(sessions, Entry, Entry.fact_kind == "visit") == 2 * (3 + 3)
    assert await count(sessions, Visit, Visit.applied_at.is_(None)) == 0
    await assert_boards_match(sessions, redis)  # the released visit reached the boards via the sweeper


async def test_release_flag_jobs_from_before_issue_10_still_release(
        sessions: Sessions, db_url: str, redis_url: str, redis: Any, arq_redis: ArqRedis, fake_wechat: Any) -> None:
    """A `release_flag` job queued by a bot from before issue 10 (the release lived only in its job): the
    worker records the release and credits the visit once; the boards follow."""
    sts, tls = await city(sessions, stations=3)
    t0 = b.local(2026, 11, 10, 9)
    async with transaction(sessions) as s:
        run = [await f.visit(s, tls[0], st, t0 + timedelta(minutes=5 * i)) for i, st in enumerate(sts)]
    await ready(sessions, redis)
    for v in run:
        await arq_redis.enqueue_job("apply", "visit", v.id, _job_id=f"visit:{v.id}")
    await run_burst(redis_url, make_settings(db_url, redis_url, fake_wechat.base_url))
    async with sessions() as s:
        holds = (await s.scalars(select(Flag).where(Flag.hold.is_(True)).order_by(Flag.id))).all()
    held_entries_before = await count(sessions, Entry, Entry.fact_kind == "visit")
    assert run[2].id in [h.visit_id for h in holds]
    flag = next(h for h in holds if h.visit_id == run[2].id)
    for attempt in range(2):  # twice, under two job ids: the second changes nothing
        await arq_redis.enqueue_job("release_flag", flag.id, "oAdmin", _job_id=f"release_flag:{flag.id}:{attempt}")
        await run_burst(redis_url, make_settings(db_url, redis_url, fake_wechat.base_url))
    async with sessions() as s:
        released = await s.get(Flag, flag.id)
        assert released is not None and released.status == "released" and released.resolved_by == "oAdmin"
    assert await count(sessions, Entry, Entry.fact_kind == "visit") == held_entries_before + 2
    await assert_boards_match(sessions, redis)


async def test_daily_volume_only_marks(lite: Sessions, sqlite_url: str, redis_url: str, redis: Any,
                                       arq_redis: ArqRedis) -> None:
    sessions, db_url = lite, sqlite_url
    async with transaction(sessions) as s:
        st = await f.station(s, "BUSY")
        tls = [await f.talent(s) for _ in range(22)]
        day = b.local(2026, 11, 10, 9)
        vs = [await f.visit(s, t, st, day + timedelta(minutes=i)) for i, t in enumerate(tls)]
    await ready(sessions, redis)
    for v in vs:
        await arq_redis.enqueue_job("apply", "visit", v.id, _job_id=f"visit:{v.id}")
    await run_burst(redis_url, make_settings(db_url, redis_url), max_jobs=1)
    async with sessions() as s:
        flags = (await s.scalars(select(Flag))).all()
    assert [(fl.rule, fl.hold, fl.station_id) for fl in flags] == [("daily_volume", False, st.id)]
    assert {k: flags[0].params[k] for k in ("count", "limit", "floor")} == {"count": 22, "limit": 20, "floor": 20}
    assert "22" in flag_detail(flags[0].rule, flags[0].params) and "20" in flag_detail(flags[0].rule, flags[0].params)
    assert await count(sessions, Entry) == 2 * 22  # marked, not held
    assert fraud.daily_threshold([0] * 15 + [10] * 15, fraud.Thresholds()) == 25


async def test_jobs_queued_under_the_old_task_names_are_applied_by_the_sweeper(
        lite: Sessions, sqlite_url: str, redis_url: str, redis: Any, arq_redis: ArqRedis) -> None:
    """Upgrading from the per-kind tasks (before issue 10): jobs still queued as apply_visit, apply_survey ...
    find no such function and are dropped by arq; their facts are unapplied in SQL, so the sweeper enqueues
    them as `apply` and nothing is lost. An intent a worker left under an old name is read as its kind."""
    sessions, db_url = lite, sqlite_url
    sts, tls = await city(sessions)
    old = NOW - timedelta(minutes=5)
    async with transaction(sessions) as s:
        v = await f.visit(s, tls[0], sts[0], old)
        sv = await b.survey(s, sts[1], 2026, 5)
        sv.created_at = old
        applied_before = await f.visit(s, tls[1], sts[1], old)
        await visit.credit(s, [applied_before.id])  # posted by an old worker that died before the bump
    await ready(sessions, redis)
    await arq_redis.enqueue_job("apply_visit", v.id, _job_id=f"apply_visit:{v.id}")
    await arq_redis.enqueue_job("apply_survey", sv.id, _job_id=f"apply_survey:{sv.id}")
    await live.intend(redis, [f"apply_visit:{applied_before.id}"], now=0)
    await run_burst(redis_url, make_settings(db_url, redis_url))
    assert await count(sessions, Entry) == 2  # the old jobs did nothing
    ctx = {"redis": arq_redis, "sessions": sessions, "settings": make_settings(db_url, redis_url)}
    assert await tasks.sweep(ctx, now=NOW) == {"visit": 2, "survey": 1}
    await run_burst(redis_url, make_settings(db_url, redis_url))
    assert await count(sessions, Entry) == 2 + 2 + 1
    assert await tasks.sweep(ctx, now=NOW) == {}
    await assert_boards_match(sessions, redis)  # the old intent's entries reached the boards too


async def test_a_media_report_before_the_activity_is_paid_after_it(
        lite: Sessions, sqlite_url: str, redis_url: str, redis: Any, arq_redis: ArqRedis) -> None:
    """R2 waits for the activity to take place: the report's own job pays nothing; once the activity has
    ended the sweeper finds the report again and R2 pays it, counted from the activity's end. (The task is
    called directly, under a set clock.)"""
    sessions, db_url = lite, sqlite_url
    sts, _ = await city(sessions)
    start = NOW + timedelta(hours=1)
    async with transaction(sessions) as s:
        act = await b.activity(s, sts[0], starts_at=start, published_at=start - timedelta(hours=2))
        await b.media(s, act, "municipal", at=start - timedelta(minutes=3))
    await ready(sessions, redis)
    ctx = {"redis": arq_redis, "sessions": sessions, "settings": make_settings(db_url, redis_url), "job_try": 1}
    with time_machine.travel(start - timedelta(minutes=2), tick=False):
        assert await tasks.apply(ctx, "media", act.id) == "refused:not_held_yet"
        assert await tasks.sweep(ctx) == {}  # it waits
    assert await count(sessions, Entry) == 0
    after = act.ends_at + timedelta(minutes=2)
    with time_machine.travel(after, tick=False):
        assert await tasks.sweep(ctx) == {"media": 1}
        assert [(j.function, j.args) for j in await arq_redis.queued_jobs()] == [("apply", ("media", act.id))]
        assert await tasks.apply(ctx, "media", act.id) == "applied"
        assert await tasks.sweep(ctx) == {}
    async with sessions() as s:
        paid = (await s.execute(select(Entry.amount, Entry.occurred_at).where(Entry.fact_kind == "media"))).all()
    assert [tuple(p) for p in paid] == [(5, act.ends_at)]
    await assert_boards_match(sessions, redis, now=after)


async def test_sweeper_reenqueues_what_vanished(sessions: Sessions, db_url: str, redis_url: str, redis: Any,
                                                arq_redis: ArqRedis) -> None:
    sts, tls = await city(sessions)
    old = NOW - timedelta(minutes=5)
    async with transaction(sessions) as s:
        v = await f.visit(s, tls[0], sts[0], old)
        fresh = await f.visit(s, tls[1], sts[0], NOW)
        act = await b.activity(s, sts[1], starts_at=old - timedelta(hours=3))
        await b.attend(s, act, tls[0])
        await b.publicity(s, act)
        rep = await b.media(s, act, "county", at=old)
        sv = await b.survey(s, sts[2], 2026, 5)
        g = await b.gift(s, cost=1)
        red = await b.redemption(s, tls[0], g)
        late = await f.visit(s, tls[2], sts[1], old)
        for row in (sv, red):
            row.created_at = old
        s.add(Void(target_kind="visit", target_id=late.id, actor="admin-1", reason="代打卡", created_at=old))
    # the bot enqueued the visit, then the job vanished (a lost job, a Redis that restarted empty)
    job = await arq_redis.enqueue_job("apply", "visit", v.id, _job_id=f"visit:{v.id}")
    assert job is not None
    await redis.flushall()
    ctx = {"redis": arq_redis, "sessions": sessions, "settings": make_settings(db_url, redis_url)}
    counts = await tasks.sweep(ctx, now=NOW)
    assert counts == {"rebuilt": 1, "visit": 2, "media": 1, "survey": 1, "void": 1, "redemption": 1, "activity": 1}
    await run_burst(redis_url, make_settings(db_url, redis_url))
    assert await count(sessions, Visit, Visit.applied_at.is_(None), Visit.id != fresh.id) == 0
    assert await count(sessions, Entry, Entry.fact_kind == "activity") == 1
    assert await count(sessions, MediaReport, MediaReport.applied_at.is_(None), MediaReport.id == rep.id) == 0
    assert await count(sessions, Entry, Entry.fact_kind == "visit", Entry.fact_id == late.id) == 0
    await assert_boards_match(sessions, redis)
    # nothing is left to sweep (the fresh visit is younger than the sweeper's 60 s)
    assert await tasks.sweep(ctx, now=NOW) == {}
    assert await count(sessions, Activity) == 1


async def test_worker_died_between_commit_and_bump(lite: Sessions, sqlite_url: str, redis_url: str, redis: Any,
                                                   arq_redis: ArqRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The intent left behind makes the sweeper re-run the task, which bumps the posted entries."""
    sessions, db_url = lite, sqlite_url
    sts, tls = await city(sessions)
    async with transaction(sessions) as s:
        v = await f.visit(s, tls[0], sts[0], NOW - timedelta(hours=1))
    await ready(sessions, redis)
    ctx = {"redis": arq_redis, "sessions": sessions, "settings": make_settings(db_url, redis_url), "job_try": 1}

    async def killed(*_: Any, **__: Any) -> None:
        raise asyncio.CancelledError  # what a SIGKILL right after the commit looks like from here

    with monkeypatch.context() as m:
        m.setattr(live, "bump", killed)
        with pytest.raises(asyncio.CancelledError):
            await tasks.apply(ctx, "visit", v.id)
    assert await count(sessions, Entry) == 2
    assert await live.stale_intents(redis, float("inf")) == [f"visit:{v.id}"]
    assert (await tasks.sweep(ctx, min_age_s=0)).get("visit") == 1
    await run_burst(redis_url, make_settings(db_url, redis_url))
    assert await redis.zcard(live.INTENTS) == 0
    await assert_boards_match(sessions, redis)


async def test_retry_then_dead_letter(sessions: Sessions, db_url: str, redis_url: str, redis: Any,
                                      arq_redis: ArqRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    sts, tls = await city(sessions)
    async with transaction(sessions) as s:
        bad = await f.visit(s, tls[0], sts[0], NOW - timedelta(hours=2))
        good = await f.visit(s, tls[1], sts[0], NOW - timedelta(hours=2))
        # an entry under the visit's key with other figures: the ledger refuses (LedgerConflict)
        key = f"visit:{visit.credit_key(tls[0].id, sts[0].id, bad.local_day)}#station"
        s.add(Entry(key=key, amount=7, rule="R3@1", fact_kind="visit", fact_id=bad.id, station_id=sts[0].id,
                    occurred_at=bad.scanned_at))
    await ready(sessions, redis)
    ctx = {"redis": arq_redis, "sessions": sessions, "settings": make_settings(db_url, redis_url), "job_try": 1}
    outcome = await tasks.apply(ctx, "visit", bad.id)  # the batch fails, alone it fails: dead letter
    assert outcome.startswith("dead: LedgerConflict")
    assert await count(sessions, Visit, Visit.applied_at.is_(None)) == 2  # the good one waits for its own job
    assert (await tasks.apply(ctx, "visit", good.id)).startswith("settled (batch of 1")  # the dead one stays out
    async with sessions() as s:
        dl = (await s.scalars(select(DeadLetter))).one()
    assert (dl.task, dl.fact_id, dl.attempts, dl.resolved_at) == ("visit", bad.id, 1, None)
    assert await tasks.sweep(ctx, now=NOW) == {}  # a dead letter is for an admin, not for the sweeper

    async def flaky(*_: Any, **__: Any) -> None:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    async with transaction(sessions) as s:
        v = await f.visit(s, tls[2], sts[1], NOW - timedelta(hours=2))
    with monkeypatch.context() as m:
        m.setattr(visit, "apply_batch", flaky)
        with pytest.raises(Retry) as retry:
            await tasks.apply(ctx, "visit", v.id)
        assert retry.value.defer_score == 1000
        with pytest.raises(Retry) as retry:
            await tasks.apply({**ctx, "job_try": 4}, "visit", v.id)
        assert retry.value.defer_score == 8000
        assert (await tasks.apply({**ctx, "job_try": tasks.MAX_TRIES}, "visit", v.id)).startswith("dead: transient")
    assert ("visit", v.id) in await tasks.unapplied(sessions, Params(), cutoff=NOW, now=NOW)
    assert (await tasks.apply({**ctx, "job_try": 2}, "visit", v.id)).startswith("settled")
    async with sessions() as s:
        resolved = (await s.scalars(select(DeadLetter.resolved_at).where(DeadLetter.fact_id == v.id))).one()
    assert resolved is not None
    await assert_boards_match(sessions, redis)


async def test_rank_changes_tell_operators_once_an_hour(lite: Sessions, sqlite_url: str, redis_url: str,
                                                        redis: Any, arq_redis: ArqRedis) -> None:
    from scoring import notify

    sessions, db_url = lite, sqlite_url
    async with transaction(sessions) as s:
        sts = [await f.station(s, f"R{i}") for i in range(6)]
        tls = [await f.talent(s) for _ in range(12)]
        s.add_all([Staff(openid=f"o-op-{i}", role="operator", station_id=st.id) for i, st in enumerate(sts)])
    await ready(sessions, redis)
    now = b.local(2025, 10, 20, 10)  # not the wall clock's month: the tasks' own checks leave it alone
    assert await notify.check_ranks(sessions, redis, now=now) == []  # first look: the baseline

    async def visits(st: Station, n: int, at: datetime) -> None:
        async with transaction(sessions) as s:
            vs = [await f.visit(s, t, st, at + timedelta(minutes=i)) for i, t in enumerate(tls[:n])]
        for v in vs:
            await arq_redis.enqueue_job("apply", "visit", v.id, _job_id=f"visit:{v.id}")

    async def told(at: datetime) -> set[str]:
        async with sessions() as s:
            before = set((await s.scalars(select(Notification.key))).all())
        await notify.check_ranks(sessions, redis, now=at)
        async with sessions() as s:
            return set((await s.scalars(select(Notification.key))).all()) - before

    for i, st in enumerate(sts):
        await visits(st, 6 - i, now - timedelta(days=2, hours=i))  # R0 6 points ... R5 1 point
    await run_burst(redis_url, make_settings(db_url, redis_url))
    assert await told(now) == {f"rank:R{i}:2025-10:2025102010:o-op-{i}" for i in range(3)}
    assert await told(now) == set()
    # R5 jumps from 6th to 1st; R2 drops out of the top 3 but heard from us this hour already
    await visits(sts[5], 12, now - timedelta(days=1))
    await run_burst(redis_url, make_settings(db_url, redis_url))
    assert await told(now + timedelta(minutes=5)) == {"rank:R5:2025-10:2025102010:o-op-5"}
    assert await told(now + timedelta(minutes=6)) == set()
    assert await told(now + timedelta(hours=1)) == {"rank:R2:2025-10:2025102011:o-op-2"}
    # R3 (15) and R4 (14) pass everybody: both enter the top 3, R0 and R1 leave it, R5 stays in it
    # (1st -> 3rd) and R2 moves only 2 places (4th -> 6th): nothing for them
    await visits(sts[4], 12, now - timedelta(hours=20))
    await visits(sts[3], 12, now - timedelta(hours=19))
    await run_burst(redis_url, make_settings(db_url, redis_url))
    assert await told(now + timedelta(hours=2)) == {f"rank:R{i}:2025-10:2025102012:o-op-{i}" for i in (0, 1, 3, 4)}
    async with sessions() as s:
        events = {n.key.split(":")[1]: json.loads(n.payload)["data"]["event"] for n in (await s.scalars(
            select(Notification).where(Notification.key.like("rank:%:2025102012:%")))).all()}
    assert events == {"R3": "enter_top3", "R4": "enter_top3", "R0": "leave_top3", "R1": "leave_top3"}
    await assert_boards_match(sessions, redis, now=now)
