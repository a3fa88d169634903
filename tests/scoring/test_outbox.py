"""scoring.outbox.add_many: many messages in one multi-row INSERT per chunk; a key already there is left as
it was and left out of the answer, as `add` does one by one."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import outbox
from scoring.db import transaction
from scoring.models import Notification


async def test_add_many_adds_the_new_keys_once(sessions: async_sessionmaker[AsyncSession], monkeypatch: object
                                               ) -> None:
    monkeypatch.setattr(outbox, "ADD_CHUNK", 2)  # type: ignore[attr-defined]
    async with transaction(sessions) as s:
        assert await outbox.add(s, "k1", "o1", {"text": "first"})
    messages = [(f"k{i}", f"o{i}", {"text": f"t{i}", "template": "rank", "data": {"n": i}}) for i in range(1, 6)]
    async with transaction(sessions) as s:
        added = await outbox.add_many(s, messages)
    assert sorted(added) == ["k2", "k3", "k4", "k5"]
    async with sessions() as s:
        rows = {n.key: n for n in (await s.scalars(select(Notification))).all()}
    assert sorted(rows) == ["k1", "k2", "k3", "k4", "k5"]
    assert {k: rows[k].id for k in added} == added
    assert json.loads(rows["k1"].payload) == {"text": "first"}  # not overwritten
    assert json.loads(rows["k4"].payload)["data"] == {"n": 4}
    assert (rows["k3"].openid, rows["k3"].status, rows["k3"].attempts, rows["k3"].channel) == \
        ("o3", "pending", 0, "template")
    async with transaction(sessions) as s:
        assert await outbox.add_many(s, messages) == {}
        assert await outbox.add_many(s, []) == {}
