"""The window (web/) on the bot's real aiohttp server on loopback, with real Redis, a real database and the
fake WeChat API (logins), plus a small seeded city: `site` is the running app, `city` what was seeded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from scoring import calendar, live, periods
from scoring.db import transaction
from scoring.models import Activity, Attendance, Entry, Gift, Redemption, Signup, Staff, Station, Talent, Visit
from tests import factories
from tests.bot.conftest import APPID, Bot, start_bot
from tests.fake_wechat import FakeWeChat

SECRET = "testsecret"


@dataclass
class Site:
    bot: Bot
    fake: FakeWeChat
    base: str  # http://127.0.0.1:port
    http: aiohttp.ClientSession

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.http.get(self.base + path, allow_redirects=False, **kw)

    async def json(self, path: str, status: int = 200, **kw: Any) -> Any:
        async with await self.get(path, **kw) as resp:
            body = await resp.json()
            assert resp.status == status, (path, resp.status, body)
            return body

    async def token_for(self, openid: str) -> str:
        """A bearer token through POST /api/v1/session with a fake `wx.login` code."""
        async with self.http.post(self.base + "/api/v1/session", json={"code": self.fake.login_code(openid)}) as r:
            assert r.status == 200, await r.text()
            return str((await r.json())["token"])


@pytest.fixture
async def site(db_url: str, redis_url: str) -> AsyncIterator[Site]:
    """On SQLite and on PostgreSQL (the `db_url` fixture)."""
    fake = await FakeWeChat(appid=APPID, secret=SECRET).start()
    try:
        async for bot in start_bot(db_url, redis_url, wechat_api_base=fake.base_url,
                                   wechat_oauth_base=fake.base_url):
            base = bot.url.removesuffix("/wechat")
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                yield Site(bot, fake, base, http)
    finally:
        await fake.close()


# -- a small city ------------------------------------------------------------------------------------


def local(*args: int) -> datetime:
    """A local (Asia/Shanghai) wall time as naive UTC."""
    return periods.to_utc_naive(datetime(*args))


@dataclass
class City:
    stations: dict[str, Station] = field(default_factory=dict)
    talents: dict[str, Talent] = field(default_factory=dict)
    activities: dict[str, Activity] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)  # personal data that must never be on a public route


_keys = iter(range(1, 1_000_000))


async def _visit_points(s: Any, talent: Talent | None, station: Station, at: datetime, *, points: int = 1,
                        activity: Activity | None = None) -> Visit | None:
    """An accepted visit with its R3 entries (as the worker would post them)."""
    v = None
    if talent is not None:
        v = await factories.visit(s, talent, station, at)
        if activity is not None:
            v.activity_id = activity.id
        s.add(Entry(key=f"t:{next(_keys)}", talent_id=talent.id, amount=1, rule="R3@1", fact_kind="visit",
                    fact_id=v.id, occurred_at=at))
    s.add(Entry(key=f"s:{next(_keys)}", station_id=station.id, amount=points, rule="R3@1", fact_kind="visit",
                fact_id=v.id if v else None, occurred_at=at))
    await s.flush()
    return v


async def seed_city(bot: Bot, redis: Any) -> City:
    """Stations of each kind, type and district; a delisted one and one certified this year (neither is
    ranked); a tie; talents with visits, an activity visit, a redemption and a void; activities; the
    close of October featuring S001 in November; the live boards built."""
    city = City()
    async with transaction(bot.sessions) as s:
        st = city.stations
        st["S001"] = await factories.station(s, "S001", name="鲤城人才之家", kind="home", type="comprehensive")
        st["S002"] = await factories.station(s, "S002", name="丰泽人才社区", kind="community", type="industry")
        st["S003"] = await factories.station(s, "S003", name="丰泽服务站", kind="home", type="service")
        st["S004"] = await factories.station(s, "S004", name="已摘牌站点", status="delisted")
        st["S005"] = await factories.station(s, "S005", name="新认定站点", certified_on=date(2026, 3, 1))
        st["S006"] = await factories.station(s, "S006", name="安静的站点", type="professional")
        st["S002"].county = st["S003"].county = "丰泽区"
        st["S001"].address, st["S001"].opening_hours = "泉州市鲤城区中山路1号", "周一至周五 9:00-17:00"
        t = city.talents
        t["li"] = await factories.talent(s, "QZSECRET01", openid="oTalentSecret01", name="李保密")
        t["li"].phone = "13900001111"
        t["wang"] = await factories.talent(s, "QZSECRET02", openid="oTalentSecret02", name="王隐私")
        t["unbound"] = await factories.talent(s, "QZSECRET03", name="赵未绑")
        city.secrets = ["李保密", "王隐私", "赵未绑", "oTalentSecret01", "oTalentSecret02", "13900001111",
                        "QZSECRET01", "QZSECRET02", "QZSECRET03", "oOperator01"]
        s.add(Staff(openid="oOperator01", role="operator", station_id=st["S001"].id))
        # October: S002 first (it will be featured in November).
        for day in (3, 4, 5):
            await _visit_points(s, t["wang"], st["S002"], local(2026, 10, day, 10))
        await _visit_points(s, t["li"], st["S001"], local(2026, 10, 6, 10))
        # November: S001 5, S002 and S003 tied at 3 (S003 reached it first), S004 delisted with 50,
        # S005 not eligible this year with 9, S006 nothing.
        for day in (2, 3, 4, 5):
            await _visit_points(s, t["li"], st["S001"], local(2026, 11, day, 9))
        a_past = Activity(station_id=st["S001"].id, title="往期沙龙", starts_at=local(2026, 11, 10, 14),
                          ends_at=local(2026, 11, 10, 16), capacity=10, published_at=local(2026, 11, 1, 9))
        s.add(a_past)
        await s.flush()
        city.activities["past"] = a_past
        s.add(Attendance(activity_id=a_past.id, talent_id=t["li"].id))
        await _visit_points(s, t["li"], st["S001"], local(2026, 11, 10, 15), activity=a_past)
        await _visit_points(s, None, st["S003"], local(2026, 11, 6, 9), points=3)
        await _visit_points(s, None, st["S002"], local(2026, 11, 7, 9), points=3)
        await _visit_points(s, None, st["S004"], local(2026, 11, 7, 9), points=50)
        await _visit_points(s, None, st["S005"], local(2026, 11, 7, 9), points=9)
        # A void of one of li's visits, and a redemption.
        voided = (await s.scalars(select(Entry.id).where(Entry.talent_id == t["li"].id)
                                  .order_by(Entry.id).limit(1))).first()
        s.add(Entry(key=f"v:{next(_keys)}", talent_id=t["li"].id, amount=-1, rule="V@1", fact_kind="visit",
                    fact_id=None, occurred_at=local(2026, 10, 6, 10), reverses_id=voided, actor="admin",
                    reason="重复打卡"))
        gift = Gift(name="人才书签", cost=2, stock=5)
        s.add(gift)
        await s.flush()
        red = Redemption(gift_id=gift.id, talent_id=t["li"].id, status="applied", applied_at=local(2026, 11, 12, 9))
        s.add(red)
        await s.flush()
        s.add(Entry(key=f"g:{next(_keys)}", talent_id=t["li"].id, amount=-2, rule="G@1", fact_kind="redemption",
                    fact_id=red.id, occurred_at=local(2026, 11, 12, 9)))
        # Upcoming activities.
        soon = Activity(station_id=st["S001"].id, title="人才沙龙", theme="创业分享", starts_at=local(2026, 11, 25, 14),
                        ends_at=local(2026, 11, 25, 16), capacity=2, published_at=local(2026, 11, 15, 9))
        open_ = Activity(station_id=st["S002"].id, title="读书会", starts_at=local(2026, 12, 3, 19),
                         ends_at=local(2026, 12, 3, 21), capacity=None, published_at=local(2026, 11, 15, 9))
        hidden = Activity(station_id=st["S004"].id, title="摘牌站点的活动", starts_at=local(2026, 11, 26, 9),
                          ends_at=local(2026, 11, 26, 10), capacity=5, published_at=local(2026, 11, 15, 9))
        s.add_all([soon, open_, hidden])
        await s.flush()
        s.add(Signup(activity_id=soon.id, talent_id=t["wang"].id, created_at=local(2026, 11, 16, 9)))
        city.activities.update(soon=soon, open=open_, hidden=hidden)
    async with transaction(bot.sessions) as s:
        closed = await calendar.month_close(s, "2026-10", local(2026, 11, 1, 0, 5))
        assert isinstance(closed, calendar.MonthClosed) and closed.featured_station_id == city.stations["S002"].id
    assert await live.rebuild(bot.sessions, redis) is not None
    return city


@pytest.fixture
async def city(site: Site, redis: Any, quiet_clock: datetime) -> City:
    return await seed_city(site.bot, redis)
