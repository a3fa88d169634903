"""A believable sample of Quanzhou for an empty database (`talenthome demo`), built by the platform's own
domain calls, so that every point in it is a real ledger entry made by the rule that would make it.

    await build(session, redis, settings, now=now, seed=seed) -> Built      (the caller's transaction)
    await rebuild_live(sessions, redis)                                      (after the commit)

What it makes (sizes in `Size`; everything relative to `now`, naive UTC, taken once by the caller):

- **History** starts at 00:00 local on 1 January of the previous year: the previous year is complete and
  this year runs up to `now`, so on 1 January as on any other day there is a closed and rated year.
- **Stations** (`Size.stations`, default 40) over Quanzhou's 12 county-level districts, of the four types,
  kinds home and community, with made-up names. Most were certified years ago (their stars are set as
  "history before the platform", like a migration of old records would), some last year (new: the
  rating lists their subsidy), some this year (not yet eligible: recorded, not ranked; SPEC 3). Each has
  one operator (`oDemoOp<code>`); one admin (`oDemoAdmin`) has a staff row with role admin.
- **Talents** of categories A-E from the same import path as `import-talents`; most bind a made-up
  openid (`oDemoT0001`...) through `scoring.accounts.bind`.
- **Month by month** (the order things happen in): activities published ahead with sign-ups
  (`scoring.signups`), attendances (`scoring.facts.attendance.record`), publicity reports and R1
  (`scoring.operations.add_publicity`, `scoring.facts.activity.apply`), media reports and R2
  (`add_media`, `scoring.facts.media.apply`), satisfaction invitations and answers; check-ins recorded in
  batches by `scoring.visits.record_visits` and applied by `scoring.facts.visit.apply_batch` (the worker's
  batch path, fraud rules included); redemptions; then the month is closed (`scoring.calendar.month_close`)
  with its featured station. December of last year also gets survey results (R4,
  `scoring.admin.record_survey`, `scoring.facts.survey.apply`), and last year's rating is previewed and
  confirmed (`scoring.rating`). The hold and the void tell whom the worker would tell (`scoring.notify`).
- **Now**: one activity running, upcoming ones with free seats and sign-ups, one visit held by the fraud
  rule (a talent at 3 stations within 30 minutes, three days ago; an admin decides), one visit voided by
  the admin (reversal entries), gifts with stock, city-wide and per station (`scoring.gifts.add_gift`).

Promises:
- Same `seed` and same `now` give the same data (all choices come from one `random.Random(seed)`, in a
  fixed order; nothing iterates a set of strings). Only pickup codes of redemptions, `recorded_at` and
  other bookkeeping times of the real clock differ.
- Nothing is left for the worker to apply: every recorded fact is applied here, except the held visit
  (waiting for an admin, as the fraud rule intends) and what has not happened yet (the running activity
  ends later, reports not yet uploaded). Notifications the history produced (month reports, the rating,
  the hold alert...) are marked given up with `DEMO_NOT_SENT`: they were addressed to made-up openids.
- After the commit the caller rebuilds the live boards from the ledger (`rebuild_live`): boards equal the
  ledger. It first drops the platform's Redis state (`th:*`) and arq's queue (`arq:*`): they described a
  database that is no more (the demo runs on an empty or wiped one), and a stale per-fact marker could
  hide a new fact with a reused id.

`wipe` (for `--force` only) deletes every row of every table of the schema: the one place in the code
base that empties the ledger, on the user's explicit request to throw a database away.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import texts
from scoring import accounts, admin, gifts, live, notify, operations, rating, satisfaction, signups
from scoring.calendar import MonthClosed, month_close, satisfaction_invitations
from scoring.facts import activity, media, redemption, survey, visit, void
from scoring.facts.attendance import Attended, record
from scoring.facts.common import Params
from scoring.imports import StationRow, TalentRow, save_stations, save_talents
from scoring.models import Activity, AuditLog, Base, Entry, Flag, Notification, Station, Talent, Visit
from scoring.periods import Period, local_day, month_key, to_utc_naive
from scoring.settings import Settings
from scoring.visits import Scan, record_visits
from talenthome.demo_services import add_services

COUNTIES = ("鲤城", "丰泽", "洛江", "泉港", "石狮", "晋江", "南安", "惠安", "安溪", "永春", "德化", "金门")
# The station card's address and opening hours (made up; the county's own suffix: 区, 市 or 县).
COUNTY_FULL = {"鲤城": "鲤城区", "丰泽": "丰泽区", "洛江": "洛江区", "泉港": "泉港区", "石狮": "石狮市",
               "晋江": "晋江市", "南安": "南安市", "惠安": "惠安县", "安溪": "安溪县", "永春": "永春县",
               "德化": "德化县", "金门": "金门县"}
STREETS = ("刺桐", "温陵", "丰泽", "泉秀", "东海", "宝洲", "津淮", "中山", "新华", "滨江", "海滨", "世纪")
OPENING_HOURS = ("周一至周五 9:00-17:30", "周二至周日 9:00-21:00", "每天 8:30-18:00", "周一至周六 9:00-20:00")
ABBR = dict(zip(COUNTIES, ("LC", "FZ", "LJ", "QG", "SS", "JJ", "NA", "HA", "AX", "YC", "DH", "JM"), strict=True))
# Stations per district out of 40 (busier districts have more); every district has at least one.
COUNTY_WEIGHTS = (5, 5, 2, 2, 4, 7, 4, 3, 3, 2, 2, 1)
TYPES = ("comprehensive", "industry", "professional", "service")
KIND_WORDS = {"home": "人才之家", "community": "人才社区"}
PLACES = ("东湖", "西街", "滨江", "古城", "海丝", "新城", "南岸", "北峰", "清源", "紫帽", "桃源", "溪畔", "梧林",
          "刺桐", "云谷", "湾区", "石笋", "双阳", "龙山", "凤凰")
THEMES = {
    "comprehensive": ("综合服务", "人才服务", "港湾"),
    "industry": ("鞋服产业", "智能制造", "石化新材料", "陶瓷产业", "茶产业", "纺织服装", "电子信息"),
    "professional": ("科创", "医学人才", "数字经济", "工业设计", "法律服务", "海洋科技"),
    "service": ("人才驿站", "青年人才", "侨智服务", "创业服务"),
}
SURNAMES = "陈林黄王吴张李蔡许郑洪施庄苏杨刘曾谢柯颜傅卢周郭肖潘何叶"
GIVEN = "志明伟建华文斌俊杰宏伟晓东丽芳雅婷欣怡子涵思远嘉诚泽宇梓萱诗琪浩然一鸣雨桐书瑶明轩振华少鹏晨曦"
CATEGORIES = ("A", "B", "C", "D", "E")
CATEGORY_WEIGHTS = (3, 10, 22, 30, 35)
TOPICS = ("数字经济", "人工智能", "海丝文化", "智能制造", "跨境电商", "新材料", "乡村振兴", "绿色低碳", "生物医药",
          "品牌出海")
TITLES = {
    "comprehensive": ("人才沙龙：{topic}", "人才讲堂：{topic}", "涉才政策宣讲会", "人才联谊茶叙"),
    "industry": ("{topic}产才对接会", "企业家茶叙：{topic}", "{topic}行业趋势分享会"),
    "professional": ("学术交流：{topic}", "创新创业路演", "成果转化与专利讲座", "青年科技人才论坛"),
    "service": ("人才政策咨询日", "子女入学政策解读", "安居政策答疑会", "健康义诊与讲座"),
    "culture": ("南音欣赏会", "泉州古城漫步", "闽南文化体验：{topic}", "提线木偶戏体验"),
}
OUTLETS = {"county": "{county}县级媒体（示例）", "municipal": "市级媒体（示例）", "provincial": "省级媒体（示例）",
           "central": "中央媒体（示例）"}
MEDIA_LEVELS = ("county", "municipal", "provincial", "central")
MEDIA_WEIGHTS = (55, 30, 12, 3)
COMMENTS = ("很有收获", "希望多办", "讲得很实在", "场地有点小", "时间可以再长一些", "", "", "")
CITY_GIFTS = (("“港湾计划”定制笔记本", 20, 200, "人才之家统一设计的笔记本，领取时出示兑换码。"),
              ("人才之家咖啡券", 10, 500, "任一站点吧台可用。"),
              ("南音专场演出门票", 50, 40, "每场限量，兑换后凭码入场。"),
              ("安溪铁观音茶礼", 60, 50, "一盒，含冲泡指南。"),
              ("德化白瓷茶具", 120, 15, "一套四杯一壶。"),
              ("泉州非遗文创礼盒", 80, 30, "木偶头、刻纸等非遗文创组合。"))
STATION_GIFTS = (("特调咖啡一杯", 8, 100, "本站吧台现做。"), ("本站定制帆布袋", 15, 60, "本站领取。"),
                 ("会议室半日使用", 40, 10, "提前一天预约。"))
ADMIN_OPENID = "oDemoAdmin"
DEMO_NOT_SENT = "talenthome demo: history of the sample city, addressed to made-up openids; not sent"
OPEN_MINUTES = (9 * 60, 20 * 60 + 30)  # stations are visited between 09:00 and 20:30 local
START_TIMES = ((9, 30), (10, 0), (14, 0), (14, 30), (15, 0), (19, 0), (19, 30))


@dataclass(frozen=True)
class Size:
    """How big the sample is. The defaults make a city that looks lived in and builds in seconds."""

    stations: int = 40
    talents: int = 320
    bound_share: float = 0.7
    visits: int = 6000  # check-ins over the whole history (besides activity attendances)
    activities: int = 160  # activities that have ended
    upcoming: int = 8


@dataclass(eq=False)
class _Station:
    id: int
    code: str
    name: str
    county: str
    type: str
    kind: str
    certified_on: date
    weight: float
    operator: str
    active: bool = True


@dataclass(eq=False)
class _Talent:
    id: int
    cert_no: str
    name: str
    county: str
    weight: float
    openid: str | None = None
    bound_at: datetime | None = None
    busy: set[date] = field(default_factory=set)  # local days with a check-in or an attendance


@dataclass(frozen=True)
class Built:
    """What the demo made, and what to try first."""

    seed: int
    now: datetime
    stations: int
    counties: int
    talents: int
    bound: int
    visits: int
    activities: int
    entries: int
    months_closed: list[str]
    rated_year: int
    talent: tuple[str, str, str]  # (openid, cert_no, name) of a bound talent with points
    operator: tuple[str, str, str]  # (openid, station code, station name)
    admin: str
    station: tuple[str, str]  # (code, name) of a station to scan
    hold_flag_id: int
    void_id: int
    upcoming: int


class DemoError(Exception):
    """The demo could not be built as planned (a domain call refused what the plan expected)."""


def local_at(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    """A local (Asia/Shanghai) wall-clock time as naive UTC."""
    return to_utc_naive(datetime(day.year, day.month, day.day, hour, minute, second))


def _allot(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """`total` split over `weights` (largest remainders), each part at least `minimum` when possible."""
    base = [minimum] * len(weights) if total >= minimum * len(weights) else [0] * len(weights)
    rest = total - sum(base)
    w = sum(weights)
    exact = [rest * x / w for x in weights]
    parts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (parts[i] - exact[i], i))
    for i in order[:rest - sum(parts)]:
        parts[i] += 1
    return [b + p for b, p in zip(base, parts, strict=True)]


def _days(start: datetime, end: datetime) -> list[date]:
    """The local days that [start, end) touches."""
    if end <= start:
        return []
    first, last = local_day(start), local_day(end - timedelta(microseconds=1))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


class _City:
    """The builder's state: one random source, the stations and talents as plain values, the session."""

    def __init__(self, session: AsyncSession, redis: Redis, settings: Settings, *, now: datetime, seed: int,
                 size: Size, step: Any = None):
        self.s, self.redis, self.settings, self.now, self.size = session, redis, settings, now, size
        self.rng = random.Random(seed)
        self.seed = seed
        self.step = step or (lambda *a, **k: None)
        self.today = local_day(now)
        self.year = self.today.year
        self.start = local_at(date(self.year - 1, 1, 1), 0, 0)
        self.params = Params.from_settings(settings)
        self.stations: list[_Station] = []
        self.talents: list[_Talent] = []
        self.visits = 0
        self.activities = 0
        self.closed: list[str] = []
        self.hold_flag_id = 0
        self.void_id = 0
        self.city_gifts: list[tuple[int, int]] = []  # (cost, id)

    # -- people and places ----------------------------------------------------------------------------
    async def make_stations(self) -> None:
        rng, n = self.rng, self.size.stations
        per_county = _allot(n, COUNTY_WEIGHTS, minimum=1)
        n_this, n_last = max(1, round(n * 0.12)), max(1, round(n * 0.12))
        ages = ["this"] * n_this + ["last"] * n_last + ["old"] * (n - n_this - n_last)
        rng.shuffle(ages)
        rows, names, plan = [], set(), []
        i = 0
        for county, count in zip(COUNTIES, per_county, strict=True):
            for k in range(1, count + 1):
                stype = TYPES[(i + k) % 4] if rng.random() < 0.6 else rng.choice(TYPES)
                kind = "community" if rng.random() < 0.25 else "home"
                name = ""
                while not name or name in names:
                    name = f"{county}{rng.choice(PLACES)}{rng.choice(THEMES[stype])}{KIND_WORDS[kind]}"
                names.add(name)
                age = ages[i]
                if age == "old":
                    certified = date(self.year - rng.randint(2, 6), rng.randint(1, 12), rng.randint(1, 28))
                elif age == "last":
                    certified = date(self.year - 1, 1, 1) + timedelta(days=rng.randrange(360))
                else:
                    span = (self.today - date(self.year, 1, 1)).days
                    certified = date(self.year, 1, 1) + timedelta(days=rng.randint(0, span))
                code = f"{ABBR[county]}{k:02d}"
                rows.append(StationRow(i + 2, code, name, kind, stype, county, certified))
                plan.append((code, name, county, stype, kind, certified, round(rng.lognormvariate(0, 0.55), 3)))
                i += 1
        await save_stations(self.s, rows)
        ids = dict((await self.s.execute(select(Station.code, Station.id))).all())
        where = random.Random(f"{self.seed}:address")  # its own stream: the city's draws stay as they were
        for code, _name, county, *_rest in plan:
            await self.s.execute(update(Station).where(Station.id == ids[code]).values(
                address=f"泉州市{COUNTY_FULL[county]}{where.choice(STREETS)}路{where.randint(1, 399)}号",
                opening_hours=where.choice(OPENING_HOURS)))
        for code, name, county, stype, kind, certified, weight in plan:
            self.stations.append(_Station(ids[code], code, name, county, stype, kind, certified, weight,
                                          f"oDemoOp{code}"))
        # Stars and demotions from the ratings before the platform (imports start every station at 3).
        old = [st for st in self.stations if st.certified_on.year <= self.year - 2]
        for st in old:
            stars = rng.choice((2, 3, 3, 3, 4, 4, 5))
            await self.s.execute(update(Station).where(Station.id == st.id).values(stars=stars))
        if old:  # the quietest old station was demoted last time: one more and it is delisted
            weakest = min(old, key=lambda st: (st.weight, st.code))
            await self.s.execute(update(Station).where(Station.id == weakest.id).values(demotion_streak=1))
        for st in self.stations:
            made = await admin.add_staff(self.s, st.operator, "operator", st.code)
            if isinstance(made, admin.AdminRefusal):
                raise DemoError(f"operator of {st.code}: {made}")
        if isinstance(made := await admin.add_staff(self.s, ADMIN_OPENID, "admin", None), admin.AdminRefusal):
            raise DemoError(f"admin: {made}")

    async def make_talents(self) -> None:
        rng, n = self.rng, self.size.talents
        rows, plan = [], []
        for i in range(1, n + 1):
            category = rng.choices(CATEGORIES, CATEGORY_WEIGHTS)[0]
            county = rng.choices(COUNTIES, COUNTY_WEIGHTS)[0]
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
            cert_no = f"QZ{self.year - rng.randint(1, 6)}{category}{i:04d}"
            rows.append(TalentRow(i + 1, cert_no, name, "", category, county))
            weight = rng.choice((5.0, 1.5, 1.5, 1.5, 0.5, 0.5))
            plan.append((cert_no, name, county, weight))
        await save_talents(self.s, rows)
        ids = dict((await self.s.execute(select(Talent.cert_no, Talent.id))).all())
        self.talents = [_Talent(ids[c], c, name, county, w) for c, name, county, w in plan]
        self.talents[0].weight = 6.0  # the talent the demo suggests trying: a regular
        bound = self.talents[:max(1, round(n * self.size.bound_share))]
        for k, t in enumerate(bound, start=1):
            if k == 1:
                at = self.start + timedelta(days=2, hours=3)
            elif rng.random() < 0.8:  # most bound in the first weeks, the others over the history
                at = self.start + timedelta(days=rng.uniform(0, 25))
            else:
                at = self.start + (self.now - self.start) * rng.uniform(0.05, 0.9)
            result = await accounts.bind(self.s, self.redis, openid=f"oDemoT{k:04d}", cert_no=t.cert_no,
                                         name=t.name, now=at)
            if not isinstance(result, accounts.Bound):
                raise DemoError(f"binding {t.cert_no}: {result.reason}")
            t.openid, t.bound_at = f"oDemoT{k:04d}", at

    async def make_gifts(self) -> None:
        for name, cost, stock, about in CITY_GIFTS:
            if isinstance(made := await gifts.add_gift(self.s, name=name, cost=cost, stock=stock,
                                                       description=about), gifts.GiftRefused):
                raise DemoError(f"gift {name}: {made.reason}")
            self.city_gifts.append((cost, made.id))
        self.city_gifts.sort()
        with_gifts = sorted(self.rng.sample(self.stations, min(6, len(self.stations))), key=lambda st: st.code)
        for st in with_gifts:
            for name, cost, stock, about in self.rng.sample(STATION_GIFTS, 2):
                made = await gifts.add_gift(self.s, name=name, cost=cost, stock=stock, station_id=st.id,
                                            description=about)
                if isinstance(made, gifts.GiftRefused):
                    raise DemoError(f"gift {name} at {st.code}: {made.reason}")

    # -- choices ----------------------------------------------------------------------------------------
    def open_stations(self, day: date, *, eligible_only: bool = False) -> list[_Station]:
        return [st for st in self.stations if st.active and st.certified_on <= day
                and (not eligible_only or st.certified_on.year < day.year)]

    def pick_station(self, day: date, county: str | None = None) -> _Station | None:
        found = self.open_stations(day)
        if county is not None and self.rng.random() < 0.7:
            found = [st for st in found if st.county == county] or found
        if not found:
            return None
        return self.rng.choices(found, [st.weight for st in found])[0]

    def free_talents(self, day: date, before: datetime, exclude: Sequence[_Talent] = ()) -> list[_Talent]:
        return [t for t in self.talents if t.openid is not None and t.bound_at is not None and t.bound_at < before
                and day not in t.busy and all(t is not x for x in exclude)]

    def pick_talents(self, pool: list[_Talent], k: int) -> list[_Talent]:
        chosen: list[_Talent] = []
        pool = list(pool)
        while pool and len(chosen) < k:
            t = self.rng.choices(pool, [x.weight for x in pool])[0]
            pool.remove(t)
            chosen.append(t)
        return chosen

    def title(self, stype: str) -> str:
        group = "culture" if self.rng.random() < 0.2 else stype
        return self.rng.choice(TITLES[group]).format(topic=self.rng.choice(TOPICS))

    # -- activities ---------------------------------------------------------------------------------------
    async def publish(self, st: _Station, *, starts: datetime, minutes: int, published: datetime,
                      capacity: int | None) -> int | None:
        made = await operations.publish_activity(
            self.s, st.id, title=self.title(st.type), starts_at=starts, ends_at=starts + timedelta(minutes=minutes),
            capacity=capacity, theme="", actor=st.operator, now=published)
        if isinstance(made, operations.OpRefusal):
            if made is operations.OpRefusal.STATION_DELISTED:
                return None
            raise DemoError(f"publishing at {st.code}: {made}")
        self.activities += 1
        return made.id

    async def sign_up(self, activity_id: int, talents: Sequence[_Talent], published: datetime,
                      starts: datetime) -> list[_Talent]:
        done = []
        for t in talents:
            at = published + (starts - published) * self.rng.uniform(0.05, 0.95)
            if t.bound_at is None or at <= t.bound_at:
                continue
            result = await signups.signup(self.s, talent_id=t.id, activity_id=activity_id, now=at)
            if isinstance(result, signups.SignedUp):
                done.append(t)
        return done

    async def attend(self, activity_id: int, talents: Sequence[_Talent], starts: datetime, latest: datetime,
                     earliest: datetime | None = None) -> list[_Talent]:
        came = []
        for t in talents:
            at = min(latest, starts + timedelta(minutes=self.rng.uniform(-15, 40)))
            at = max(at, earliest) if earliest is not None else at
            assert t.openid is not None
            result = await record(self.s, openid=t.openid, activity_id=activity_id, at=at)
            if isinstance(result, Attended):
                t.busy.add(local_day(at))
                came.append(t)
        return came

    async def past_activity(self, st: _Station, starts: datetime, minutes: int) -> None:
        rng = self.rng
        ends = starts + timedelta(minutes=minutes)
        late = rng.random() < 0.06  # published less than a day ahead: R1 will not pay
        published = starts - (timedelta(hours=rng.uniform(4, 20)) if late else timedelta(days=rng.uniform(2, 14)))
        capacity = None if rng.random() < 0.3 else rng.choice((20, 30, 40, 50, 60))
        activity_id = await self.publish(st, starts=starts, minutes=minutes, published=published, capacity=capacity)
        if activity_id is None:
            return
        day = local_day(starts)
        pool = self.free_talents(day, published)
        wanted = self.pick_talents(pool, min(capacity or 99, rng.randint(3, 12)))
        signed = await self.sign_up(activity_id, wanted, published, starts)
        coming = [t for t in signed if rng.random() < 0.8]
        coming += self.pick_talents(self.free_talents(day, starts, exclude=signed), rng.choice((0, 0, 1, 2)))
        came = await self.attend(activity_id, coming, starts, ends)
        if not came:
            return
        # The publicity report (R1 needs it), then media reports (R2), as the operator uploads them.
        reported = ends + timedelta(hours=rng.uniform(2, 30))
        if rng.random() < 0.85 and reported <= self.now:
            url = f"https://news.example.com/{st.code.lower()}/{activity_id}"
            made = await operations.add_publicity(self.s, st.id, activity_id, url, actor=st.operator)
            if isinstance(made, operations.OpRefusal):
                raise DemoError(f"publicity of activity {activity_id}: {made}")
            await activity.apply(self.s, activity_id, self.params, now=reported)
            if rng.random() < 0.3:
                at = reported + timedelta(days=rng.uniform(0.5, 3))
                level = rng.choices(MEDIA_LEVELS, MEDIA_WEIGHTS)[0]
                await self.media(st, activity_id, level, at)
                higher = MEDIA_LEVELS[MEDIA_LEVELS.index(level) + 1:]
                if higher and rng.random() < 0.15:
                    await self.media(st, activity_id, rng.choice(higher), at + timedelta(days=rng.uniform(1, 5)))
        # Satisfaction: invited at the end (the worker's cron), some answer within the 48 hours. Activities
        # whose 48 hours are still running are left to the real worker, which invites them through Redis.
        if ends + timedelta(hours=48) <= self.now:
            await satisfaction_invitations(self.s, ends)
            for t in came:
                if rng.random() < 0.6:
                    score = rng.choices((5, 4, 3, 2, 1), (50, 32, 12, 4, 2))[0]
                    await satisfaction.record(
                        self.s, talent_id=t.id, activity_id=activity_id, score=score, comment=rng.choice(COMMENTS),
                        now=ends + timedelta(hours=rng.uniform(0.2, 40)), alert_text=texts.LOW_SCORE_ALERT)

    async def media(self, st: _Station, activity_id: int, level: str, at: datetime) -> None:
        if at > self.now:
            return
        made = await operations.add_media(self.s, st.id, activity_id, level=level,
                                          outlet=OUTLETS[level].format(county=st.county),
                                          url=f"https://media.example.com/{level}/{activity_id}", actor=st.operator)
        if isinstance(made, operations.OpRefusal):
            raise DemoError(f"media report of activity {activity_id}: {made}")
        # Uploaded back then: the upload time picks R2's period (scoring.facts.media).
        made.created_at = at
        await self.s.flush()
        await media.apply(self.s, activity_id, self.params, now=at)

    def activity_slot(self, window: tuple[datetime, datetime], day: date) -> tuple[datetime, int] | None:
        hour, minute = self.rng.choice(START_TIMES)
        minutes = self.rng.choice((90, 120, 120, 150, 180))
        starts = local_at(day, hour, minute)
        if starts - timedelta(minutes=30) < window[0] or starts + timedelta(minutes=minutes) > window[1]:
            return None
        return starts, minutes

    # -- check-ins --------------------------------------------------------------------------------------
    def plan_visits(self, window: tuple[datetime, datetime], count: int) -> list[Scan]:
        rng = self.rng
        days = _days(*window)
        if not days:
            return []
        day_weights = [1.6 if d.weekday() >= 5 else 1.0 for d in days]
        bound = [t for t in self.talents if t.openid is not None]
        cum = list(itertools.accumulate(t.weight for t in bound))
        scans: list[Scan] = []
        for _ in range(count):
            for _attempt in range(4):
                t = bound[bisect.bisect_right(cum, rng.random() * cum[-1])]
                day = rng.choices(days, day_weights)[0]
                minute = rng.randrange(*OPEN_MINUTES)
                at = local_at(day, minute // 60, minute % 60, rng.randrange(60))
                if not window[0] <= at < window[1] or t.bound_at is None or at <= t.bound_at or day in t.busy:
                    continue
                st = self.pick_station(day, t.county)
                if st is None:
                    continue
                t.busy.add(day)
                assert t.openid is not None
                scans.append(Scan(openid=t.openid, at=at, station_code=st.code))
                break
        return scans

    async def record(self, scans: list[Scan]) -> list[int]:
        """Record scans as the bot's batcher does (one call per batch); the accepted visits' ids."""
        accepted = []
        scans = sorted(scans, key=lambda sc: sc.at)
        for i in range(0, len(scans), 1000):
            for outcome in await record_visits(self.s, scans[i:i + 1000]):
                if outcome.visit is not None and outcome.visit.status == "accepted":
                    accepted.append(outcome.visit.id)
        self.visits += len(scans)
        return accepted

    async def apply_visits(self, at: datetime) -> list[int]:
        """Apply every pending visit as the worker does (batches, fraud rules); returns the held ones."""
        held: list[int] = []
        while True:
            pending = await visit.unapplied(self.s, cutoff=datetime.max, now=at, limit=1)
            if not pending:
                return held
            batch = await visit.apply_batch(self.s, pending[0], self.params, limit=1000, now=at)
            await notify.send(self.s, batch.notices, admins=self.params.admin_openids)
            held += batch.held
            if not batch.settled:
                return held

    # -- one month ------------------------------------------------------------------------------------
    async def month(self, key: str, visits: int, activities: int, *, current: bool) -> None:
        rng = self.rng
        start, end = Period("month", key).bounds()
        assert start is not None and end is not None
        window = (max(start, self.start), min(end, self.now))
        days = _days(*window)
        planned = []
        for _ in range(activities):
            if not days:
                break
            day = rng.choice(days)
            st = self.pick_station(day)
            slot = self.activity_slot(window, day)
            if st is not None and slot is not None:
                planned.append((slot[0], slot[1], st))
        for starts, minutes, st in sorted(planned, key=lambda p: (p[0], p[2].code)):
            await self.past_activity(st, starts, minutes)
        if current:
            await self.now_activities()
        scans = self.plan_visits(window, visits)
        scans += self.special_scans(window)
        await self.record(scans)
        held = await self.apply_visits(window[1])
        if self.hold_flag_id == 0 and held:
            flag = await self.s.scalar(select(Flag.id).where(Flag.visit_id.in_(held), Flag.hold.is_(True)))
            self.hold_flag_id = flag or 0
        await self.void_one(window)
        await self.redemptions(window)
        if key == f"{self.year - 1}-12":
            await self.surveys()
        if end <= self.now:
            result = await month_close(self.s, key, min(end + timedelta(minutes=5), self.now))
            if not isinstance(result, MonthClosed):
                raise DemoError(f"month close {key}: {result.detail}")
            self.closed.append(key)
        if key == f"{self.year - 1}-12":
            await self.rate()
        await self.s.flush()
        self.s.expunge_all()  # plain values are kept; the ORM objects of this month may go

    # -- the fraud hold and the admin's void ---------------------------------------------------------------
    def special_talents(self) -> tuple[_Talent, _Talent]:
        bound = [t for t in self.talents[1:] if t.openid is not None and t.bound_at is not None
                 and t.bound_at < self.now - timedelta(days=30)]
        if len(bound) < 2:
            raise DemoError("too few bound talents for the fraud hold and the void")
        return bound[0], bound[1]

    def special_days(self) -> tuple[date, date]:
        hold_day = self.today - timedelta(days=3)
        void_day = self.today - timedelta(days=12)
        if (void_day + timedelta(days=1)).month != void_day.month:
            void_day -= timedelta(days=1)  # void the next morning, in the same month
        return hold_day, void_day

    def reserve_special_days(self) -> None:
        hold_t, void_t = self.special_talents()
        hold_day, void_day = self.special_days()
        hold_t.busy.add(hold_day)
        void_t.busy.add(void_day)
        self.talents[0].busy.add(self.today)  # the suggested talent's scans today are the person's to make

    def special_scans(self, window: tuple[datetime, datetime]) -> list[Scan]:
        hold_t, void_t = self.special_talents()
        hold_day, void_day = self.special_days()
        scans = []
        if window[0] <= local_at(hold_day, 10, 0) < window[1]:
            # The same talent at three stations of one district within half an hour: the third is held.
            near = self.open_stations(hold_day, eligible_only=True)
            by_county = {c: [st for st in near if st.county == c] for c in COUNTIES}
            county = max(COUNTIES, key=lambda c: (len(by_county[c]), -COUNTIES.index(c)))
            trio = by_county[county][:3] if len(by_county[county]) >= 3 else near[:3]
            assert hold_t.openid is not None
            for st, minute in zip(trio, (2, 13, 24), strict=False):
                scans.append(Scan(openid=hold_t.openid, at=local_at(hold_day, 10, minute), station_code=st.code))
        if window[0] <= local_at(void_day, 15, 30) < window[1]:
            where = self.pick_station(void_day, void_t.county)
            assert where is not None and void_t.openid is not None
            scans.append(Scan(openid=void_t.openid, at=local_at(void_day, 15, 30), station_code=where.code))
        return scans

    async def void_one(self, window: tuple[datetime, datetime]) -> None:
        _, void_t = self.special_talents()
        _, void_day = self.special_days()
        at = local_at(void_day + timedelta(days=1), 11, 30)
        if not window[0] <= local_at(void_day, 15, 30) < window[1] or at > self.now:
            return
        visit_id = await self.s.scalar(select(Visit.id).where(
            Visit.talent_id == void_t.id, Visit.local_day == void_day, Visit.status == "accepted"))
        if visit_id is None:
            raise DemoError("the visit to void was not recorded")
        made = await admin.request_void(self.s, "visit", visit_id, actor=ADMIN_OPENID,
                                        reason="经核实为他人代打卡，依规作废")
        if isinstance(made, admin.AdminRefusal):
            raise DemoError(f"void: {made}")
        made.created_at = at
        voided = await void.apply(self.s, made.id, self.params, now=at)
        await notify.send(self.s, voided.notices, admins=self.params.admin_openids)
        self.void_id = made.id

    # -- money-like things: redemptions, surveys; the calendar: rating ---------------------------------
    async def redemptions(self, window: tuple[datetime, datetime]) -> None:
        if window[1] < self.now - timedelta(days=75) or window[1] <= window[0]:
            return
        for t in self.pick_talents([t for t in self.talents[1:] if t.openid is not None], 3):
            _, gift_id = self.rng.choice(self.city_gifts[:3])
            requested = await gifts.request_redemption(self.s, talent_id=t.id, gift_id=gift_id)
            if isinstance(requested, gifts.Requested):
                at = max(window[0], window[1] - timedelta(hours=self.rng.uniform(1, 48)))
                await redemption.apply(self.s, requested.redemption.id, self.params, now=at)
                requested.redemption.created_at = at

    async def surveys(self) -> None:
        year = self.year - 1
        at = local_at(date(year, 12, 20), 10, 0)
        for st in self.open_stations(date(year, 12, 31), eligible_only=True):
            if self.rng.random() < 0.4:
                amount = self.rng.choice((-10, -5, 5, 10, 10, 15, 20, 30))
                made = await admin.record_survey(self.s, st.code, year, amount, actor=ADMIN_OPENID,
                                                 reason=f"{year}年度人才知晓率与满意度测评")
                if isinstance(made, admin.AdminRefusal | admin.SurveyCapped):
                    raise DemoError(f"survey for {st.code}: {made}")
                made.created_at = at
                await survey.apply(self.s, made.id, self.params, now=at)

    async def rate(self) -> None:
        year = self.year - 1
        at = min(local_at(date(self.year, 1, 4), 10, 0), self.now)
        preview = await rating.preview(self.s, year, self.settings, now=at)
        if isinstance(preview, rating.RatingRefused):
            raise DemoError(f"rating {year}: {preview.detail}")
        confirmed = await rating.confirm(self.s, year, ADMIN_OPENID, now=at,
                                         admin_openids=self.settings.admin_openid_set)
        if isinstance(confirmed, rating.RatingRefused):
            raise DemoError(f"rating {year}: {confirmed.detail}")
        delisted = {x.station_id for x in confirmed.delisted}
        for st in self.stations:
            if st.id in delisted:
                st.active = False

    # -- now: a running activity, upcoming ones ------------------------------------------------------------
    def demo_station(self) -> _Station:
        home = self.talents[0].county
        eligible = self.open_stations(self.today, eligible_only=True)
        if not eligible:
            raise DemoError("no eligible station")
        return max(eligible, key=lambda st: (st.county == home, st.weight, st.code))

    async def now_activities(self) -> None:
        rng, now = self.rng, self.now
        month_start = Period("month", month_key(now)).bounds()[0]
        assert month_start is not None
        st = self.demo_station()
        starts = max(month_start, now - timedelta(minutes=60 + now.minute % 10, seconds=now.second))
        published = starts - timedelta(days=rng.uniform(3, 7))
        activity_id = await self.publish(st, starts=starts, minutes=150, published=published, capacity=30)
        if activity_id is None:
            raise DemoError("the running activity could not be published")
        day = local_day(starts)
        pool = self.free_talents(day, published, exclude=[self.talents[0]])
        signed = await self.sign_up(activity_id, self.pick_talents(pool, 8), published, starts)
        # From its start on (not earlier: it may start at 00:00 on the month's first day)
        came = await self.attend(activity_id, signed[:max(3, len(signed) * 2 // 3)], starts, now, starts)
        if not came:
            raise DemoError("nobody attends the running activity")
        upcoming = []
        for k in range(self.size.upcoming):
            day = self.today + timedelta(days=rng.randint(2, 28))
            hour, minute = rng.choice(START_TIMES)
            st_k = self.pick_station(self.today) or st
            published = max(self.start, now - timedelta(hours=rng.uniform(1, 72)))
            capacity = None if k % 4 == 3 else rng.choice((20, 30, 40, 50))
            activity_id = await self.publish(st_k, starts=local_at(day, hour, minute), minutes=120,
                                             published=published, capacity=capacity)
            if activity_id is not None:
                upcoming.append((local_at(day, hour, minute), activity_id, published, capacity))
        upcoming.sort()
        for i, (_starts, activity_id, published, capacity) in enumerate(upcoming):
            pool = [t for t in self.talents[1:] if t.openid is not None and t.bound_at is not None
                    and t.bound_at < published]
            wanted = self.pick_talents(pool, rng.randint(2, max(2, (capacity or 30) // 3)))
            if i == 0:
                wanted.insert(0, self.talents[0])  # the suggested talent has a sign-up to see and cancel
            await self.sign_up(activity_id, wanted, published, now)


# -- the entry points ----------------------------------------------------------------------------------


async def counts(session: AsyncSession) -> tuple[int, int]:
    """(stations, talents): the demo fills a database only when both are 0."""
    stations = await session.scalar(select(func.count(Station.id)))
    talents = await session.scalar(select(func.count(Talent.id)))
    return int(stations or 0), int(talents or 0)


DEMO_ACTOR = "talenthome demo"


async def made_by_demo(session: AsyncSession) -> bool:
    """Whether the demo built this database (its audit row is there). `--force` wipes only such a database:
    a real city's data, mistakenly pointed at by DATABASE_URL, is never deleted by the demo."""
    found = await session.scalar(select(func.count(AuditLog.id)).where(AuditLog.actor == DEMO_ACTOR))
    return bool(found)


async def wipe(session: AsyncSession) -> None:
    """Delete every row of every table of the schema (`demo --force`), in the caller's transaction."""
    tables = list(reversed(Base.metadata.sorted_tables))
    if session.get_bind().dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        await session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            await session.execute(table.delete())


async def build(session: AsyncSession, redis: Redis, settings: Settings, *, now: datetime, seed: int,
                size: Size | None = None, step: Any = None) -> Built:
    """Fill an empty database with the sample city as of `now` (naive UTC), in the caller's transaction.
    `step` is a progress callback (talenthome.progress.Step): one step per month."""
    size = size or Size()
    city = _City(session, redis, settings, now=now, seed=seed, size=size, step=step)
    months = [f"{city.year - 1}-{m:02d}" for m in range(1, 13)]
    months += [f"{city.year}-{m:02d}" for m in range(1, int(month_key(now)[5:]) + 1)]
    city.step(0, total=len(months) + 3, description="站点与人员")
    await city.make_stations()
    await city.make_talents()
    await city.make_gifts()
    city.reserve_special_days()
    city.step()
    # Busier as the platform catches on; each month's share follows its days in the history.
    shares = []
    for i, key in enumerate(months):
        start, end = Period("month", key).bounds()
        assert start is not None and end is not None
        days = max(0.0, (min(end, now) - max(start, city.start)).total_seconds() / 86400)
        shares.append(days * (0.6 + 0.8 * i / max(1, len(months) - 1)))
    visits = _allot(size.visits, shares)
    acts = _allot(size.activities, shares)
    for i, key in enumerate(months):
        city.step(0, description=f"{key} 的活动、打卡与月结")
        await city.month(key, visits[i], acts[i], current=i == len(months) - 1)
        city.step()
    if not city.hold_flag_id or not city.void_id:
        raise DemoError("the fraud hold or the void was not made")
    await add_services(session, now=now, seed=seed)
    # Notifications of the history went to made-up people: none is left for the worker to send.
    await session.execute(update(Notification).where(Notification.status == "pending").values(
        status="given_up", last_error=DEMO_NOT_SENT))
    entries = int(await session.scalar(select(func.count(Entry.id))) or 0)
    stations, talents = await counts(session)
    bound = int(await session.scalar(select(func.count(Talent.id)).where(Talent.openid.is_not(None))) or 0)
    counties = int(await session.scalar(select(func.count(func.distinct(Station.county)))) or 0)
    session.add(AuditLog(actor=DEMO_ACTOR, role="admin", at=now, command=f"demo --seed {seed}",
                         outcome=f"sample city: {stations} stations, {talents} talents, {entries} entries"))
    first, st = city.talents[0], city.demo_station()
    assert first.openid is not None
    built = Built(
        seed=seed, now=now, stations=stations, counties=counties, talents=talents, bound=bound, visits=city.visits,
        activities=city.activities, entries=entries, months_closed=city.closed, rated_year=city.year - 1,
        talent=(first.openid, first.cert_no, first.name), operator=(st.operator, st.code, st.name),
        admin=ADMIN_OPENID, station=(st.code, st.name), hold_flag_id=city.hold_flag_id, void_id=city.void_id,
        upcoming=int(await session.scalar(select(func.count(Activity.id)).where(Activity.starts_at > now)) or 0))
    city.step()
    return built


async def clear_redis(redis: Redis) -> int:
    """Drop the platform's Redis state (`th:*`) and arq's queue (`arq:*`); returns the keys dropped."""
    dropped = 0
    for pattern in ("th:*", "arq:*"):
        batch: list[Any] = []
        async for key in redis.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                dropped += await redis.unlink(*batch)
                batch = []
        if batch:
            dropped += await redis.unlink(*batch)
    return dropped


async def rebuild_live(sessions: async_sessionmaker[AsyncSession], redis: Redis) -> live.Rebuilt:
    """After the commit: a clean Redis, then the live boards from the ledger alone."""
    await clear_redis(redis)
    rebuilt = await live.rebuild(sessions, redis)
    if rebuilt is None:
        raise DemoError("another rebuild of the boards was running")
    return rebuilt


