"""Dead letters: facts the worker could not apply, for an admin to look at (`失败任务`, `重试`).

A dead letter names the fact (`task` holds its kind: visit, activity, media, survey, void, redemption) and
why it failed. One row per fact (UNIQUE kind + fact id): failing again counts `attempts` up and reopens it;
a later success resolves it. A non-transient dead letter keeps its fact away from the sweeper and from
visit batches (`blocks`) until an admin resolves it; a transient one ("transient, N tries: ...") does not.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, update
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.clock import utcnow
from scoring.db import insert
from scoring.models import DeadLetter

TRANSIENT = "transient"


def blocks(kind: str, fact_id: Any) -> Any:
    """SQL: an unresolved, non-transient dead letter of this fact (`fact_id` is usually a column)."""
    return exists().where(DeadLetter.task == kind, DeadLetter.fact_id == fact_id,
                          DeadLetter.resolved_at.is_(None), ~DeadLetter.reason.startswith(TRANSIENT))


async def record(session: AsyncSession, kind: str, fact_id: int, reason: str) -> None:
    """Record (or count again) a fact that could not be applied."""
    stmt = insert(session, DeadLetter).values(task=kind, fact_id=fact_id, reason=reason, attempts=1,
                                              created_at=utcnow())
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["task", "fact_id"],
        set_={"reason": stmt.excluded.reason, "attempts": DeadLetter.attempts + 1, "resolved_at": None}))


async def resolve(session: AsyncSession, kind: str, fact_id: int) -> None:
    await session.execute(update(DeadLetter).where(
        DeadLetter.task == kind, DeadLetter.fact_id == fact_id, DeadLetter.resolved_at.is_(None)
    ).values(resolved_at=utcnow()))
