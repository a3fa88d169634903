"""The outbox: the domain decides what to tell whom by adding rows; the worker delivers them.

`add` is idempotent on the notification's deterministic key (for example `rank:{station}:{yyyy-mm}:{event}`):
adding the same key again changes nothing, so a retried task never sends twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from scoring.clock import utcnow
from scoring.db import insert
from scoring.models import Notification


async def add(
    session: AsyncSession, key: str, openid: str, payload: dict[str, Any], *, channel: str = "template"
) -> bool:
    """Queue one message; True when it is new. `payload` holds at least {"text": ...} (the Chinese
    message); template messages also carry {"template": name, "data": {...}}."""
    now = utcnow()
    stmt = insert(session, Notification).values(
        key=key, openid=openid, channel=channel, created_at=now, next_attempt_at=now,
        payload=json.dumps(payload, ensure_ascii=False), status="pending", attempts=0,
    ).on_conflict_do_nothing(index_elements=["key"]).returning(Notification.id)
    return (await session.execute(stmt)).first() is not None


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
