"""The outbox: the domain decides what to tell whom by adding rows; the worker delivers them.

`add` is idempotent on the notification's deterministic key (for example `rank:{station}:{yyyy-mm}:{event}`):
adding the same key again changes nothing, so a retried task never sends twice.

Late replies (issue 13): a reply the bot could not give within WeChat's time budget is queued here as a
`custom` row under `reply_key(...)`, one key per inbound message, so that a WeChat retry, a second bot
process or a restart cannot queue it twice. Its payload names a `fallback` template kind (`reply`): when
WeChat answers that the 48-hour customer-service window is closed, the worker sends it as a template notice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from scoring.clock import utcnow
from scoring.db import insert
from scoring.models import Notification

DELIVER: Final = "deliver_notification"  # the worker's delivery task (worker/push.py)
REPLY_TEMPLATE: Final = "reply"  # the template kind a late reply falls back to outside the 48-hour window


def delivery_job_id(notification_id: int) -> str:
    """The job id of the first delivery of a freshly committed row (the sweeper's carry the attempt)."""
    return f"notify:{notification_id}"


def reply_key(message_key: str) -> str:
    """The outbox key of the late reply to one inbound message (`message_key`: the bot's de-duplication key
    of that message, the same for every delivery and retry of it)."""
    return "reply:" + message_key.removeprefix("th:dd:")


def reply_payload(text: str) -> dict[str, Any]:
    """A late reply: the text as a customer-service message, a template notice when the window is closed."""
    return {"text": text, "fallback": REPLY_TEMPLATE}


async def queue(
    session: AsyncSession, key: str, openid: str, payload: dict[str, Any], *, channel: str = "template"
) -> int | None:
    """Queue one message; its id when it is new, None when the key was queued already."""
    now = utcnow()
    stmt = insert(session, Notification).values(
        key=key, openid=openid, channel=channel, created_at=now, next_attempt_at=now,
        payload=json.dumps(payload, ensure_ascii=False), status="pending", attempts=0,
    ).on_conflict_do_nothing(index_elements=["key"]).returning(Notification.id)
    row = (await session.execute(stmt)).first()
    return None if row is None else int(row[0])


async def add(
    session: AsyncSession, key: str, openid: str, payload: dict[str, Any], *, channel: str = "template"
) -> bool:
    """Queue one message; True when it is new. `payload` holds at least {"text": ...} (the Chinese
    message); template messages also carry {"template": name, "data": {...}}. A `custom` row (a
    customer-service text) with {"fallback": name} goes as that kind's template notice (or the general one)
    when WeChat answers that the 48-hour window is closed (45015/45047)."""
    return await queue(session, key, openid, payload, channel=channel) is not None


ADD_CHUNK = 500  # rows per INSERT (9 parameters each: well under SQLite's limit)


async def add_many(session: AsyncSession, messages: Sequence[tuple[str, str, dict[str, Any]]], *,
                   channel: str = "template") -> dict[str, int]:
    """`add` for many (key, openid, payload) at once: one multi-row INSERT .. ON CONFLICT DO NOTHING per
    ADD_CHUNK rows. Returns {key: id} of the rows that are new (a key seen before is left out)."""
    now = utcnow()
    added: dict[str, int] = {}
    for i in range(0, len(messages), ADD_CHUNK):
        rows = [{"key": key, "openid": openid, "channel": channel, "created_at": now, "next_attempt_at": now,
                 "payload": json.dumps(payload, ensure_ascii=False), "status": "pending", "attempts": 0}
                for key, openid, payload in messages[i:i + ADD_CHUNK]]
        stmt = insert(session, Notification).values(rows).on_conflict_do_nothing(index_elements=["key"]) \
            .returning(Notification.id, Notification.key)
        added.update({key: nid for nid, key in (await session.execute(stmt)).all()})
    return added
