"""scoring.accounts.unbind: by openid (the talent) or cert_no (an admin); points stay; binding again works."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from scoring import accounts
from scoring.accounts import UnbindRefusal
from scoring.boards import talent_points
from scoring.db import transaction
from scoring.facts import visit
from scoring.models import Talent
from tests import factories as f

NOW = datetime(2026, 11, 20, 4, 0)


async def test_unbind_by_openid_keeps_points_and_allows_binding_again(sessions, redis):
    async with transaction(sessions) as s:
        t = await f.talent(s, "QZ001", openid="oMe", name="张三")
        st = await f.station(s)
        v = await f.visit(s, t, st, datetime(2026, 11, 3, 2))
        await visit.credit(s, [v.id])
    async with transaction(sessions) as s:
        result = await accounts.unbind(s, openid="oMe")
    assert isinstance(result, accounts.Unbound) and result.openid == "oMe" and result.talent.id == t.id
    async with sessions() as s:
        stored = await s.get(Talent, t.id)
        assert stored is not None and stored.openid is None and stored.bound_at is None
        assert (await talent_points(s, t.id, NOW))["total"] == 1
    async with transaction(sessions) as s:
        again = await accounts.unbind(s, openid="oMe")
    assert isinstance(again, accounts.UnbindRefused) and again.reason is UnbindRefusal.NOT_BOUND
    # another WeChat account may now bind the registry row
    async with transaction(sessions) as s:
        bound = await accounts.bind(s, redis, openid="oNew", cert_no="QZ001", name="张三", now=NOW)
    assert isinstance(bound, accounts.Bound)


async def test_unbind_by_cert_no(sessions):
    async with transaction(sessions) as s:
        await f.talent(s, "QZ001", openid="oMe")
        await f.talent(s, "QZ002")
    async with transaction(sessions) as s:
        done = await accounts.unbind(s, cert_no=" qz001 ")
        idle = await accounts.unbind(s, cert_no="QZ002")
        missing = await accounts.unbind(s, cert_no="QZ404")
    assert isinstance(done, accounts.Unbound) and done.openid == "oMe"
    assert isinstance(idle, accounts.UnbindRefused) and idle.reason is UnbindRefusal.NOT_BOUND
    assert idle.talent is not None and idle.talent.cert_no == "QZ002"
    assert isinstance(missing, accounts.UnbindRefused) and missing.reason is UnbindRefusal.NO_TALENT
    async with sessions() as s:
        assert (await s.scalars(select(Talent.openid))).all() == [None, None]


async def test_unbind_needs_exactly_one_key(sessions):
    async with sessions() as s:
        with pytest.raises(ValueError):
            await accounts.unbind(s)
        with pytest.raises(ValueError):
            await accounts.unbind(s, openid="o", cert_no="QZ1")
