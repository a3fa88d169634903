"""The calendar's cron jobs (worker/calendar.py) driven with an injected `now`, on both databases and a real
Redis; each run twice to show it is idempotent."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import invitations, periods
from scoring.calendar import MonthClosed
from scoring.clock import utcnow
from scoring.db import transaction
from scoring.models import Activity, Attendance, Entry, Extension, MonthClose, Notification, Signup, Staff, Station
from scoring.rating import Outcome, RatingRefusal, RatingRefused
from scoring.settings import Settings
from tests import factories as f
from worker import calendar as cal
from worker.settings import WorkerSettings


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return periods.to_utc_naive(datetime(y, mo, d, h, mi))


async def notes(sessions, prefix: str) -> list[Notification]:
    async with sessions() as s:
        return list((await s.scalars(select(Notification).where(Notification.key.startswith(prefix))
                                     .order_by(Notification.key))).all())


async def activity(s: AsyncSession, st: Station, starts_at: datetime, *, title: str = "创业沙龙",
                   status: str = "published", hours: int = 2) -> Activity:
    act = Activity(station_id=st.id, title=title, starts_at=starts_at, ends_at=starts_at + timedelta(hours=hours),
                   published_at=starts_at - timedelta(days=3), status=status)
    s.add(act)
    await s.flush()
    return act


async def test_activity_reminders_one_hour_before(sessions):
    starts = local(2026, 11, 20, 14, 0)
    async with transaction(sessions) as s:
        st = await f.station(s)
        act = await activity(s, st, starts)
        voided = await activity(s, st, starts, status="voided")
        going, cancelled, unbound = (await f.talent(s, openid="o-going"), await f.talent(s, openid="o-cancel"),
                                     await f.talent(s))
        for t in (going, cancelled, unbound):
            s.add(Signup(activity_id=act.id, talent_id=t.id))
            s.add(Signup(activity_id=voided.id, talent_id=t.id))
        await s.flush()
        (await s.scalars(select(Signup).where(Signup.talent_id == cancelled.id, Signup.activity_id == act.id))
         ).one().cancelled_at = starts

    too_early = await cal.remind_activities(sessions, starts - timedelta(minutes=61))
    assert (too_early.activities, too_early.queued) == (0, 0)
    first = await cal.remind_activities(sessions, starts - timedelta(hours=1))
    again = await cal.remind_activities(sessions, starts - timedelta(minutes=59))
    assert (first.activities, first.queued) == (1, 1) and (again.activities, again.queued) == (1, 0)
    sent = await notes(sessions, "remind:")
    assert [(n.key, n.openid) for n in sent] == [(f"remind:{act.id}:{going.id}", "o-going")]
    assert "创业沙龙" in json.loads(sent[0].payload)["text"] and "11月20日 14:00" in json.loads(sent[0].payload)["text"]

    async with transaction(sessions) as s:  # a late sign-up is still reminded; the first run stays marked
        late = await f.talent(s, openid="o-late")
        s.add(Signup(activity_id=act.id, talent_id=late.id))
    late_run = await cal.remind_activities(sessions, starts - timedelta(minutes=30))
    after_start = await cal.remind_activities(sessions, starts)
    assert late_run.queued == 1 and after_start.activities == 0
    assert [n.openid for n in await notes(sessions, "remind:")] == ["o-going", "o-late"]
    async with sessions() as s:
        marked = await s.get(Activity, act.id)
        assert marked is not None and marked.reminded_at == starts - timedelta(hours=1)


async def test_a_backlog_of_invitations_goes_in_steps(sessions, redis, monkeypatch):
    """After a long outage: activities whose answer window closed are only marked (one statement), the others
    are invited INVITE_BATCH at a time, each run taking the next step; every attendee invited once."""
    monkeypatch.setattr(cal.calendar, "INVITE_BATCH", 3)
    starts = (utcnow() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    ends = starts + timedelta(hours=2)
    async with transaction(sessions) as s:
        st = await f.station(s)
        came = await f.talent(s, openid="o-came")
        open_ = [await activity(s, st, starts - timedelta(minutes=i)) for i in range(5)]
        closed = [await activity(s, st, starts - timedelta(days=3 + i)) for i in range(4)]
        s.add_all([Attendance(activity_id=a.id, talent_id=came.id) for a in open_ + closed])

    first = await cal.invite_attendees(sessions, redis, ends)
    second = await cal.invite_attendees(sessions, redis, ends + timedelta(minutes=1))
    third = await cal.invite_attendees(sessions, redis, ends + timedelta(minutes=2))
    assert (first.activities, first.queued) == (4 + 3, 3)  # the closed ones marked, one step of the others
    assert (second.activities, second.queued) == (2, 2) and (third.activities, third.queued) == (0, 0)
    sent = await notes(sessions, "invite:")
    assert sorted(n.key for n in sent) == sorted(f"invite:{a.id}:{came.id}" for a in open_)
    async with sessions() as s:
        assert [(await s.get(Activity, a.id)).invited_at for a in closed] == [ends] * len(closed)

async def test_satisfaction_invitations_at_the_end(sessions, redis):
    # Redis expires the pending invitations at their deadline by the wall clock: these times are ahead of it.
    starts = (utcnow() + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    ends = starts + timedelta(hours=2)
    async with transaction(sessions) as s:
        st = await f.station(s)
        act = await activity(s, st, starts)
        old = await activity(s, st, starts - timedelta(days=3), title="旧活动")  # ended more than 48 h ago
        came, unbound = await f.talent(s, openid="o-came"), await f.talent(s)
        signed_only = await f.talent(s, openid="o-signed")
        s.add_all([Attendance(activity_id=act.id, talent_id=came.id),
                   Attendance(activity_id=act.id, talent_id=unbound.id),
                   Attendance(activity_id=old.id, talent_id=came.id),
                   Signup(activity_id=act.id, talent_id=signed_only.id)])

    before = await cal.invite_attendees(sessions, redis, ends - timedelta(minutes=1))
    assert before.activities == 1 and before.queued == 0  # only the old one: marked, nobody invited
    first = await cal.invite_attendees(sessions, redis, ends)
    again = await cal.invite_attendees(sessions, redis, ends + timedelta(minutes=1))
    assert (first.activities, first.queued) == (1, 1) and (again.activities, again.queued) == (0, 0)
    sent = await notes(sessions, "invite:")
    assert [(n.key, n.openid, n.channel) for n in sent] == [(f"invite:{act.id}:{came.id}", "o-came", "custom")]
    text = json.loads(sent[0].payload)["text"]
    deadline = periods.to_local(ends + timedelta(hours=48))
    assert "回复数字1–5" in text and f"{deadline.month}月{deadline.day}日 {deadline:%H:%M}" in text
    now_s = cal.calendar.unix(ends)
    assert await invitations.pending(redis, "o-came", now_s) == [act.id]
    assert await invitations.pending(redis, "o-came", cal.calendar.unix(ends + timedelta(hours=48))) == []
    async with sessions() as s:
        assert (await s.get(Activity, act.id)).invited_at == ends
        assert (await s.get(Activity, old.id)).invited_at == ends - timedelta(minutes=1)


async def test_plan_reminders_on_day_25(sessions):
    async with transaction(sessions) as s:
        planned, idle, voided_only = await f.station(s, "PL1"), await f.station(s, "PL2"), await f.station(s, "PL3")
        gone = await f.station(s, "PL4", status="delisted")
        await activity(s, planned, local(2026, 12, 31, 20, 0))
        await activity(s, voided_only, local(2026, 12, 5, 10, 0), status="voided")
        await activity(s, idle, local(2027, 1, 1, 10, 0))  # January is not December
        for st, openid in ((planned, "op-1"), (idle, "op-2"), (idle, "op-2b"), (voided_only, "op-3"),
                           (gone, "op-4")):
            s.add(Staff(openid=openid, role="operator", station_id=st.id))
    now = local(2026, 11, 25, 9, 0)
    assert await cal.remind_plans(sessions, now) == 3
    assert await cal.remind_plans(sessions, now + timedelta(hours=1)) == 0
    sent = await notes(sessions, "plan:")
    assert sorted((n.key, n.openid) for n in sent) == sorted([
        (f"plan:{idle.id}:2026-12:op-2", "op-2"), (f"plan:{idle.id}:2026-12:op-2b", "op-2b"),
        (f"plan:{voided_only.id}:2026-12:op-3", "op-3")])
    assert "2026年12月" in json.loads(sent[0].payload)["text"]


async def test_month_close_job_closes_the_previous_month_once(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "MC1")
        s.add(Staff(openid="op-mc", role="operator", station_id=st.id))
        s.add(Entry(key="t:1", station_id=st.id, amount=3, rule="R3@1", fact_kind="test",
                    occurred_at=local(2026, 11, 30, 23, 0)))
    midnight = local(2026, 12, 1)
    first = await cal.close_previous_month(sessions, midnight)
    second = await cal.close_previous_month(sessions, midnight + timedelta(hours=1))
    assert isinstance(first, MonthClosed) and first.period == "2026-11" and first.featured_station_id == st.id
    assert second is None
    assert len(await notes(sessions, "monthclose:")) == 1
    # The last minute of November (local) still belongs to November: December is not closed.
    assert await cal.close_previous_month(sessions, local(2026, 11, 30, 23, 59)) is not None  # closes October
    async with sessions() as s:
        assert await s.get(MonthClose, "2026-12") is None and await s.get(MonthClose, "2026-10") is not None


async def test_rating_preview_job_waits_for_extensions_and_tells_admins_once(sessions):
    cfg = Settings(_env_file=None, admin_openids="env-admin")  # type: ignore[call-arg]
    async with transaction(sessions) as s:
        stations = [await f.station(s, f"R{i:02d}", certified_on=date(2020, 1, 1)) for i in range(10)]
        s.add(Extension(station_id=stations[0].id, year=2026, days=5))
        s.add(Staff(openid="staff-admin", role="admin"))
    waiting = await cal.preview_last_year(sessions, cfg, local(2027, 1, 3, 1, 0))
    assert isinstance(waiting, RatingRefused) and waiting.reason is RatingRefusal.WINDOW_OPEN
    assert await notes(sessions, "rating-preview:") == []
    ready = await cal.preview_last_year(sessions, cfg, local(2027, 1, 6, 1, 0))
    again = await cal.preview_last_year(sessions, cfg, local(2027, 1, 7, 1, 0))
    assert isinstance(ready, Outcome) and isinstance(again, Outcome) and again.status == "preview"
    told = await notes(sessions, "rating-preview:")
    assert sorted(n.openid for n in told) == ["env-admin", "staff-admin"]
    assert "talenthome rate 2026 --confirm" in json.loads(told[0].payload)["text"]
    async with transaction(sessions) as s:
        from scoring import rating

        assert isinstance(await rating.confirm(s, 2026, "admin"), Outcome)
    assert await cal.preview_last_year(sessions, cfg, local(2027, 1, 8, 1, 0)) is None


async def test_cron_schedule_and_wrappers(sessions, redis, redis_url):
    assert str(WorkerSettings.timezone) == "Asia/Shanghai"
    jobs = {c.name: c for c in cal.CRON}
    assert set(jobs) <= {c.name for c in WorkerSettings.cron_jobs}
    month = jobs["calendar:month_close"]
    assert (month.minute, month.hour, month.day) == (0, None, None)
    assert (jobs["calendar:plan_reminders"].day, jobs["calendar:plan_reminders"].hour) == (25, 9)
    assert jobs["calendar:rating_preview"].hour == 1
    ctx = {"sessions": sessions, "redis": redis, "settings": Settings(_env_file=None)}  # type: ignore[call-arg]
    for wrapper in (cal.cron_activity_reminders, cal.cron_invitations, cal.cron_plan_reminders):
        await wrapper(ctx)
