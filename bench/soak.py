"""Soak (issue 13): real `talenthome serve` and `talenthome worker` processes under 30 minutes of mixed
traffic, with a worker SIGKILLed, Redis restarted empty and PostgreSQL restarted in the middle; at the end
every accepted fact must be in the ledger exactly once, the live boards must equal the ledger's SQL boards,
no outbox message may be sent twice, and the bot's and the worker's RSS must be flat.

What runs: a throwaway PostgreSQL cluster (or a SQLite file) and Redis (talenthome/servers.py), migrated and
filled by `talenthome demo` plus imported unbound talents; the fake WeChat API of the tests
(tests/fake_wechat.py) on loopback; the bot and the worker as subprocesses. The driver sends signed,
encrypted (safe mode) callbacks at a steady rate from many openids: station scans, bindings, activity
sign-ups and activity code scans, satisfaction replies, talent words, redemptions, operator words
(publishing short activities, publicity and media reports), admin words (audit, flags, survey results),
and now and then the same callback twice (WeChat's retry). At 1/3 of the run the worker is SIGKILLed and a
new one started; at 1/2 Redis is stopped and started again empty (no persistence: the queue, the
de-duplication keys, the intents and the live boards are gone; the sweeper and the board rebuild must
recover); at 2/3 PostgreSQL is stopped for `--db-down` seconds and started again (the bot answers what it
can meanwhile and recovers after).

    .venv/bin/python bench/soak.py --minutes 3                  # a short try, prints the summary
    .venv/bin/python bench/soak.py --minutes 30 --write         # the soak; replaces "## Soak" in BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import itertools
import json
import os
import random
import re
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.common import (  # noqa: E402
    create_pg_database,
    loadavg,
    machine_info,
    print_machine,
    replace_section,
    restart_postgres,
    rss_kib,
    stop_on_sigterm,
    temp_dir,
)
from talenthome.servers import PostgresServer, RedisServer, free_port  # noqa: E402

TOKEN = "soaktoken"
APPID = "wx0000000000demo01"  # the fake's default appid and secret
SECRET = "talenthome-demo-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_soak000000001"
HEADING = "## Soak"
EXTRA_TALENTS = 1500
WEIGHTS = {  # share of the callbacks, per action
    "scan": 34, "bind": 6, "word": 12, "signup": 8, "activity_scan": 8, "satisfaction": 6, "redeem": 5,
    "operator": 8, "publish": 1, "admin": 4, "survey": 1, "retry": 7,
}
TALENT_WORDS = ("积分", "排名", "活动", "礼品", "帮助", "我的码", "points", "rank")
OPERATOR_WORDS = ("我的活动", "本站", "站点码", "待办")
ADMIN_WORDS = ("审计", "风险", "失败任务", "低分", "礼品 列表")
MEDIA_LEVELS = ("county", "municipal", "provincial", "central")


def now_s() -> float:
    return time.time()


# -- callbacks ----------------------------------------------------------------------------------------
def _cdata(v: str) -> str:
    return "<![CDATA[" + v.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _signature(*parts: str) -> str:
    import hashlib

    return hashlib.sha1("".join(sorted([TOKEN, *parts])).encode()).hexdigest()


class Signer:
    """Builds encrypted, signed callbacks and reads encrypted replies (WeChat's safe mode)."""

    def __init__(self) -> None:
        from wechatpy.crypto import PrpCrypto, WeChatCrypto

        self.prp = PrpCrypto(base64.b64decode(AES_KEY + "="))
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
        self.msg_ids = itertools.count(int(time.time() * 1000) * 1000)

    def text(self, openid: str, content: str) -> tuple[str, str]:
        xml = (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
               f"<CreateTime>{int(now_s())}</CreateTime><MsgType>{_cdata('text')}</MsgType>"
               f"<Content>{_cdata(content)}</Content><MsgId>{next(self.msg_ids)}</MsgId></xml>")
        return self._wrap(xml)

    def scan(self, openid: str, scene: str) -> tuple[str, str]:
        xml = (f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><FromUserName>{_cdata(openid)}</FromUserName>"
               f"<CreateTime>{int(now_s())}</CreateTime><MsgType>{_cdata('event')}</MsgType>"
               f"<Event>{_cdata('SCAN')}</Event><EventKey>{_cdata(scene)}</EventKey>"
               f"<Ticket>{_cdata('gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2tUZWtpeTdsdW5zT0c')}</Ticket></xml>")
        return self._wrap(xml)

    def _wrap(self, xml: str) -> tuple[str, str]:
        ts, nonce = str(int(now_s())), secrets.token_hex(8)
        enc = self.prp.encrypt(xml, APPID)
        enc = enc.decode() if isinstance(enc, bytes) else enc
        query = (f"timestamp={ts}&nonce={nonce}&signature={_signature(ts, nonce)}&openid=x"
                 f"&encrypt_type=aes&msg_signature={_signature(ts, nonce, enc)}")
        body = f"<xml><ToUserName>{_cdata(ACCOUNT)}</ToUserName><Encrypt>{_cdata(enc)}</Encrypt></xml>"
        return f"/wechat?{query}", body

    def reply_text(self, body: str) -> str:
        """The Content of an encrypted reply ('' for WeChat's bare `success`)."""
        import xmltodict

        if not body.strip().startswith("<xml"):
            return ""
        outer = xmltodict.parse(body)["xml"]
        inner = self.crypto.decrypt_message(body, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
        return str(xmltodict.parse(inner)["xml"].get("Content") or "")


# -- the city -------------------------------------------------------------------------------------------
@dataclass
class City:
    stations: list[tuple[int, str]]  # (id, code)
    talents: list[tuple[int, str]]  # bound (id, openid)
    unbound: list[tuple[str, str]]  # (cert_no, name)
    operators: list[tuple[str, int]]  # (openid, station id)
    admins: list[str]
    gifts: list[int]
    activities: dict[int, tuple[int, float, float]] = field(default_factory=dict)  # id -> (station, start, end)
    attendees: dict[int, list[str]] = field(default_factory=dict)  # ended activity -> openids
    bind_next: int = 0


def to_epoch(dt: Any) -> float:
    from datetime import UTC

    return dt.replace(tzinfo=UTC).timestamp()


async def load_city(sessions: Any) -> City:
    from sqlalchemy import select

    from scoring.models import Gift, Staff, Station, Talent

    async with sessions() as s:
        stations = [(r.id, r.code) for r in (await s.execute(
            select(Station.id, Station.code).where(Station.status == "active").order_by(Station.id))).all()]
        talents = [(r.id, r.openid) for r in (await s.execute(
            select(Talent.id, Talent.openid).where(Talent.openid.is_not(None)).order_by(Talent.id))).all()]
        unbound = [(r.cert_no, r.name) for r in (await s.execute(
            select(Talent.cert_no, Talent.name).where(Talent.openid.is_(None), Talent.cert_no.like("SK%"))
            .order_by(Talent.id))).all()]
        staff = (await s.execute(select(Staff.openid, Staff.role, Staff.station_id).where(Staff.active))).all()
        gifts = [g for g in (await s.scalars(select(Gift.id).where(Gift.active))).all()]
    return City(stations, talents, unbound, [(o, st) for o, r, st in staff if r == "operator"],
                [o for o, r, _ in staff if r == "admin"], gifts)


async def refresh_activities(sessions: Any, city: City, since: Any) -> None:
    from sqlalchemy import select

    from scoring.clock import utcnow
    from scoring.models import Activity, Attendance, Talent

    now = utcnow()
    async with sessions() as s:
        rows = (await s.execute(select(Activity.id, Activity.station_id, Activity.starts_at, Activity.ends_at).where(
            Activity.status == "published", Activity.ends_at > now - timedelta(hours=2)))).all()
        city.activities = {r.id: (r.station_id, to_epoch(r.starts_at), to_epoch(r.ends_at)) for r in rows}
        ended = [r.id for r in rows if r.ends_at <= now]
        if ended:
            att = (await s.execute(select(Attendance.activity_id, Talent.openid).join(
                Talent, Talent.id == Attendance.talent_id).where(Attendance.activity_id.in_(ended)))).all()
            by: dict[int, list[str]] = defaultdict(list)
            for a, o in att:
                by[a].append(o)
            city.attendees = dict(by)


# -- traffic --------------------------------------------------------------------------------------------
@dataclass
class Stats:
    sent: Counter[str] = field(default_factory=Counter)  # posted to the bot
    dropped: Counter[str] = field(default_factory=Counter)  # not sent: the driver's backlog was full
    unsent: int = 0  # still queued in the driver when the traffic stopped (cancelled)
    outcome: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    replies: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    by_phase: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    retries_same: int = 0
    retries_differ: int = 0
    phase: str = "normal"


def classify(text: str) -> str:
    """A short label of a reply, for the summary: its first characters up to punctuation."""
    if not text:
        return "(empty)"
    head = re.split(r"[，。！：:；\n（(]", text, maxsplit=1)[0]
    head = re.sub(r"\d+", "N", head)
    return head[:16]


class Driver:
    def __init__(self, port: int, city: City, settings: Any, rng: random.Random, stats: Stats) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.city, self.settings, self.rng, self.stats = city, settings, rng, stats
        self.signer = Signer()
        self.session: Any = None
        self.sem = asyncio.Semaphore(48)
        self.max_backlog = 500
        self.tasks: set[asyncio.Task[None]] = set()
        self.recent: list[tuple[str, str, str]] = []  # (action, path, body) for retries
        self.publishing = True
        self.surveys: Counter[int] = Counter()

    async def post(self, action: str, path: str, body: str) -> str | None:
        import aiohttp

        t0 = time.perf_counter()
        try:
            async with self.sem:
                self.stats.sent[action] += 1
                async with self.session.post(self.base + path, data=body.encode(),
                                             headers={"Content-Type": "text/xml"}) as r:
                    text = await r.text()
                    status = r.status
        except (TimeoutError, aiohttp.ClientError) as err:
            self.stats.outcome[action][type(err).__name__] += 1
            self.stats.by_phase[self.stats.phase][type(err).__name__] += 1
            return None
        self.stats.latency[action].append(time.perf_counter() - t0)
        kind = "5xx" if status >= 500 else f"http {status}" if status != 200 else "ok"
        self.stats.outcome[action][kind] += 1
        self.stats.by_phase[self.stats.phase][kind] += 1
        if status != 200:
            return None
        try:
            content = self.signer.reply_text(text)
        except Exception as err:  # a reply we cannot read is a finding
            self.stats.outcome[action][f"unreadable {type(err).__name__}"] += 1
            return None
        label = classify(content)
        self.stats.replies[action][label] += 1
        self.stats.by_phase[self.stats.phase]["reply: " + label] += 1
        return content

    def fire(self, action: str, path: str, body: str) -> None:
        if len(self.tasks) >= self.max_backlog:  # the bot is behind: do not queue without bound
            self.stats.dropped[action] += 1
            return
        if action != "retry":
            self.recent.append((action, path, body))
            del self.recent[:-50]
        task = asyncio.ensure_future(self._send(action, path, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(self, action: str, path: str, body: str) -> None:
        content = await self.post(action, path, body)
        if action == "bind" and content is not None and "成功" in content:
            pass  # the bound pool is refreshed from the database

    def talent(self) -> tuple[int, str]:
        return self.rng.choice(self.city.talents)

    def one(self) -> None:
        """One callback of a randomly chosen action (an action without anything to act on becomes a scan)."""
        from scoring.tokens import activity_scene, station_scene

        c, rng, key = self.city, self.rng, self.settings.scene_key
        action = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        now = now_s()
        running = [a for a, (_, st, en) in c.activities.items() if st <= now < en]
        upcoming = [a for a, (_, st, _) in c.activities.items() if st > now + 5]
        ended = [a for a in c.attendees if c.activities.get(a, (0, 0, now + 1))[2] <= now]
        if action == "retry" and self.recent:
            _, path, body = rng.choice(self.recent[-20:])
            self.fire("retry", path, body)
            return
        if action == "bind" and c.bind_next < len(c.unbound):
            cert, name = c.unbound[c.bind_next]
            c.bind_next += 1
            self.fire("bind", *self.signer.text(f"oSoak{cert}", f"绑定 {cert} {name}"))
            return
        if action == "word":
            self.fire("word", *self.signer.text(self.talent()[1], rng.choice(TALENT_WORDS)))
            return
        if action == "signup" and upcoming:
            self.fire("signup", *self.signer.text(self.talent()[1], f"报名 {rng.choice(upcoming)}"))
            return
        if action == "activity_scan" and running:
            a = rng.choice(running)
            self.fire("activity_scan", *self.signer.scan(self.talent()[1], activity_scene(key, a, now)))
            return
        if action == "satisfaction" and ended:
            a = rng.choice(ended)
            score = rng.choice((5, 5, 4, 4, 3, 2, 1))
            self.fire("satisfaction", *self.signer.text(rng.choice(c.attendees[a]),
                                                        f"{score} {rng.choice(('很好', '有收获', '', '一般'))}"))
            return
        if action == "redeem" and c.gifts:
            self.fire("redeem", *self.signer.text(self.talent()[1], f"兑换 {rng.choice(c.gifts)}"))
            return
        if action == "publish" and self.publishing and c.operators:
            op, _ = rng.choice(c.operators)
            start = now + 120 + rng.randint(0, 60)
            end = start + 60 * rng.randint(2, 4)
            fmt = "%Y-%m-%d %H:%M"
            local = time.gmtime(start + 8 * 3600), time.gmtime(end + 8 * 3600)
            self.fire("publish", *self.signer.text(
                op, f"发布活动 压力测试沙龙{rng.randint(1, 999)}|{time.strftime(fmt, local[0])}|"
                    f"{time.strftime(fmt, local[1])}|{rng.choice((0, 30, 80))}|人才交流"))
            return
        if action == "operator" and c.operators:
            op, station = rng.choice(c.operators)
            own = [a for a, (st, _, _) in c.activities.items() if st == station]
            r = rng.random()
            if own and r < 0.35:
                self.fire("operator", *self.signer.text(
                    op, f"宣传 {rng.choice(own)} https://example.org/p/{rng.randint(1, 10**6)}"))
            elif own and r < 0.55:
                self.fire("operator", *self.signer.text(
                    op, f"报道 {rng.choice(own)} {rng.choice(MEDIA_LEVELS)} 泉州晚报 "
                        f"https://example.org/m/{rng.randint(1, 10**6)}"))
            else:
                self.fire("operator", *self.signer.text(op, rng.choice(OPERATOR_WORDS)))
            return
        if action == "admin" and c.admins:
            self.fire("admin", *self.signer.text(rng.choice(c.admins), rng.choice(ADMIN_WORDS)))
            return
        if action == "survey" and c.admins:
            sid, code = rng.choice(c.stations)
            if self.surveys[sid] < 20:
                self.surveys[sid] += 1
                year = time.gmtime(now + 8 * 3600).tm_year
                amount = rng.choice(("+1", "+2", "-1"))
                self.fire("survey", *self.signer.text(rng.choice(c.admins), f"调查 {code} {year} {amount} 满意度调查"))
                return
        # a station scan: each talent keeps to two stations (a third within 30 minutes is a fraud hold)
        tid, openid = self.talent()
        n = len(c.stations)
        _, code = c.stations[(tid if rng.random() < 0.6 else tid * 7 + 3) % n]
        self.fire("scan", *self.signer.scan(openid, station_scene(key, code, now,
                                                                   self.settings.station_code_rotation_s)))


# -- processes ------------------------------------------------------------------------------------------
class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: str) -> None:
        self.name, self.args, self.env, self.logdir = name, args, env, logdir
        self.gen = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        self.gen += 1
        log = open(os.path.join(self.logdir, f"{self.name}-{self.gen}.log"), "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "talenthome.cli", *self.args], env=self.env,
                                     cwd=self.logdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def cli(env: dict[str, str], *args: str, cwd: str) -> str:
    out = subprocess.run([sys.executable, "-m", "talenthome.cli", *args], env=env, cwd=cwd, capture_output=True,
                         text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"talenthome {' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout


async def wait_healthy(port: int, proc: Proc, seconds: float = 60) -> None:
    import aiohttp

    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            assert proc.proc is not None
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with code {proc.proc.returncode}")
            try:
                async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)  # polling with a deadline
    raise RuntimeError(f"bot not healthy after {seconds:.0f} s")


# -- the checks -----------------------------------------------------------------------------------------
async def wait_drained(sessions: Any, redis: Any, within: float) -> tuple[bool, float, dict[str, int]]:
    """Until no fact is left unapplied (every module's `unapplied`, as the sweeper asks), no board bump
    is pending and no due notification waits; returns (drained, seconds, what was left)."""
    from sqlalchemy import func, select

    from scoring import live
    from scoring.clock import utcnow
    from scoring.facts.kinds import MODULES
    from scoring.models import Notification

    t0 = time.monotonic()
    left: dict[str, int] = {}
    while time.monotonic() - t0 < within:
        left = {}
        try:
            now = utcnow()
            async with sessions() as s:
                for m in MODULES:
                    n = len(await m.unapplied(s, cutoff=now, now=now))
                    if n:
                        left[m.KIND] = n
                pending = int(await s.scalar(select(func.count()).select_from(Notification).where(
                    Notification.status == "pending", Notification.next_attempt_at <= now)) or 0)
                if pending:
                    left["outbox due"] = pending
            intents = int(await redis.zcard(live.INTENTS))
            if intents:
                left["intents"] = intents
            if not await live.is_built(redis):
                left["boards not built"] = 1
        except Exception as err:  # the database or Redis may still be coming back
            left = {f"error {type(err).__name__}": 1}
        if not left:
            return True, time.monotonic() - t0, {}
        await asyncio.sleep(2)  # polling with a deadline
    return False, time.monotonic() - t0, left


async def check_ledger(sessions: Any, redis: Any, since: Any) -> dict[str, Any]:
    """Exactly once, fact by fact, by SQL; boards against the ledger."""
    from sqlalchemy import text

    from scoring import live
    from scoring.facts import media
    from scoring.models import Activity

    out: dict[str, Any] = {}
    async with sessions() as s:
        async def rows(sql: str, **kw: Any) -> list[Any]:
            return list((await s.execute(text(sql), kw)).all())

        # Visits (station scans, operator scans, activity attendance): applied => exactly its two R3 legs
        # under its own credit key; unapplied => held by an open fraud flag, and no entry.
        vis = await rows("""
            SELECT v.id, v.applied_at IS NOT NULL AS applied, v.scanned_at >= :since AS new,
                   (SELECT COUNT(*) FROM entries e WHERE e.fact_kind = 'visit' AND e.fact_id = v.id
                      AND e.reverses_id IS NULL) AS n,
                   (SELECT COUNT(*) FROM entries e WHERE e.key IN ('visit:' || v.credit_key || '#station',
                      'visit:' || v.credit_key || '#talent') AND e.amount = 1) AS keyed,
                   (SELECT COUNT(*) FROM flags f WHERE f.visit_id = v.id AND f.hold AND f.status = 'open') AS held
            FROM visits v WHERE v.status = 'accepted'""", since=since)
        new = [r for r in vis if r.new]
        out["visits"] = {
            "accepted (soak)": len(new),
            "rejected (soak)": int((await rows("SELECT COUNT(*) FROM visits WHERE status = 'rejected' "
                                               "AND scanned_at >= :since", since=since))[0][0]),
            "applied with 2 entries": sum(1 for r in new if r.applied and r.n == 2 and r.keyed == 2),
            "held (open flag, 0 entries)": sum(1 for r in new if not r.applied and r.held and r.n == 0),
            "missing": sum(1 for r in vis if (r.applied and r.keyed < 2) or (not r.applied and not r.held)),
            "duplicate": sum(1 for r in vis if r.n > 2 or (not r.applied and r.n > 0)),
        }
        stray = await rows("""SELECT COUNT(*) FROM entries e WHERE e.fact_kind = 'visit' AND e.reverses_id IS NULL
            AND NOT EXISTS (SELECT 1 FROM visits v WHERE v.id = e.fact_id AND v.status = 'accepted'
              AND e.key IN ('visit:' || v.credit_key || '#station', 'visit:' || v.credit_key || '#talent'))""")
        out["visits"]["entries not matching their visit"] = int(stray[0][0])
        att = await rows("""SELECT COUNT(*), SUM(CASE WHEN v.status = 'accepted' THEN 1 ELSE 0 END)
            FROM attendances a LEFT JOIN visits v ON v.id = a.visit_id WHERE a.created_at >= :since""", since=since)
        out["attendances"] = {"recorded (soak)": int(att[0][0]), "with an accepted visit": int(att[0][1] or 0)}
        # Redemptions (G): applied => exactly one entry of minus the gift's cost; else none; none pending.
        red = await rows("""SELECT r.status, (SELECT COUNT(*) FROM entries e WHERE e.fact_kind = 'redemption'
              AND e.fact_id = r.id AND e.reverses_id IS NULL) AS n,
              (SELECT COUNT(*) FROM entries e WHERE e.key = 'redeem:' || CAST(r.id AS VARCHAR(20))
              AND e.amount = -g.cost) AS keyed
            FROM redemptions r JOIN gifts g ON g.id = r.gift_id WHERE r.created_at >= :since""", since=since)
        out["redemptions"] = {
            "applied": sum(1 for r in red if r.status == "applied"),
            "refused": sum(1 for r in red if r.status == "rejected"),
            "pending": sum(1 for r in red if r.status == "pending"),
            "missing": sum(1 for r in red if r.status == "applied" and r.keyed != 1),
            "duplicate": sum(1 for r in red if r.n > 1 or (r.status != "applied" and r.n > 0)),
        }
        neg = await rows("""SELECT COUNT(*) FROM (SELECT talent_id FROM entries WHERE talent_id IS NOT NULL
            GROUP BY talent_id HAVING SUM(amount) < 0) x""")
        out["redemptions"]["talents below zero"] = int(neg[0][0])
        # Survey results (R4): applied => exactly one entry; rejected => none; none pending.
        sur = await rows("""SELECT s.status, (SELECT COUNT(*) FROM entries e WHERE e.fact_kind = 'survey'
              AND e.fact_id = s.id AND e.reverses_id IS NULL) AS n FROM survey_results s
            WHERE s.created_at >= :since""", since=since)
        out["survey results"] = {
            "applied": sum(1 for r in sur if r.status == "applied"),
            "refused": sum(1 for r in sur if r.status == "rejected"),
            "pending": sum(1 for r in sur if r.status == "pending"),
            "missing": sum(1 for r in sur if r.status == "applied" and r.n != 1),
            "duplicate": sum(1 for r in sur if r.n > 1 or (r.status != "applied" and r.n > 0)),
        }
        cap = await rows("""SELECT COUNT(*) FROM (SELECT station_id FROM entries WHERE fact_kind = 'survey'
            GROUP BY station_id, rule HAVING ABS(SUM(amount)) > 50) x""")
        out["survey results"]["stations over the ±50 cap"] = int(cap[0][0])
        # Activities (R1) and media (R2): at most one host entry; media paid = the best report's points.
        acts = await rows("""SELECT a.id, a.ends_at, (SELECT COUNT(*) FROM entries e WHERE e.key =
              'host:' || CAST(a.id AS VARCHAR(20))) AS host
            FROM activities a WHERE a.published_at >= :since""", since=since)
        from scoring.clock import utcnow

        now = utcnow()
        media_bad = 0
        for a in acts:
            act = await s.get(Activity, a.id)
            if act is not None and media.took_place(act, now):
                o = await media.owed(s, a.id)
                media_bad += o.difference != 0
        reports = await rows("SELECT COUNT(*) FROM media_reports WHERE created_at >= :since", since=since)
        pubs = await rows("SELECT COUNT(*) FROM publicity_reports WHERE created_at >= :since", since=since)
        out["activities"] = {
            "published (soak)": len(acts), "ended": sum(1 for a in acts if a.ends_at <= now),
            "R1 paid": sum(1 for a in acts if a.host == 1), "R1 duplicate": sum(1 for a in acts if a.host > 1),
            "publicity reports": int(pubs[0][0]), "media reports": int(reports[0][0]),
            "media paid wrong (owed != paid)": media_bad,
        }
        sat = await rows("SELECT COUNT(*), SUM(CASE WHEN score <= 2 THEN 1 ELSE 0 END) FROM satisfactions "
                         "WHERE created_at >= :since", since=since)
        out["satisfaction"] = {"answers": int(sat[0][0]), "low (alerts)": int(sat[0][1] or 0)}
        dups = await rows("SELECT COUNT(*) FROM (SELECT key FROM entries GROUP BY key HAVING COUNT(*) > 1) x")
        kinds = await rows("SELECT fact_kind, COUNT(*), SUM(amount) FROM entries WHERE recorded_at >= :since "
                           "GROUP BY fact_kind ORDER BY fact_kind", since=since)
        out["ledger"] = {"duplicate keys": int(dups[0][0]),
                         **{f"{k} entries (soak)": f"{n} ({int(t or 0):+d} points)" for k, n, t in kinds}}
        dead = await rows("SELECT task, COUNT(*) FROM dead_letters WHERE resolved_at IS NULL GROUP BY task")
        out["dead letters"] = {k: int(n) for k, n in dead} or {"unresolved": 0}
        notes = await rows("SELECT status, COUNT(*) FROM notifications WHERE created_at >= :since "
                           "GROUP BY status", since=since)
        out["outbox"] = {str(k): int(n) for k, n in notes}
        drift = await live.compare(s, redis)
    out["boards"] = {"live lines differing from SQL": len(drift), "examples": [
        f"{d.board} #{d.account_id}: live {d.live and d.live[0]} sql {d.sql and d.sql[0]}" for d in drift[:5]]}
    return out


def pushes(fake: Any, t0: float) -> dict[str, Any]:
    """Messages the fake WeChat accepted, by endpoint, and any identical message delivered twice."""
    by: Counter[str] = Counter()
    bodies: Counter[str] = Counter()
    for r in fake.requests:
        if r.at < t0 or not r.delivered:
            continue
        by[r.path.rsplit("/", 1)[-1]] += 1
        if "qrcode" not in r.path:
            bodies[json.dumps(r.json, sort_keys=True, ensure_ascii=False)] += 1
    twice = sum(n - 1 for n in bodies.values() if n > 1)
    return {"delivered": dict(by), "identical message delivered again": twice,
            "requests": sum(1 for r in fake.requests if r.at >= t0)}


# -- RSS ------------------------------------------------------------------------------------------------
@dataclass
class Rss:
    samples: dict[str, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))

    def take(self, label: str, pid: int | None, t: float) -> None:
        if pid is None:
            return
        kib = rss_kib(pid)
        if kib:  # None or 0: the process is gone or exiting
            self.samples[label].append((t, kib))

    def summary(self, label: str, after: float) -> dict[str, Any] | None:
        pts = [(t, k) for t, k in self.samples.get(label, []) if t >= after and k > 0]
        if len(pts) < 2:
            return None
        vals = [k for _, k in pts]
        head = statistics.median(vals[:max(1, len(vals) // 10)])
        tail = statistics.median(vals[-max(1, len(vals) // 10):])
        return {"samples": len(vals), "min MB": min(vals) / 1024, "max MB": max(vals) / 1024,
                "last MB": vals[-1] / 1024, "first MB": vals[0] / 1024,
                "spread %": 100 * (max(vals) - min(vals)) / min(vals), "drift %": 100 * (tail - head) / head,
                "minutes": (pts[-1][0] - pts[0][0]) / 60}


def _shape(line: str) -> str:
    """A log line without its time, ids, keys and numbers, to count lines of one kind together."""
    return re.sub(r"[0-9a-f]{16,}|\d+", "N", line.split(": ", 1)[-1])[:110]


def log_findings(logdir: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in sorted(os.listdir(logdir)):
        if not name.endswith(".log"):
            continue
        with open(os.path.join(logdir, name), encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
        tb = sum(1 for ln in lines if ln.startswith("Traceback"))
        errors = Counter(_shape(ln) for ln in lines if " ERROR " in ln or " CRITICAL " in ln)
        warnings = Counter(_shape(ln) for ln in lines if " WARNING " in ln)
        found[name] = {"lines": len(lines), "tracebacks": tb, "errors": errors.most_common(6),
                       "warnings": warnings.most_common(6)}
    return found


def write_talents(path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["cert_no", "name", "phone", "category", "county"])
        for i in range(EXTRA_TALENTS):
            w.writerow([f"SK{i:06d}", f"测试人才{i}", f"139{i:08d}", "C", "鲤城区"])


# -- the run --------------------------------------------------------------------------------------------
async def soak(args: argparse.Namespace, folder: str, logdir: str, db_url: str, redis_server: RedisServer,
               pg: PostgresServer | None) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from scoring.clock import utcnow
    from scoring.db import make_engine, make_sessionmaker
    from scoring.settings import Settings
    from tests.fake_wechat import FakeWeChat

    fake = await FakeWeChat(appid=APPID, secret=SECRET).start()
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WECHAT_", "DATABASE_", "REDIS_", "BOT_", "ADMIN_", "ACTIVITY_"))}
    env |= {"DATABASE_URL": db_url, "REDIS_URL": redis_server.url, "WECHAT_TOKEN": TOKEN, "WECHAT_APPID": APPID,
            "WECHAT_SECRET": SECRET, "WECHAT_AES_KEY": AES_KEY, "WECHAT_API_BASE": fake.base_url,
            "WECHAT_TEMPLATE_NOTICE": "soak-template", "BOT_HOST": "127.0.0.1", "BOT_PORT": str(port),
            "ACTIVITY_LEAD_HOURS": "0", "VAR_DIR": os.path.join(folder, "var"), "PYTHONPATH": ROOT}
    t = time.monotonic()
    cli(env, "migrate", cwd=folder)
    print(f"  migrated ({time.monotonic() - t:.0f} s); building the demo city ...", flush=True)
    t = time.monotonic()
    cli(env, "demo", "--seed", str(args.seed), cwd=folder)
    extra = os.path.join(folder, "talents.csv")
    write_talents(extra)
    cli(env, "import-talents", extra, cwd=folder)
    print(f"  demo city and {EXTRA_TALENTS} unbound talents ({time.monotonic() - t:.0f} s)", flush=True)

    settings = Settings(_env_file=None, wechat_token=TOKEN, wechat_appid=APPID,  # type: ignore[call-arg]
                        wechat_secret=SECRET)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    redis = aioredis.from_url(redis_server.url)
    city = await load_city(sessions)
    print(f"  city: {len(city.stations)} stations, {len(city.talents)} bound talents, {len(city.unbound)} to bind, "
          f"{len(city.operators)} operators, {len(city.admins)} admins, {len(city.gifts)} gifts", flush=True)

    since = utcnow()
    t0 = time.monotonic()  # the fake WeChat stamps requests with time.monotonic()
    bot = Proc("bot", ["serve"], env, logdir)
    worker = Proc("worker", ["worker"], env, logdir)
    bot.start()
    worker.start()
    await wait_healthy(port, bot)
    stats = Stats()
    rss = Rss()
    rng = random.Random(args.seed)
    driver = Driver(port, city, settings, rng, stats)
    events: list[str] = []
    duration = args.minutes * 60
    start = time.monotonic()
    plan = [(duration / 3, "kill worker"), (duration / 2, "restart redis"), (2 * duration / 3, "restart postgres")]
    loads: list[float] = []

    def elapsed() -> float:
        return time.monotonic() - start

    def note(msg: str) -> None:
        line = f"{elapsed() / 60:5.1f} min  {msg}"
        events.append(line)
        print("  " + line, flush=True)

    async def sampler() -> None:
        while True:
            t = elapsed()
            rss.take("bot", bot.proc.pid if bot.proc else None, t)
            rss.take(f"worker#{worker.gen}", worker.proc.pid if worker.proc else None, t)
            loads.append(os.getloadavg()[0])
            await asyncio.sleep(args.sample_s)

    async def refresher() -> None:
        while True:
            try:
                await refresh_activities(sessions, city, since)
                if city.bind_next:
                    city.talents = (await load_city(sessions)).talents
            except Exception as err:  # the database is being restarted
                note(f"driver could not read the city: {type(err).__name__}")
            await asyncio.sleep(10)

    async def supervisor() -> None:
        """What systemd does for the units in deploy/systemd (Restart=on-failure, RestartSec=2)."""
        while True:
            await asyncio.sleep(1)
            for p in (bot, worker):
                if p.proc is not None and p.proc.poll() is not None:
                    note(f"{p.name} (pid {p.proc.pid}) exited with code {p.proc.returncode}; restarting it in 2 s "
                         "(as systemd's Restart=on-failure would)")
                    await asyncio.sleep(2)
                    p.start()

    async def chaos() -> None:
        for at, what in plan:
            await asyncio.sleep(max(0.0, at - elapsed()))
            if what == "kill worker":
                pid = worker.proc.pid if worker.proc else None
                worker.kill()
                note(f"worker (pid {pid}) SIGKILLed; starting a new one")
                worker.start()
            elif what == "restart redis":
                redis_server.stop()
                stats.phase = "redis down"
                note(f"Redis stopped (no persistence: it comes back empty); down for {args.redis_down:g} s")
                await asyncio.sleep(args.redis_down)
                redis_server.start(persist=False)
                stats.phase = "normal"
                note("Redis started again, empty")
            elif what == "restart postgres":
                if pg is None:
                    note("(SQLite: no database server to restart)")
                    continue
                stats.phase = "postgres down"
                note(f"PostgreSQL stopping (pg_ctl stop -m fast); down for {args.db_down:g} s")
                await asyncio.to_thread(restart_postgres, pg, args.db_down)
                stats.phase = "normal"
                note("PostgreSQL started again")

    bg = [asyncio.ensure_future(x) for x in (sampler(), refresher(), chaos(), supervisor())]
    try:
        return await run_traffic(args, driver, stats, rss, bot, worker, city, sessions, redis, since, fake, t0,
                                 bg, events, loads, note, elapsed, logdir)
    finally:
        for task in bg:
            task.cancel()
        bot.stop()
        worker.stop()
        await redis.aclose()
        await engine.dispose()
        await fake.close()


async def run_traffic(args: argparse.Namespace, driver: Driver, stats: Stats, rss: Rss, bot: Proc, worker: Proc,
                      city: City, sessions: Any, redis: Any, since: Any, fake: Any, t0: float,
                      bg: list[asyncio.Future[None]], events: list[str], loads: list[float], note: Any,
                      elapsed: Any, logdir: str) -> dict[str, Any]:
    import aiohttp

    duration = args.minutes * 60
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
        driver.session = session
        interval = 1.0 / args.rate
        next_at = time.monotonic()
        last_report = 0.0
        while elapsed() < duration:
            driver.publishing = duration - elapsed() > 6 * 60 or args.minutes <= 6
            driver.one()
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the steady rate
            else:
                next_at = time.monotonic()
            if elapsed() - last_report >= 60:
                last_report = elapsed()
                b = rss.samples["bot"][-1][1] / 1024 if rss.samples["bot"] else 0
                wl = rss.samples.get(f"worker#{worker.gen}")
                w = wl[-1][1] / 1024 if wl else 0
                note(f"{sum(stats.sent.values()):,} callbacks sent, in flight {len(driver.tasks)}; RSS bot {b:.0f} MB, "
                     f"worker {w:.0f} MB; load {loadavg()}")
        if driver.tasks:
            await asyncio.wait(driver.tasks, timeout=30)
        stats.unsent = len(driver.tasks)
        for task in list(driver.tasks):
            task.cancel()
        if driver.tasks:
            await asyncio.wait(driver.tasks, timeout=10)
    for task in bg[1:3]:
        task.cancel()
    note(f"traffic stopped: {sum(stats.sent.values()):,} callbacks sent, {sum(stats.dropped.values()):,} dropped by "
         f"the driver (backlog full), {stats.unsent} cancelled in its queue; waiting for the queue to drain")
    # Activities still running are left to end; then everything must settle (the sweeper runs every minute).
    last_end = max((en for _, _, en in city.activities.values()), default=0)
    wait_end = max(0.0, last_end - now_s() + 5)
    if wait_end and wait_end < 600:
        note(f"waiting {wait_end:.0f} s for the last activity to end")
        await asyncio.sleep(wait_end)
    drained, drain_s, left = await wait_drained(sessions, redis, args.drain_s)
    note(f"drained: {drained} after {drain_s:.0f} s {left or ''}")
    bg[0].cancel()
    bg[3].cancel()
    bot_rc, worker_rc = bot.stop(), worker.stop()
    note(f"bot stopped (exit {bot_rc}), worker stopped (exit {worker_rc})")
    checks = await check_ledger(sessions, redis, since)
    sent = pushes(fake, t0)
    warm = args.warmup_minutes * 60
    rss_out = {"bot": rss.summary("bot", warm)}
    for label in sorted(k for k in rss.samples if k.startswith("worker#")):
        first, last = rss.samples[label][0][0], rss.samples[label][-1][0]
        if last - first >= 60:  # not the restarts that found Redis still down
            rss_out[label] = rss.summary(label, max(warm, first + warm))
    return {"stats": stats, "events": events, "drained": (drained, drain_s, left), "checks": checks,
            "pushes": sent, "rss": rss_out, "logs": log_findings(logdir), "load": loads,
            "exit": (bot_rc, worker_rc), "city": city}


def lat_ms(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))]


def report(r: dict[str, Any], args: argparse.Namespace, info: dict[str, str], command: str, logdir: str) -> str:
    from bench.common import format_table

    st: Stats = r["stats"]
    rows = []
    for action in sorted(st.sent, key=lambda a: -st.sent[a]):
        oc = st.outcome[action]
        replies = ", ".join(f"{k} {n}" for k, n in st.replies[action].most_common(4))
        rows.append([action, st.sent[action], st.dropped[action], oc.get("ok", 0), oc.get("5xx", 0),
                     sum(n for k, n in oc.items() if k not in ("ok", "5xx")),
                     f"{lat_ms(st.latency[action], 0.5):.0f} / {lat_ms(st.latency[action], 0.99):.0f}", replies])
    traffic = format_table(["callback", "sent", "dropped", "200", "5xx", "other", "p50 / p99 ms",
                            "replies (most common)"],
                           rows)
    phases = "; ".join(f"{ph}: " + ", ".join(f"{k} {n}" for k, n in c.most_common(5))
                       for ph, c in st.by_phase.items() if ph != "normal")
    rss_rows = []
    for label, s in r["rss"].items():
        if s is None:
            rss_rows.append([label, "-", "-", "-", "-", "-", "(too short after warm-up)"])
            continue
        ok = "yes" if s["spread %"] <= 10 else "no"
        rss_rows.append([label, f"{s['minutes']:.1f}", f"{s['min MB']:.1f}", f"{s['max MB']:.1f}",
                         f"{s['last MB']:.1f}", f"{s['drift %']:+.1f}% (spread {s['spread %']:.1f}%)", ok])
    rss_table = format_table(["process", "minutes sampled", "min MB", "max MB", "last MB",
                              "drift first->last tenth", "flat (spread <= 10%)"], rss_rows)
    checks = "\n".join(f"- **{k}**: " + (", ".join(f"{a} {b}" for a, b in v.items()) if isinstance(v, dict) else str(v))
                       for k, v in r["checks"].items())
    logs = "\n".join(f"- `{name}`: {v['lines']} lines, {v['tracebacks']} tracebacks"
                     + (f"; errors: {'; '.join(f'{m} (x{n})' for m, n in v['errors'])}" if v["errors"] else "")
                     + (f"; warnings: {'; '.join(f'{m} (x{n})' for m, n in v['warnings'][:3])}"
                        if v["warnings"] else "")
                     for name, v in r["logs"].items())
    drained, drain_s, left = r["drained"]
    loads = r["load"]
    load_s = (f"{statistics.mean(loads):.1f} mean, {max(loads):.1f} max" if loads else "?")
    machine = ", ".join(f"{k} {v}" for k, v in info.items())
    events = "\n".join(f"    {e}" for e in r["events"])
    left_s = f"; left: {left}" if left else ""
    return f"""Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{command}` on: {machine}.
One-minute load average during the run: {load_s} (on {info.get('nproc', '?')} cores, shared with other work).

Real processes: `talenthome serve` (the bot) and `talenthome worker`, on {args.db} (a throwaway
{'cluster, fsync off' if args.db == 'postgresql' else 'file'}) and a throwaway Redis without persistence,
a city from `talenthome demo --seed {args.seed}` plus {EXTRA_TALENTS:,} unbound talents (`import-talents`),
the tests' fake WeChat API on loopback. {args.rate:g} signed, encrypted (safe mode) callbacks per second for
{args.minutes:g} minutes from many openids; each talent scans at two stations (a third within 30 minutes is
a fraud hold); operators publish short activities (starting in 2-3 minutes, 2-4 minutes long;
`ACTIVITY_LEAD_HOURS=0` so R1 pays), talents sign up, scan the activity code while it runs and answer the
satisfaction invitation afterwards; "retry" re-sends a recent callback byte for byte (WeChat's retry).
Faults injected: at 1/3 the worker is SIGKILLed and a new one started, at 1/2 Redis is stopped and started
again empty after {args.redis_down:g} s, at 2/3 PostgreSQL is stopped (`pg_ctl stop -m fast`) and started
again after {args.db_down:g} s. Timeline:

{events}

{traffic}

During the faults: {phases or '-'}.

After the traffic stopped the queue drained: {'yes' if drained else 'NO'} ({drain_s:.0f} s{left_s}).
Checked by SQL after both processes stopped (facts of the soak; "missing" and "duplicate" must be 0):

{checks}
- **pushes** (fake WeChat): {r['pushes']}

RSS, sampled every {args.sample_s:g} s (`/proc/<pid>/status` VmRSS) after a warm-up of {args.warmup_minutes:g}
minutes (for the second worker, from {args.warmup_minutes:g} minutes after its start):

{rss_table}

Logs (kept in `{logdir}`):

{logs}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--rate", type=float, default=15.0, help="callbacks per second (default 15)")
    ap.add_argument("--warmup-minutes", type=float, default=None, help="default: 5, or a sixth of a shorter run")
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--redis-down", type=float, default=5.0)
    ap.add_argument("--db-down", type=float, default=15.0)
    ap.add_argument("--drain-s", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--write", action="store_true", help='replace the "## Soak" section of BENCHMARKS.md')
    args = ap.parse_args()
    if args.warmup_minutes is None:
        args.warmup_minutes = min(5.0, args.minutes / 6)
    stop_on_sigterm()
    info = machine_info()
    print("machine:")
    print_machine(info)
    command = "python bench/soak.py" + "".join(f" {a}" for a in sys.argv[1:])
    logdir = f"/tmp/talenthome-soak-logs-{time.strftime('%Y%m%d-%H%M%S')}"
    os.makedirs(logdir, exist_ok=True)
    with temp_dir("talenthome-soak-") as folder:
        redis_server = RedisServer(os.path.join(folder, "redis")).start(persist=False)
        pg = None
        try:
            if args.db == "postgresql":
                pg = PostgresServer(os.path.join(folder, "pg"))
                os.makedirs(pg.folder, exist_ok=True)
                os.chmod(pg.folder, 0o755)
                pg.start()
                db_url = asyncio.run(create_pg_database(pg, "soak"))
            else:
                db_url = f"sqlite+aiosqlite:///{os.path.join(folder, 'soak.db')}"
            result = asyncio.run(soak(args, folder, logdir, db_url, redis_server, pg))
        finally:
            redis_server.stop()
            if pg is not None:
                pg.stop()
    with open(os.path.join(logdir, "result.json"), "w", encoding="utf-8") as fh:  # kept whatever the report does
        json.dump({k: v for k, v in result.items() if k in ("events", "drained", "checks", "pushes", "rss", "logs",
                                                             "exit")}, fh, default=str, ensure_ascii=False, indent=1)
    body = report(result, args, info, command, logdir)
    print()
    print(body)
    with open(os.path.join(logdir, "summary.md"), "w", encoding="utf-8") as fh:
        fh.write(body)
    if args.write:
        replace_section(os.path.join(ROOT, "BENCHMARKS.md"), HEADING, body)
        print(f"BENCHMARKS.md: section {HEADING!r} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
