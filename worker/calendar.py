"""Cron jobs of the policy's calendar (scoring.calendar, scoring.rating), in Asia/Shanghai.

The worker runs arq with `timezone=Asia/Shanghai` (worker/settings.py), so the hours below are local.
Each cron job is a thin wrapper over a plain function that takes `now` (naive UTC), which the tests call
directly; each is safe to run twice and on two workers at once (arq's unique cron job ids, the outbox's
deterministic keys, MonthClose's primary key, the activities' work markers).

- month close: every hour at minute 0; it closes the previous month when that is not closed yet, so the
  run at 00:00 on day 1 closes it, and a worker that was down at midnight catches up within the hour.
- rating preview: daily at 01:00 for the previous year, from 1 January on, until the year is confirmed;
  it is computed as soon as every extended window has closed, recomputed daily while unconfirmed, and the
  admins are told once (per revision).
- plan reminders: day 25 at 09:00 (not at midnight: people read them).
- activity reminders and satisfaction invitations: every minute.
- station digests: every hour at minute 0, each station's operators get one message summing up the entries
  (R1, R2, R4, voids) the station got or lost before the hour (scoring.notify.send_digests; the outbox key
  per station, hour and operator and the lines marked sent make a second run send nothing).
- services: every minute, booking reminders (BOOKING_REMINDER_MINUTES ahead), bookings settled as kept or
  no-show an hour after their slot, consultations escalated (CONSULTATION_ESCALATE_HOURS working hours).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from arq import cron
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import bookings, calendar, consultations, notify, rating
from scoring.bookings import Settled
from scoring.calendar import CloseRefused, MonthClosed, Sent
from scoring.clock import utcnow
from scoring.consultations import Escalated
from scoring.db import transaction
from scoring.periods import month_key, previous_month, year_of
from scoring.settings import Settings

log = logging.getLogger(__name__)
Sessions = async_sessionmaker[AsyncSession]


async def close_previous_month(sessions: Sessions, now: datetime) -> MonthClosed | CloseRefused | None:
    """Close the month before `now`'s local month; None when it was closed already."""
    key = previous_month(month_key(now))
    async with sessions() as s:
        if await calendar.is_closed(s, key):
            return None
    async with transaction(sessions) as s:
        result = await calendar.month_close(s, key, now)
    if isinstance(result, MonthClosed) and not result.already:
        log.info("month %s closed: featured station %s in %s, %d reports queued", key,
                 result.featured_station_id, result.featured_month, result.notified)
    return result


async def preview_last_year(
    sessions: Sessions, settings: Settings, now: datetime
) -> rating.Outcome | rating.RatingRefused | None:
    """Preview the previous year once its extended windows have closed; None when it is confirmed."""
    year = year_of(now) - 1
    async with sessions() as s:
        stored = await rating.load(s, year)
    if stored is not None and stored.status == "confirmed":
        return None
    async with transaction(sessions) as s:
        result = await rating.preview(s, year, settings, now=now)
        if isinstance(result, rating.Outcome):
            await rating.tell_admins_preview(s, result, settings.admin_openid_set)
    if isinstance(result, rating.RatingRefused):
        log.info("rating %s not previewed: %s", year, result.detail)
    return result


async def remind_plans(sessions: Sessions, now: datetime) -> int:
    async with transaction(sessions) as s:
        return await calendar.plan_reminders(s, now)


async def remind_activities(sessions: Sessions, now: datetime) -> Sent:
    async with transaction(sessions) as s:
        return await calendar.activity_reminders(s, now)


async def invite_attendees(sessions: Sessions, redis: Any, now: datetime) -> Sent:
    async with transaction(sessions) as s:
        return await calendar.satisfaction_invitations(s, now, redis)


async def send_digests(sessions: Sessions, now: datetime) -> int:
    """The stations' hourly digests; returns how many messages were queued."""
    async with transaction(sessions) as s:
        keys = await notify.send_digests(s, now)
    if keys:
        log.info("station digests: %d messages", len(keys))
    return len(keys)


# -- arq cron wrappers ---------------------------------------------------------------------------------------
async def cron_month_close(ctx: dict[str, Any]) -> None:
    await close_previous_month(ctx["sessions"], utcnow())


async def cron_rating_preview(ctx: dict[str, Any]) -> None:
    await preview_last_year(ctx["sessions"], ctx["settings"], utcnow())


async def cron_plan_reminders(ctx: dict[str, Any]) -> None:
    await remind_plans(ctx["sessions"], utcnow())


async def cron_digests(ctx: dict[str, Any]) -> None:
    await send_digests(ctx["sessions"], utcnow())


async def cron_activity_reminders(ctx: dict[str, Any]) -> None:
    await remind_activities(ctx["sessions"], utcnow())


async def cron_invitations(ctx: dict[str, Any]) -> None:
    await invite_attendees(ctx["sessions"], ctx["redis"], utcnow())


# -- services (issue 12): booking reminders, kept/no-show settling, consultation escalation -----------------
async def services_tick(sessions: Sessions, settings: Settings, now: datetime) -> tuple[int, Settled, Escalated]:
    """One pass: remind talents of their bookings, settle bookings whose slot passed, escalate questions
    nobody took. Each its own transaction; safe to repeat (work markers and outbox keys)."""
    async with transaction(sessions) as s:
        reminded = await bookings.remind(s, now, timedelta(minutes=settings.booking_reminder_minutes))
    async with transaction(sessions) as s:
        settled = await bookings.settle(s, now)
    async with transaction(sessions) as s:
        escalated = await consultations.escalate(s, now, hours=settings.consultation_escalate_hours,
                                                 admin_openids=settings.admin_openid_set)
    if reminded or settled.kept or settled.no_show or escalated.staff or escalated.admins:
        log.info("services: %d reminders, %s, %s", reminded, settled, escalated)
    return reminded, settled, escalated


async def cron_services(ctx: dict[str, Any]) -> None:
    await services_tick(ctx["sessions"], ctx["settings"], utcnow())


FUNCTIONS: list[Any] = []
# Timeouts fit the work, measured on 10,000 stations with an operator each and 300,000 entries (SQLite, two
# cores under load 14, so wall is about 5 x CPU; ARCHITECTURE.md, "Worker timeouts"): month close 10.1 s CPU /
# 54.5 s wall (snapshot, featured station, 10,000 reports), plan reminders 8.9 / 41.6 s (10,000 rows), rating
# preview 2.1 / 9.3 s; the digests write at most one row per operator, like the reminders. Each is one
# transaction and safe to run again, so a run cut off by its timeout or a killed worker is redone: by the next
# run, or (the once-a-month plan reminders) by another worker that takes the same job over when its lease
# runs out (worker/settings.py: IN_PROGRESS_LEASE_S, not these timeouts, bounds that wait). The every-minute
# jobs stay under their minute.
CRON = [
    cron(cron_month_close, name="calendar:month_close", minute=0, timeout=300),
    cron(cron_rating_preview, name="calendar:rating_preview", hour=1, minute=0, timeout=120),
    cron(cron_plan_reminders, name="calendar:plan_reminders", day=25, hour=9, minute=0, timeout=240),
    cron(cron_digests, name="calendar:digests", minute=0, timeout=240),
    cron(cron_activity_reminders, name="calendar:activity_reminders", timeout=55),
    cron(cron_invitations, name="calendar:invitations", timeout=55),
    cron(cron_services, name="calendar:services", timeout=55),
]
