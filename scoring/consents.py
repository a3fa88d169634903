"""Subscription-notification consent (订阅通知): which followers accepted which templates.

- WeChat tells the account in events: `subscribe_msg_popup_event` (the follower answered the pop-up),
  `subscribe_msg_change_event` (changed it later in the settings) and `subscribe_msg_sent_event` (a send's
  result; errcode 43101 means the follower no longer accepts). The bot reduces each to (template, status)
  pairs and calls `record` with the event's time.
- One row per (openid, template): the latest answer wins by event time, so a late retry of an older event
  never undoes a newer answer; the same event twice changes nothing.
- `accepted` is what the outbox asks before choosing `message/subscribe/bizsend` (worker/push.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.db import insert
from scoring.models import SubscribeConsent

MAX_TEMPLATE_ID: Final = 128


class Consent(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


def status_of(text: object) -> Consent | None:
    """WeChat's SubscribeStatusString: accept, reject (ban, a follower who turned all of them off, counts as
    reject); anything else is ignored."""
    value = str(text or "").strip().lower()
    if value == "accept":
        return Consent.ACCEPT
    if value in ("reject", "ban"):
        return Consent.REJECT
    return None


async def record(session: AsyncSession, openid: str, answers: Iterable[tuple[str, Consent]], at: datetime
                 ) -> int:
    """Store answers (template id, status) given at `at` (naive UTC), in the caller's transaction; an
    answer older than the stored one is ignored. Returns how many rows changed."""
    changed = 0
    for template_id, status in answers:
        if not openid or not template_id or len(template_id) > MAX_TEMPLATE_ID:
            continue
        t = SubscribeConsent.__table__
        stmt = insert(session, SubscribeConsent).values(
            openid=openid, template_id=template_id, status=str(status), changed_at=at)
        stmt = stmt.on_conflict_do_update(
            index_elements=["openid", "template_id"],
            set_={"status": stmt.excluded.status, "changed_at": stmt.excluded.changed_at},
            where=t.c.changed_at <= stmt.excluded.changed_at)
        result = await session.execute(stmt)
        changed += int(getattr(result, "rowcount", 0) or 0)
    return changed


async def accepted(session: AsyncSession, openid: str, template_ids: Iterable[str]) -> set[str]:
    """The templates among `template_ids` this follower accepts now."""
    wanted = [t for t in template_ids if t]
    if not openid or not wanted:
        return set()
    rows = await session.scalars(select(SubscribeConsent.template_id).where(
        SubscribeConsent.openid == openid, SubscribeConsent.template_id.in_(wanted),
        SubscribeConsent.status == Consent.ACCEPT))
    return set(rows.all())
