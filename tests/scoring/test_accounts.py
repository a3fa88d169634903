"""scoring.accounts: binding rules and what a talent sees of their points."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import accounts
from scoring.accounts import BindRefusal, BindRefused, Bound
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts import redemption as redemption_fact
from scoring.facts import visit
from tests import factories as f
from tests.scoring.builders import gift, local, redemption

NOW = local(2026, 11, 2, 9, 0)


@pytest.fixture
async def lite(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(sqlite_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def bind(sessions, redis, openid, cert_no, name):
    async with transaction(sessions) as s:
        return await accounts.bind(s, redis, openid=openid, cert_no=cert_no, name=name, now=NOW)


def test_names_compare_loosely_but_not_too_loosely():
    n = accounts.normalise_name
    assert n("张 三") == n("张三") == n("张三 ")
    assert n("买买提·艾力") == n("买买提•艾力") == n("买买提・艾力")
    assert n("John Smith") == n("john smith")
    assert n("张三") != n("张四")


async def test_bind_rules(sessions, redis):  # both databases: the guarded UPDATE
    async with transaction(sessions) as s:
        await f.talent(s, "QZ001", name="张三")
        await f.talent(s, "qz002", name="李四")
    assert isinstance(first := await bind(sessions, redis, "oA", "QZ001", "张三"), Bound) and not first.already
    assert first.talent.openid == "oA" and first.talent.bound_at == NOW
    again = await bind(sessions, redis, "oA", "qz001", "张 三")
    assert isinstance(again, Bound) and again.already
    assert (await bind(sessions, redis, "oB", "QZ001", "张三")).reason is BindRefusal.TALENT_TAKEN
    assert (await bind(sessions, redis, "oA", "QZ002", "李四")).reason is BindRefusal.OPENID_TAKEN
    assert isinstance(await bind(sessions, redis, "oB", "QZ002", "李四"), Bound)  # stored as qz002


async def test_five_failed_tries_per_hour(lite, redis):
    async with transaction(lite) as s:
        await f.talent(s, "QZ001", name="张三")
    lefts = []
    for _ in range(5):
        refused = await bind(lite, redis, "oGuess", "QZ001", "王五")
        assert isinstance(refused, BindRefused) and refused.reason is BindRefusal.NO_MATCH
        lefts.append(refused.tries_left)
    assert lefts == [4, 3, 2, 1, 0]
    # the right answer is refused too now, unchecked, until the hour is over
    assert (await bind(lite, redis, "oGuess", "QZ001", "张三")).reason is BindRefusal.TOO_MANY_TRIES
    assert 3500 < await redis.ttl("th:bindfail:oGuess") <= 3600
    assert isinstance(await bind(lite, redis, "oOther", "QZ001", "张三"), Bound)  # per openid
    await redis.delete("th:bindfail:oGuess")
    assert (await bind(lite, redis, "oGuess", "QZ001", "张三")).reason is BindRefusal.TALENT_TAKEN


async def test_recent_entries_and_year_rank(lite):
    async with transaction(lite) as s:
        st = await f.station(s, "ST1", name="鲤城人才之家")
        me = await f.talent(s, openid="oMe")
        rival = await f.talent(s, openid="oRival")
        other = await f.talent(s, openid="oOther")
        days = [NOW - timedelta(days=d) for d in (3, 2, 1)]
        made = [await f.visit(s, who, st, at) for who in (me, rival) for at in days]
        made.append(await f.visit(s, other, st, days[0]))
        g = await gift(s, cost=2, name="茶叶")
        red = await redemption(s, me, g)
    async with transaction(lite) as s:
        assert await visit.credit(s, [v.id for v in made]) == 7
        await redemption_fact.apply(s, red.id, now=NOW)
    async with lite() as s:
        lines = await accounts.recent_entries(s, me.id)
        rank_me = await accounts.talent_year_rank(s, me.id, NOW)
        rank_other = await accounts.talent_year_rank(s, other.id, NOW)
        nobody = await f.talent(s, openid="oNew")
        rank_new = await accounts.talent_year_rank(s, nobody.id, NOW)
    assert [(ln.amount, ln.rule, ln.subject) for ln in lines] == \
        [(-2, "G", "茶叶"), (1, "R3", "鲤城人才之家"), (1, "R3", "鲤城人才之家"), (1, "R3", "鲤城人才之家")]
    assert rank_me == (1, 3)  # redemptions are spending, not points; tied with the rival at 3
    assert rank_other == (3, 1)
    assert rank_new == (None, 0)
