"""Who hears of a hold, a void and a station's entries (issue 10, "Holds and voids are silent to the talent"):
the talent is told of a hold and of a void (politely, what to do; the reason, the points, the balance),
and each station's operators get at most one digest an hour of the entries it got or lost (R1, R2, R4,
voids; not R3). Facts are applied and their notices sent in one transaction, as the worker does; the
clock is explicit (time_machine, `now`). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import time_machine
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import notify
from scoring.db import transaction
from scoring.facts import activity, media, survey, visit, void
from scoring.facts.common import Outcome, Params
from scoring.models import DigestLine, Flag, Notification, Staff, Void
from scoring.texts import talent as talent_texts
from tests import factories as f
from tests.scoring import builders as b

Sessions = async_sessionmaker[AsyncSession]
START = b.local(2026, 11, 10, 14, 0)


async def run(sessions: Sessions, fact: object, fact_id: int, *, now: datetime) -> Outcome:
    """Apply a fact and send its notices in one transaction (the worker's `apply`), at `now`."""
    with time_machine.travel(now, tick=False):
        async with transaction(sessions) as s:
            out: Outcome = await fact.apply(s, fact_id, Params(), now=now)  # type: ignore[attr-defined]
            await notify.send(s, out.notices)
    return out


async def rows(sessions: Sessions, like: str) -> list[tuple[str, str, dict]]:
    async with sessions() as s:
        found = (await s.execute(select(Notification.key, Notification.openid, Notification.payload)
                                 .where(Notification.key.like(like)).order_by(Notification.id))).all()
    return [(k, o, json.loads(p)) for k, o, p in found]


async def void_of(sessions: Sessions, kind: str, target: int, reason: str) -> int:
    async with transaction(sessions) as s:
        row = Void(target_kind=kind, target_id=target, actor="admin-1", reason=reason)
        s.add(row)
        await s.flush()
        return row.id


async def test_a_held_visit_tells_the_talent_once(sessions: Sessions) -> None:
    async with transaction(sessions) as s:
        sts = [await f.station(s, name=f"第{i}站") for i in range(3)]
        t = await f.talent(s, openid="o-talent")
        vs = [await f.visit(s, t, st, START + timedelta(minutes=10 * i)) for i, st in enumerate(sts)]
    for v in vs:
        await run(sessions, visit, v.id, now=START + timedelta(minutes=31))
    await run(sessions, visit, vs[2].id, now=START + timedelta(minutes=40))  # again: nothing new
    async with sessions() as s:
        flag = (await s.scalars(select(Flag))).one()
    told = await rows(sessions, "talent-hold:%")
    assert [(k, o) for k, o, _ in told] == [(f"talent-hold:{flag.id}", "o-talent")]
    text = told[0][2]["text"]
    assert text == talent_texts.HOLD_TALENT.format(station="第2站")
    assert "核实中" in text and "联系站点工作人员" in text and "30分钟" not in text  # no fraud details
    assert told[0][2]["template"] == "visit_held"


async def test_a_voided_visit_tells_the_talent_the_reason_points_and_balance(sessions: Sessions) -> None:
    async with transaction(sessions) as s:
        st = await f.station(s, name="鲤城人才驿站")
        t = await f.talent(s, openid="o-talent")
        first = await f.visit(s, t, st, START)
        second = await f.visit(s, t, await f.station(s), START + timedelta(hours=1))
    for v in (first, second):
        await run(sessions, visit, v.id, now=START + timedelta(hours=2))
    vid = await void_of(sessions, "visit", first.id, "代打卡")
    await run(sessions, void, vid, now=START + timedelta(days=1))
    await run(sessions, void, vid, now=START + timedelta(days=1, hours=1))  # again: nothing new
    told = await rows(sessions, "talent-void:%")
    assert [(k, o) for k, o, _ in told] == [(f"talent-void:{vid}:{t.id}", "o-talent")]
    payload = told[0][2]
    assert payload["text"] == ("您好，您11月10日在鲤城人才驿站的打卡经管理员核实已作废（原因：代打卡），已扣回1积分，"
                               "当前积分为1分。如有疑问请联系鲤城人才驿站工作人员。")
    assert {k: payload["data"][k] for k in ("points", "balance", "reason", "visit_id")} == {
        "points": 1, "balance": 1, "reason": "代打卡", "visit_id": first.id}


async def test_one_digest_an_hour_per_operator(sessions: Sessions) -> None:
    """R1 and R2 and a void within the hour -> one digest per operator with every line (no R3); a second
    run in the hour sends nothing; an entry the next hour goes in the next hour's digest."""
    async with transaction(sessions) as s:
        st = await f.station(s, name="丰泽人才之家")
        other = await f.station(s)
        s.add_all([Staff(openid="o-op-1", role="operator", station_id=st.id),
                   Staff(openid="o-op-2", role="operator", station_id=st.id),
                   Staff(openid="o-op-x", role="operator", station_id=other.id)])
        act = await b.activity(s, st, starts_at=START, published_at=START - timedelta(days=2))
        t = await f.talent(s, openid="o-talent")
        await b.attend(s, act, t)
        await b.publicity(s, act)
        await b.media(s, act, "municipal", at=START)
        v = await f.visit(s, t, st, START)
    hour = b.local(2026, 11, 11, 10)  # 10:00-11:00 local
    await run(sessions, visit, v.id, now=hour + timedelta(minutes=1))  # R3: not in the digest
    await run(sessions, activity, act.id, now=hour + timedelta(minutes=5))
    await run(sessions, media, act.id, now=hour + timedelta(minutes=10))
    vid = await void_of(sessions, "visit", v.id, "重复打卡")
    await run(sessions, void, vid, now=hour + timedelta(minutes=50))

    async with transaction(sessions) as s:
        assert await notify.send_digests(s, hour + timedelta(minutes=59)) == []  # the hour is not over
    async with transaction(sessions) as s:
        keys = await notify.send_digests(s, hour + timedelta(hours=1, seconds=5))
    assert sorted(keys) == [f"digest:{st.code}:2026111111:o-op-1", f"digest:{st.code}:2026111111:o-op-2"]
    sent = await rows(sessions, "digest:%")
    assert len({p["text"] for _, _, p in sent}) == 1
    assert sent[0][2]["text"] == (
        "本站（丰泽人才之家）过去一小时积分变动：活动「沙龙」+5（R1）；媒体报道「沙龙」+5（R2）；"
        f"作废 -1（打卡 #{v.id}，原因：重复打卡）；合计+9分。发送「排名」可查看榜单。")
    async with transaction(sessions) as s:  # a second run in the hour (another worker, a retry)
        assert await notify.send_digests(s, hour + timedelta(hours=1, minutes=30)) == []
    assert len(await rows(sessions, "digest:%")) == 2

    async with transaction(sessions) as s:
        sv = await b.survey(s, st, 2026, 2)
    await run(sessions, survey, sv.id, now=hour + timedelta(hours=1, minutes=20))  # 11:20: the next hour
    async with transaction(sessions) as s:
        keys = await notify.send_digests(s, hour + timedelta(hours=2))
        assert await notify.send_digests(s, hour + timedelta(hours=2, minutes=1)) == []
    assert sorted(keys) == [f"digest:{st.code}:2026111112:o-op-1", f"digest:{st.code}:2026111112:o-op-2"]
    nxt = await rows(sessions, f"digest:{st.code}:2026111112:%")
    assert nxt[0][2]["text"] == (
        "本站（丰泽人才之家）过去一小时积分变动：满意度调查 +2（R4）；合计+2分。发送「排名」可查看榜单。")
    async with sessions() as s:
        assert (await s.scalars(select(DigestLine).where(DigestLine.sent_at.is_(None)))).all() == []
    assert await rows(sessions, "digest:%:o-op-x") == []  # the other station got and lost nothing


async def test_an_operator_hears_at_most_once_an_hour_whatever_mix_of_entries_and_voids(sessions: Sessions) -> None:
    """Voids reach the station's operators only through the hourly digest (the talent is told at once): an
    hour with R1, R2, two voids (an activity's and a visit's) and R4 leaves each operator exactly ONE
    message, the digest with every line; no `void:` message of its own."""
    async with transaction(sessions) as s:
        st = await f.station(s, name="晋江人才之家")
        s.add(Staff(openid="o-op-1", role="operator", station_id=st.id))
        act = await b.activity(s, st, starts_at=START, published_at=START - timedelta(days=2))
        t = await f.talent(s, openid="o-talent")
        await b.attend(s, act, t)
        await b.publicity(s, act)
        await b.media(s, act, "municipal", at=START)
        v = await f.visit(s, t, st, START)
        sv = await b.survey(s, st, 2026, 2)
    hour = b.local(2026, 11, 11, 10)
    await run(sessions, visit, v.id, now=hour + timedelta(minutes=1))
    await run(sessions, activity, act.id, now=hour + timedelta(minutes=5))
    await run(sessions, media, act.id, now=hour + timedelta(minutes=10))
    await run(sessions, survey, sv.id, now=hour + timedelta(minutes=15))
    for kind, target in (("visit", v.id), ("activity", act.id)):
        vid = await void_of(sessions, kind, target, "核实有误")
        await run(sessions, void, vid, now=hour + timedelta(minutes=30))
    async with transaction(sessions) as s:
        await notify.send_digests(s, hour + timedelta(hours=1, seconds=1))
        await notify.send_digests(s, hour + timedelta(hours=1, minutes=40))
    to_operator = await rows(sessions, "%:o-op-1")
    assert [k for k, _, _ in to_operator] == [f"digest:{st.code}:2026111111:o-op-1"]
    text = to_operator[0][2]["text"]
    assert text.count("作废") == 3 and "（R1）" in text and "（R2）" in text and "（R4）" in text
    assert "合计+1分" in text  # R1 +5, R2 +5, R4 +2, voids -1 (the visit's station leg), -5, -5
    assert [k for k, _, _ in await rows(sessions, "talent-void:%")] != []  # the talent is told at once
