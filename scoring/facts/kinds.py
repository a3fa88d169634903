"""The kinds of fact, written out: what the worker applies and its sweeper asks (scoring/facts/__init__.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from scoring.facts import activity, attendance, media, redemption, survey, visit, void
from scoring.facts.common import DEFAULT, Applied, Params, Refused


class Fact(Protocol):
    @property
    def KIND(self) -> str: ...

    async def apply(self, session: AsyncSession, fact_id: int, params: Params = DEFAULT, *,
                    now: datetime | None = None) -> Applied | Refused: ...

    async def unapplied(self, session: AsyncSession, *, cutoff: datetime, now: datetime,
                        params: Params = DEFAULT, limit: int = 5000) -> list[int]: ...


MODULES: Final[tuple[Fact, ...]] = (visit, attendance, activity, media, survey, void, redemption)
BY_KIND: Final[dict[str, Fact]] = {m.KIND: m for m in MODULES}

