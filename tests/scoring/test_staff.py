"""scoring.staff: who an openid is (the router asks, the domain answers), and one audit row per command."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from scoring import staff
from scoring.db import transaction
from scoring.models import AuditLog, Staff
from scoring.staff import Access, Role
from tests import factories as f


async def test_access_of_each_kind_of_sender(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
        s.add_all([Staff(openid="oOp", role="operator", station_id=st.id),
                   Staff(openid="oAd", role="admin"),
                   Staff(openid="oGone", role="operator", station_id=st.id, active=False)])
    async with sessions() as s:
        assert await staff.access_of(s, "oTalent") == Access(frozenset({Role.TALENT}))
        assert await staff.access_of(s, "oOp") == Access(frozenset({Role.TALENT, Role.OPERATOR}), st.id)
        assert await staff.access_of(s, "oAd") == Access(frozenset({Role.TALENT, Role.ADMIN}))
        assert await staff.access_of(s, "oGone") == Access(frozenset({Role.TALENT}))  # removed staff
        assert (await staff.access_of(s, "oEnv", {"oEnv"})).roles == {Role.TALENT, Role.ADMIN}
        assert (await staff.access_of(s, "cli:ops", shell=True)).roles == {Role.TALENT, Role.ADMIN}
        both = await staff.access_of(s, "oOp", {"oOp"})  # an operator who is also an admin by setting
    assert both.roles == {Role.TALENT, Role.OPERATOR, Role.ADMIN} and both.station_id == st.id
    assert both.acting_as({"operator"}) is Role.OPERATOR and both.acting_as({"admin"}) is Role.ADMIN
    assert both.acting_as() is Role.ADMIN
    assert Access(frozenset({Role.TALENT})).acting_as({"admin"}) is Role.TALENT  # refused: audited as talent


async def test_audit_writes_one_row_in_the_callers_transaction(sessions):
    at = datetime(2026, 11, 18, 2, 0)
    async with transaction(sessions) as s:
        await staff.audit(s, "cli:ops", Role.ADMIN, "month-close 2026-10", "x" * 3000, at=at)
    async with sessions() as s:
        rows = (await s.execute(select(AuditLog.actor, AuditLog.role, AuditLog.command, AuditLog.outcome,
                                       AuditLog.at))).all()
    assert [tuple(r) for r in rows] == [("cli:ops", "admin", "month-close 2026-10", "x" * 2000, at)]
