"""Who may do what, and the audit trail of what staff did.

- `access_of` answers who an openid is to the platform: everyone is a talent; an active `Staff` row adds
  its role (an operator with their station); an openid in `ADMIN_OPENIDS` is an admin from the first start;
  the shell (`talenthome admin`, actor `cli:<user>`) acts as an admin.
- `audit` writes one `AuditLog` row per staff command, in the caller's transaction: the transport that
  knows who acted (the bot's router, the CLI) calls it exactly once per command; domain functions do not
  write audit rows themselves (so a command is never audited twice).
- Actions and refusals are kept apart (`AuditLog.kind`): `audit_view` lists the latest actions and counts
  the refusals beside them, so any follower typing staff words cannot push real actions out of `审计`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring.clock import utcnow
from scoring.models import AuditLog, Staff

MAX_AUDIT_TEXT: Final = 2000


class Role(StrEnum):
    TALENT = "talent"
    OPERATOR = "operator"
    ADMIN = "admin"


_RANK: Final = (Role.ADMIN, Role.OPERATOR, Role.TALENT)


@dataclass(frozen=True)
class Access:
    """An openid's roles (always at least talent) and, for an operator, the station they work for."""

    roles: frozenset[Role]
    station_id: int | None = None

    def acting_as(self, wanted: Collection[str] | None = None) -> Role:
        """The role a command is done (and audited) under: the highest of the roles `wanted` by the
        command that this openid holds; talent when it holds none of them (a refused command)."""
        for role in _RANK:
            if role in self.roles and (wanted is None or role in wanted):
                return role
        return Role.TALENT


async def access_of(session: AsyncSession, openid: str, admin_openids: Collection[str] = (), *,
                    shell: bool = False) -> Access:
    """The roles of `openid`: its active staff row, `admin_openids` (the ADMIN_OPENIDS setting), and
    `shell` for a command typed at the server (`talenthome admin`)."""
    roles = {Role.TALENT}
    staff = (await session.execute(select(Staff.role, Staff.station_id).where(
        Staff.openid == openid, Staff.active))).first()
    station_id = None
    if staff is not None:
        roles.add(Role(staff.role))
        station_id = staff.station_id if staff.role == Role.OPERATOR else None
    if shell or openid in admin_openids:
        roles.add(Role.ADMIN)
    return Access(frozenset(roles), station_id)


class AuditKind(StrEnum):
    ACTION = "action"
    REFUSAL = "refusal"


async def audit(session: AsyncSession, actor: str, role: Role | str, command: str, outcome: str, *,
                at: datetime | None = None, refused: bool = False) -> None:
    """One audit row: who (`actor`: an openid or `cli:<user>`), as which role, typed what, and what came
    of it (the reply, or `refused: ...` with `refused=True`). Written in the caller's transaction."""
    session.add(AuditLog(actor=actor[:80], role=str(role), at=at or utcnow(), command=command[:MAX_AUDIT_TEXT],
                         outcome=outcome[:MAX_AUDIT_TEXT],
                         kind=AuditKind.REFUSAL if refused else AuditKind.ACTION))


@dataclass(frozen=True)
class AuditView:
    """The latest rows of one kind (oldest first) and how many refusals there are since the first of them
    (all refusals when there is none)."""

    rows: list[AuditLog]
    refusals: int


async def audit_view(session: AsyncSession, n: int = 10, kind: AuditKind = AuditKind.ACTION) -> AuditView:
    rows = list(reversed((await session.scalars(select(AuditLog).where(AuditLog.kind == kind)
                                                .order_by(AuditLog.id.desc()).limit(n))).all()))
    count = select(func.count()).select_from(AuditLog).where(AuditLog.kind == AuditKind.REFUSAL)
    if rows:
        count = count.where(AuditLog.id >= rows[0].id)
    return AuditView(rows, int(await session.scalar(count) or 0))
