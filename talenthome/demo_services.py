"""The sample city's services (`talenthome demo`): the common list (policy measure 7, when a wiped database
lost migration 0007's rows), each of the first stations' duties and own items by station type, a few
bookings (past ones settled kept or no-show, upcoming ones open) and a few consultations (answered and
rated, claimed, waiting). Through the domain's own calls; deterministic for a seed and `now`."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import bookings, consultations, services
from scoring.admin import operators_of
from scoring.bookings import Booked, Limits, slot_at
from scoring.models import Station, Talent
from scoring.periods import local_day

COMMON = (("涉才政策咨询", "人才政策解读、申报指引"), ("人才寻访登记", "登记引才需求与人才线索"),
          ("茶咖休闲交流", "会客茶咖，随到随聊"))
BY_TYPE = {
    "comprehensive": (("人才管家服务", "子女入学、安居、就医等事项一站式代办"),
                      "综合型站点：人才服务“管家”，一站式受理与代办。"),
    "industry": (("产才对接会", "聚合行业发展信息，协助企业与人才匹配"), "行业型站点：聚合行业信息，协助产才匹配。"),
    "professional": (("创新创业辅导", "学术交流与项目路演辅导"), "专业型站点：学术交流与创新创业服务。"),
    "service": (("高层次人才服务代办", "承接市县高层次人才服务中心部分业务"),
                "服务型站点：承接市县人才服务中心部分功能。"),
}
QUESTIONS = ("请问高层次人才购房补贴如何申请？", "子女入学需要准备哪些材料？", "周末站点开放吗？可以带朋友来吗？")
ANSWER = "您好，相关材料清单已发到您的邮箱，也可到站点服务吧台现场咨询。"
NOTICES = consultations.Notices(asked="【新咨询 #{id}】{station}：{question}", answer="【咨询答复 #{id}】{answer}",
                                transferred="【咨询转交 #{id}】{question}", closed="您的咨询 #{id} 已办结。")


@dataclass(frozen=True)
class ServicesMade:
    items: int
    bookings: int
    consultations: int


async def add_services(session: AsyncSession, *, now: datetime, seed: int, stations: int = 6) -> ServicesMade:
    rng = random.Random(seed * 7919 + 12)
    made = 0
    if not await services.common_items(session):
        for name, description in COMMON:
            added = await services.add_item(session, station_id=None, scope=None, now=now,
                                            fields=services.ItemFields(name=name, description=description))
            made += isinstance(added, services.ServiceItem)
    picked = list((await session.scalars(select(Station).where(Station.status == "active")
                                          .order_by(Station.code).limit(stations))).all())
    talents = list((await session.scalars(select(Talent).where(Talent.openid.is_not(None))
                                          .order_by(Talent.id).limit(12))).all())
    bookable: dict[int, int] = {}
    for st in picked:
        (name, description), duties = BY_TYPE[st.type]
        item = await services.add_item(session, station_id=st.id, scope=None, now=now, fields=services.ItemFields(
            name=name, description=description, schedule="工作日 9:00-17:00", bookable=True,
            capacity=rng.randint(2, 4)))
        if isinstance(item, services.ServiceItem):
            bookable[st.id] = item.id
            made += 1
        await services.set_duties(session, station_id=st.id, text=duties, scope=None, actor="talenthome demo",
                                  now=now)
    booked = 0
    if picked and talents:
        today = local_day(now)
        for i, talent in enumerate(talents[:8]):
            st = picked[i % len(picked)]
            past = i < 4  # booked a week ago for two days ago; settled below
            day = today - timedelta(days=2) if past else today + timedelta(days=1 + i % 3)
            at = now - timedelta(days=7) if past else now
            result = await bookings.book(session, talent_id=talent.id, station_id=st.id,
                                         slot_start=slot_at(day, 10), now=at,
                                         service_id=bookable.get(st.id) if i % 2 else None,
                                         limits=Limits(horizon_days=30, visit_capacity=10, max_open=3))
            booked += isinstance(result, Booked)
        await bookings.settle(session, now)
    asked = 0
    for i, talent in enumerate(talents[:len(QUESTIONS)]):
        st = picked[i % len(picked)] if picked else None
        at = now - timedelta(hours=30 - 10 * i)
        done = await consultations.ask(session, talent_id=talent.id, station_id=st.id if st else None,
                                       text=QUESTIONS[i], now=at, max_open=3, notices=NOTICES)
        if not isinstance(done, consultations.Done):
            continue
        asked += 1
        staff = await operators_of(session, st.id) if st else []
        if not staff:
            continue
        cid = done.consultation.id
        if i == 0:
            await consultations.answer(session, cid=cid, actor=staff[0], scope=st.id if st else None, text=ANSWER,
                                       now=at + timedelta(hours=2), notices=NOTICES)
            await consultations.rate(session, talent_id=talent.id, cid=cid, score=5, now=at + timedelta(hours=3))
        elif i == 1:
            await consultations.claim(session, cid=cid, actor=staff[0], scope=st.id if st else None,
                                      now=at + timedelta(hours=1))
    return ServicesMade(items=made, bookings=booked, consultations=asked)
