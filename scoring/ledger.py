"""The ledger: entries, posted exactly once. The primitive every rule posts through (scoring/facts/).

Promises (each tested in tests/scoring/test_ledger*.py and test_concurrency_pg.py):
- integer points on two kinds of account, stations and talents; entries are append-only (nothing UPDATEs
  or DELETEs one; an ORM flush that would raises AppendOnly);
- every entry has a UNIQUE idempotency key derived from its fact; posting the same fact again writes
  nothing and reports "already applied"; the same key with another amount or account is an error
  (LedgerConflict);
- all legs of one fact are written in one transaction, inside a SAVEPOINT: a fact applies whole or not
  at all, even when a caller catches LedgerConflict and commits the rest of its work;
- a reversal (rule V) points at the entry it reverses, with actor and reason, and keeps its original's
  fact and `occurred_at`, so it corrects the period the original counted in; a reversal is never
  reversed, and an entry is reversed at most once (key `void:{entry id}`);
- balances are sums of entries; nothing sets one.

What a fact is worth, and when, is each rule's business (scoring/facts/: visit R3, activity R1, media R2,
survey R4, void V, redemption G); this module only writes what they draft.

`post` is also the hot path of the worker's visit batches: one multi-row INSERT .. ON CONFLICT (key) DO
NOTHING RETURNING key for all drafts, with the columns bound as one array each on PostgreSQL (unnest)
and as one executemany ("insertmanyvalues") on SQLite, so hundreds of entries cost a round trip or two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.clock import utcnow
from scoring.db import dialect_name, insert
from scoring.models import Entry
from scoring.rules import RULES


class LedgerConflict(Exception):
    """The same idempotency key was posted with a different amount or account."""


class AppendOnly(RuntimeError):
    """Something tried to change or delete a ledger entry through the ORM."""


@event.listens_for(Entry, "before_update")
@event.listens_for(Entry, "before_delete")
def _refuse_changes(_mapper: Any, _connection: Any, target: Entry) -> None:
    """Entries are append-only: a flush that would UPDATE or DELETE one fails (a void is a new entry)."""
    raise AppendOnly(f"ledger entry {target.key!r} is append-only; post a reversal instead")


@dataclass(frozen=True)
class Draft:
    key: str
    amount: int
    rule: str
    fact_kind: str
    fact_id: int | None
    occurred_at: datetime
    station_id: int | None = None
    talent_id: int | None = None
    reverses_id: int | None = None
    actor: str | None = None
    reason: str | None = None

    @property
    def figures(self) -> tuple[int, int | None, int | None]:
        """What must agree when a key is posted again: amount and account."""
        return self.amount, self.station_id, self.talent_id


@dataclass(frozen=True)
class Posted:
    """What a post wrote: the keys of the new entries (none: every draft was posted before)."""

    written: list[str] = field(default_factory=list)

    @property
    def already(self) -> bool:
        return not self.written


_COLUMNS = ("key", "amount", "rule", "fact_kind", "fact_id", "occurred_at", "recorded_at", "station_id",
            "talent_id", "reverses_id", "actor", "reason")


async def post(session: AsyncSession, drafts: Iterable[Draft]) -> Posted:
    """Write the drafts whose keys do not exist yet, in the caller's transaction, inside a SAVEPOINT.

    Drafts sharing a key are one entry (the first one's fact is recorded); sharing it with other figures,
    here or with an entry written before, raises LedgerConflict and leaves none of the drafts written, even
    if the caller catches the error and commits the rest of its transaction."""
    unique: dict[str, Draft] = {}
    for d in drafts:
        first = unique.setdefault(d.key, d)
        if first.figures != d.figures:
            raise LedgerConflict(f"entry {d.key!r} drafted twice with other figures")
    if not unique:
        return Posted()
    recorded_at = utcnow()  # one recording time for all legs of a fact (and for a whole batch)
    rows = [{"key": d.key, "amount": d.amount, "rule": d.rule, "fact_kind": d.fact_kind, "fact_id": d.fact_id,
             "occurred_at": d.occurred_at, "recorded_at": recorded_at, "station_id": d.station_id,
             "talent_id": d.talent_id, "reverses_id": d.reverses_id, "actor": d.actor, "reason": d.reason}
            for d in unique.values()]
    table = cast(Table, Entry.__table__)
    params: list[dict[str, Any]] | None
    if dialect_name(session) == "postgresql":  # INSERT .. SELECT * FROM unnest(one array per column)
        cols = [table.c[name] for name in _COLUMNS]
        source = func.unnest(*(
            bindparam(None, [r[c.name] for r in rows], type_=postgresql.ARRAY(c.type)) for c in cols
        )).table_valued(*_COLUMNS).render_derived()
        stmt = (insert(session, table).from_select(cols, select(*(source.c[name] for name in _COLUMNS)))
                .on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key))
        params = None
    else:  # executemany, which SQLAlchemy sends as multi-row VALUES pages ("insertmanyvalues")
        stmt = insert(session, table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)
        params = rows
    async with session.begin_nested():
        written = list((await session.execute(stmt, params)).scalars().all())
        if len(written) < len(unique):
            new = set(written)
            missing = [d for key, d in unique.items() if key not in new]
            existing = {key: (amount, sid, tid) for key, amount, sid, tid in (await session.execute(
                select(Entry.key, Entry.amount, Entry.station_id, Entry.talent_id)
                .where(Entry.key.in_([d.key for d in missing])))).all()}
            for d in missing:
                if existing.get(d.key) != d.figures:
                    raise LedgerConflict(f"entry {d.key!r} exists with other figures")
    return Posted(written)


async def entries_of(session: AsyncSession, fact_kind: str, fact_ids: Sequence[int]) -> list[Entry]:
    """Every entry of these facts, originals and reversals, in the order they were written."""
    if not fact_ids:
        return []
    return list((await session.scalars(select(Entry).where(
        Entry.fact_kind == fact_kind, Entry.fact_id.in_(list(fact_ids))).order_by(Entry.id))).all())


async def originals(session: AsyncSession, fact_kind: str, fact_ids: Sequence[int]) -> list[int]:
    """Ids of the original (non-reversal) entries these facts produced."""
    if not fact_ids:
        return []
    return list((await session.scalars(select(Entry.id).where(
        Entry.fact_kind == fact_kind, Entry.fact_id.in_(list(fact_ids)), Entry.reverses_id.is_(None))
        .order_by(Entry.id))).all())


# -- reversals (rule V's primitive) -------------------------------------------------------------------
def reversal_key(entry_id: int) -> str:
    return f"void:{entry_id}"


async def reverse(session: AsyncSession, entry_ids: Sequence[int], *, actor: str, reason: str) -> Posted:
    """A reversal entry for each of these entries that is not itself a reversal and not reversed yet."""
    found = (await session.scalars(select(Entry).where(
        Entry.id.in_(list(entry_ids)), Entry.reverses_id.is_(None)).order_by(Entry.id))).all()
    v = RULES["V"]
    return await post(session, [Draft(
        key=reversal_key(e.id), amount=-e.amount, rule=v.tag, fact_kind=e.fact_kind, fact_id=e.fact_id,
        occurred_at=e.occurred_at, station_id=e.station_id, talent_id=e.talent_id, reverses_id=e.id,
        actor=actor, reason=reason) for e in found])


async def reversals_of(session: AsyncSession, entry_ids: Sequence[int]) -> list[Entry]:
    """The reversal entries of these entries (written now or before)."""
    if not entry_ids:
        return []
    return list((await session.scalars(select(Entry).where(
        Entry.reverses_id.in_(list(entry_ids))).order_by(Entry.id))).all())


# -- balances ---------------------------------------------------------------------------------------
async def talent_balance(session: AsyncSession, talent_id: int) -> int:
    """Points earned minus points spent and points taken back: may be below zero after a void (see
    scoring/facts/void.py)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Entry.amount), 0)).where(Entry.talent_id == talent_id))
    return int(total or 0)

