"""A province in one run (issue 14): a PostgreSQL ledger of 10,000 stations, 1,000,000 talents and
10,000,000 entries over two years, generated with COPY, checked, then measured through the product's own
code paths.

Generation (asyncpg's COPY, the project's PostgreSQL driver): the schema comes from the real migrations
(`scoring.migrate.upgrade`); rows are those the domain would have written: stations in Quanzhou's districts
with stars and certification dates (a few certified in 2024 and 2025), talents A-E with bound WeChat
accounts (90 %), an operator per station, activities with publicity reports, their attendances (each an
R3 visit at the activity's station), station and operator scans, and the ledger: R3's two legs per
accepted visit (`visit:{talent}:{station}:{local day}#station|#talent`, rule R3@1) and R1's `host:{id}`
(+5, R1@1) for each activity that met its conditions. 24 local (Asia/Shanghai) months, 2024-12 to 2026-11;
ids rise with time. The big tables' secondary indexes and constraints are dropped during COPY and
recreated from their own definitions afterwards; then VACUUM ANALYZE.

Checks: row counts, every entry has its fact and every accepted visit exactly its two legs with the
credit-key shape, station and talent legs agree, the sweepers (`visit.unapplied`, `activity.unapplied`) find
nothing to apply, and after the worker's run `scoring.live.compare` finds no drift between Redis and SQL.

Measures: the boards from SQL (scoring.boards) and Redis (scoring.live), `talenthome rebuild-boards` and
the Redis memory it takes, the month close and the annual rating (in-process, rolled back so a kept
cluster can be measured again), `talenthome export`, the API's board endpoint on `talenthome serve`, and
the bot's and the worker's peak RSS (VmHWM) under load. EXPLAIN ANALYZE of the heavy aggregates is saved.

    .venv/bin/python bench/scale.py --scale 0.01                     # 100 stations, 10,000 talents, 100,000 entries
    .venv/bin/python bench/scale.py --keep /var/tmp/province --write # full size; keeps the cluster for reruns
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from itertools import accumulate
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.common import (  # noqa: E402
    format_table,
    kept_postgres,
    machine_info,
    print_machine,
    replace_section,
    run_measured,
    stop_on_sigterm,
    temp_dir,
    vm_hwm_kib,
)
from scoring import periods  # noqa: E402
from scoring.periods import Period  # noqa: E402
from talenthome.servers import RedisServer, free_port, server_env  # noqa: E402

HEADING = "## Province"
FIRST_MONTH = (2024, 12)
MONTHS = 24
MONTH_KEY = "2026-11"  # the last generated month: closed, exported, the month board
YEAR_KEY = "2026"
RATE_YEAR = 2025
# The boards are read as of noon on 30 November 2026, local: the generated data's "now".
REF_NOW = periods.to_utc_naive(datetime(2026, 11, 30, 12, 0))
TYPES = ("comprehensive", "industry", "professional", "service")
DISTRICTS = ("鲤城区", "丰泽区", "洛江区", "泉港区", "晋江市", "石狮市", "南安市", "惠安县", "安溪县", "永春县",
             "德化县")
ACT_CATEGORIES = ("lecture", "seminar", "culture", "salon", "other")
PG_OPTIONS = "-c shared_buffers=2GB -c work_mem=64MB -c maintenance_work_mem=1GB -c max_wal_size=8GB " \
             "-c checkpoint_timeout=30min -c effective_cache_size=8GB"
BIG_TABLES = ("entries", "visits", "attendances")
WORKER_NOTE_SCANS = "5,000 visits of the day of the run, 10,000 entries"

COLS = {
    "stations": ("id", "code", "name", "kind", "type", "county", "certified_on", "eligible_from", "stars", "status",
                 "demotion_streak", "address", "opening_hours", "kiosk_key_version", "created_at", "updated_at"),
    "talents": ("id", "cert_no", "name", "phone", "category", "county", "openid", "bound_at", "created_at"),
    "staff": ("id", "openid", "role", "station_id", "active", "created_at"),
    "extensions": ("id", "station_id", "year", "days", "reason", "granted_by", "created_at"),
    "activities": ("id", "station_id", "title", "theme", "starts_at", "ends_at", "capacity", "published_at",
                   "published_by", "status", "reminded_at", "invited_at", "category"),
    "publicity_reports": ("id", "activity_id", "url", "uploaded_by", "created_at"),
    "visits": ("id", "openid", "talent_id", "station_id", "activity_id", "source", "scanned_at", "local_day",
               "status", "reason", "credit_key", "operator_openid", "applied_at"),
    "attendances": ("id", "activity_id", "talent_id", "visit_id", "created_at"),
    "entries": ("id", "key", "station_id", "talent_id", "amount", "rule", "fact_kind", "fact_id", "occurred_at",
                "recorded_at", "reverses_id", "actor", "reason"),
}


class Sizes:
    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.stations = max(20, round(10_000 * scale))
        self.talents = max(200, round(1_000_000 * scale))
        self.entries = max(2_000, round(10_000_000 * scale))
        self.activities_per_month = max(5, round(10_000 * scale))

    def as_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "stations": self.stations, "talents": self.talents, "entries": self.entries,
                "activities_per_month": self.activities_per_month}


def openid(talent_id: int) -> str:
    return f"oTH{talent_id:025d}"


def operator_openid(station_id: int) -> str:
    return f"oOP{station_id:025d}"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- generation ------------------------------------------------------------------------------------------------


def month_keys() -> list[str]:
    y, m = FIRST_MONTH
    out = []
    for _ in range(MONTHS):
        out.append(f"{y}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def certified_on(sid: int, n: int, rng: random.Random) -> date:
    """93 % certified 2018-2023, 4 % in 2024 (before December), 3 % in 2025 (new that year)."""
    if sid <= 0.93 * n:
        return date(rng.randint(2018, 2023), rng.randint(1, 12), rng.randint(1, 28))
    if sid <= 0.97 * n:
        return date(2024, rng.randint(1, 11), rng.randint(1, 28))
    return date(2025, rng.randint(1, 12), rng.randint(1, 28))


class Generator:
    def __init__(self, sizes: Sizes, seed: int = 14) -> None:
        self.n = sizes
        self.rng = random.Random(seed)
        rng = self.rng
        self.certified = {sid: certified_on(sid, sizes.stations, rng) for sid in range(1, sizes.stations + 1)}
        self.n_old = int(0.93 * sizes.stations)
        weights = [rng.lognormvariate(0, 1.0) for _ in range(sizes.stations)]
        self.cum = list(accumulate(weights))
        self.visit_id = 0
        self.entry_id = 0
        self.activity_id = 0
        self.report_id = 0
        self.attendance_id = 0

    def station(self, day: date) -> int:
        """A station drawn by its weight (busy ones get more), certified on or before `day`."""
        sid = bisect_left(self.cum, self.rng.random() * self.cum[-1]) + 1
        if self.certified[sid] > day:
            sid = sid % self.n_old + 1
        return sid

    def talent(self) -> int:
        """A bound talent (ids ending in 0 are unbound), skewed: low ids are the keen ones."""
        t = 1 + int(self.n.talents * self.rng.random() ** 1.6)
        t = min(t, self.n.talents)
        return t - 1 if t % 10 == 0 else t

    def stations(self) -> list[tuple[Any, ...]]:
        rng = self.rng
        stamp = datetime(2024, 11, 1)
        rows = []
        for sid in range(1, self.n.stations + 1):
            cert = self.certified[sid]
            rows.append((sid, f"QZ{sid:05d}", f"人才之家{sid:05d}", "home" if sid % 3 else "community",
                         TYPES[sid % 4], DISTRICTS[sid % len(DISTRICTS)], cert, periods.eligible_from(cert),
                         rng.choice((1, 2, 3, 3, 3, 4, 4, 5)), "active", 0, f"泉州市{DISTRICTS[sid % 11]}{sid}号",
                         "09:00-17:30", 1, stamp, stamp))
        return rows

    def talents(self, lo: int, hi: int) -> list[tuple[Any, ...]]:
        rng = self.rng
        rows = []
        created = datetime(2024, 1, 1)
        for t in range(lo, hi):
            bound = t % 10 != 0
            category = "ABCDE"[min(4, int(rng.random() ** 0.7 * 5))]
            rows.append((t, f"QZRC{t:09d}", f"人才{t}", f"139{t:08d}"[-11:], category, DISTRICTS[t % 11],
                         openid(t) if bound else None,
                         created + timedelta(days=rng.randint(0, 330)) if bound else None, created))
        return rows

    def staff(self) -> list[tuple[Any, ...]]:
        stamp = datetime(2024, 11, 1)
        rows: list[tuple[Any, ...]] = [(sid, operator_openid(sid), "operator", sid, True, stamp)
                                       for sid in range(1, self.n.stations + 1)]
        rows += [(self.n.stations + i, f"oADMIN{i:022d}", "admin", None, True, stamp) for i in range(1, 4)]
        return rows

    def extensions(self) -> list[tuple[Any, ...]]:
        """A few stations had their 2025 window extended by 10 days (SPEC 3)."""
        step = max(1, self.n.stations // 20)
        return [(i + 1, sid, RATE_YEAR, 10, "bench", "oADMIN", datetime(2025, 12, 20))
                for i, sid in enumerate(range(7, self.n_old, step))]

    def month(self, key: str, entry_target: int) -> dict[str, list[tuple[Any, ...]]]:
        """One local month's facts and entries, in time order (ids rising with time)."""
        rng = self.rng
        start, end = Period("month", key).bounds()
        assert start is not None and end is not None
        first = date(int(key[:4]), int(key[5:]), 1)
        days = (periods.local_day(end - timedelta(seconds=1)) - first).days + 1
        seen: set[int] = set()
        ns = self.n.stations

        def fresh(t: int, s: int, day: date) -> bool:
            k = (t * (ns + 1) + s) * 32 + day.day
            if k in seen:
                return False
            seen.add(k)
            return True

        acts = []
        for _ in range(self.n.activities_per_month):
            d = rng.randrange(days)
            day = first + timedelta(days=d)
            starts = start + timedelta(days=d, hours=9 + rng.randrange(9))
            acts.append((starts, self.station(day), day))
        acts.sort()
        activities, reports, r1 = [], [], []
        visits: list[tuple[Any, ...]] = []  # (scanned_at, talent, station, activity, source, day)
        for starts, sid, day in acts:
            self.activity_id += 1
            aid = self.activity_id
            ends = starts + timedelta(hours=2)
            published = starts - timedelta(hours=rng.uniform(6, 240))
            activities.append((aid, sid, f"活动{aid}", "", starts, ends, rng.choice((None, 30, 50, 100)), published,
                               operator_openid(sid), "published", starts - timedelta(hours=2),
                               ends + timedelta(minutes=1),  # invited_at: the worker invites at the end
                               rng.choice(ACT_CATEGORIES)))
            attended = 0
            for _ in range(rng.randint(0, 16)):
                t = self.talent()
                if fresh(t, sid, day):
                    visits.append((starts + timedelta(minutes=rng.uniform(-20, 110)), t, sid, aid, "activity", day))
                    attended += 1
            if rng.random() < 0.85:
                self.report_id += 1
                reports.append((self.report_id, aid, f"https://mp.weixin.qq.com/s/bench{aid}", operator_openid(sid),
                                ends + timedelta(hours=1)))
                if attended and published <= starts - timedelta(hours=24):
                    r1.append((ends + timedelta(hours=1), aid, sid, ends))
        n_visits = (entry_target - len(r1)) // 2 - len(visits)
        while n_visits > 0:
            d = rng.randrange(days)
            day = first + timedelta(days=d)
            s, t = self.station(day), self.talent()
            if fresh(t, s, day):
                at = start + timedelta(days=d, hours=8, seconds=rng.uniform(0, 12 * 3600))
                visits.append((at, t, s, None, "operator" if rng.random() < 0.2 else "station", day))
                n_visits -= 1
        visits.sort(key=lambda v: v[0])
        visit_rows, attendance_rows, legs = [], [], []
        r3 = "R3@1"
        for at, t, s, aid, source, day in visits:
            self.visit_id += 1
            vid = self.visit_id
            ck = f"{t}:{s}:{day.isoformat()}"
            applied = at + timedelta(seconds=2)
            visit_rows.append((vid, openid(t), t, s, aid, source, at, day, "accepted", None, ck,
                               operator_openid(s) if source == "operator" else None, applied))
            if aid is not None:
                self.attendance_id += 1
                attendance_rows.append((self.attendance_id, aid, t, vid, at))
            legs.append((applied, f"visit:{ck}#station", s, None, 1, r3, "visit", vid, at))
            legs.append((applied, f"visit:{ck}#talent", None, t, 1, r3, "visit", vid, at))
        legs += [(rec, f"host:{aid}", sid, None, 5, "R1@1", "activity", aid, ends) for rec, aid, sid, ends in r1]
        legs.sort(key=lambda e: e[0])
        entries = []
        for rec, k, sid, tid, amount, rule, kind, fact, occurred in legs:
            self.entry_id += 1
            entries.append((self.entry_id, k, sid, tid, amount, rule, kind, fact, occurred, rec, None, None, None))
        return {"activities": activities, "publicity_reports": reports, "visits": visit_rows,
                "attendances": attendance_rows, "entries": entries}


async def pg_connect(port: int, database: str = "province") -> Any:
    import asyncpg

    return await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=database)


async def drop_secondary(conn: Any, table: str) -> list[str]:
    """Drop the table's UNIQUE and FOREIGN KEY constraints and plain indexes (not the primary key); return the
    statements that recreate them, from PostgreSQL's own definitions."""
    cons = await conn.fetch("SELECT conname, contype::text AS contype, pg_get_constraintdef(oid) AS def "
                            "FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('u', 'f')", table)
    idx = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 AND indexname NOT IN "
                           "(SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass)", table)
    restore = [f'ALTER TABLE {table} ADD CONSTRAINT "{c["conname"]}" {c["def"]}' for c in cons if c["contype"] == "u"]
    restore += [i["indexdef"] for i in idx]
    restore += [f'ALTER TABLE {table} ADD CONSTRAINT "{c["conname"]}" {c["def"]}' for c in cons if c["contype"] == "f"]
    for c in sorted(cons, key=lambda c: c["contype"]):  # f before u
        await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{c["conname"]}"')
    for i in idx:
        await conn.execute(f'DROP INDEX "{i["indexname"]}"')
    return restore


async def generate(port: int, sizes: Sizes) -> dict[str, float]:
    from scoring.migrate import upgrade

    times: dict[str, float] = {}
    conn = await pg_connect(port, "postgres")
    await conn.execute('CREATE DATABASE "province"')
    await conn.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/province"
    t0 = time.perf_counter()
    await asyncio.to_thread(upgrade, url)
    times["migrate"] = time.perf_counter() - t0
    conn = await pg_connect(port)
    try:
        restore = []
        for table in BIG_TABLES:
            restore += await drop_secondary(conn, table)
        gen = Generator(sizes)
        t0 = time.perf_counter()

        async def copy(table: str, rows: list[tuple[Any, ...]]) -> None:
            if rows:
                await conn.copy_records_to_table(table, records=rows, columns=list(COLS[table]))

        await copy("stations", gen.stations())
        for lo in range(1, sizes.talents + 1, 200_000):
            await copy("talents", gen.talents(lo, min(sizes.talents + 1, lo + 200_000)))
        await copy("staff", gen.staff())
        await copy("extensions", gen.extensions())
        keys = month_keys()
        per_month = sizes.entries // MONTHS
        for i, key in enumerate(keys):
            target = per_month if i < MONTHS - 1 else sizes.entries - gen.entry_id
            m = gen.month(key, target)
            for table in ("activities", "publicity_reports", "visits", "attendances", "entries"):
                await copy(table, m[table])
            print(f"    {key}: {len(m['visits']):,} visits, {len(m['entries']):,} entries "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        times["copy"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for stmt in restore:
            await conn.execute(stmt)
        times["indexes"] = time.perf_counter() - t0
        for table in COLS:
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT coalesce(max(id), 1) FROM {table}))")
        t0 = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        times["vacuum_analyze"] = time.perf_counter() - t0
    finally:
        await conn.close()
    return times


# -- checks ------------------------------------------------------------------------------------------------------


CHECKS = {
    "entries without their fact": """
        SELECT count(*) FROM entries e WHERE NOT EXISTS (
          SELECT 1 FROM visits v WHERE e.fact_kind = 'visit' AND v.id = e.fact_id
          UNION ALL SELECT 1 FROM activities a WHERE e.fact_kind = 'activity' AND a.id = e.fact_id)""",
    "accepted visits without exactly their two R3 legs (key shape, accounts, amount)": """
        SELECT count(*) FROM (
          SELECT v.id FROM visits v LEFT JOIN entries e ON e.fact_kind = 'visit' AND e.fact_id = v.id
            AND e.rule = 'R3@1' AND e.amount = 1 AND e.occurred_at = v.scanned_at
            AND ((e.key = 'visit:' || v.credit_key || '#station' AND e.station_id = v.station_id)
              OR (e.key = 'visit:' || v.credit_key || '#talent' AND e.talent_id = v.talent_id))
          WHERE v.status = 'accepted' GROUP BY v.id HAVING count(e.id) <> 2) x""",
    "attendances whose visit is not at the activity's station": """
        SELECT count(*) FROM attendances t JOIN visits v ON v.id = t.visit_id JOIN activities a ON a.id = t.activity_id
        WHERE v.station_id <> a.station_id OR v.talent_id <> t.talent_id OR v.activity_id <> a.id""",
    "R1 entries of activities that fail R1 (lead, attendee, publicity)": """
        SELECT count(*) FROM entries e JOIN activities a ON a.id = e.fact_id WHERE e.fact_kind = 'activity' AND (
          a.published_at > a.starts_at - interval '24 hours'
          OR NOT EXISTS (SELECT 1 FROM attendances t WHERE t.activity_id = a.id)
          OR NOT EXISTS (SELECT 1 FROM publicity_reports p WHERE p.activity_id = a.id))""",
    "station legs minus talent legs of R3": """
        SELECT coalesce(sum(CASE WHEN station_id IS NOT NULL THEN amount ELSE -amount END), 0)
        FROM entries WHERE rule = 'R3@1'""",
    "entries on a station before its certification": """
        SELECT count(*) FROM entries e JOIN stations s ON s.id = e.station_id
        WHERE e.occurred_at < s.certified_on::timestamp - interval '8 hours'""",
}


async def check(port: int, sessions: Any) -> tuple[dict[str, int], list[tuple[str, int, float]]]:
    from scoring.facts import activity, visit

    conn = await pg_connect(port)
    counts = {}
    try:
        for table in COLS:
            counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        results = []
        for label, sql in CHECKS.items():
            t0 = time.perf_counter()
            n = int(await conn.fetchval(sql))
            results.append((label, n, time.perf_counter() - t0))
    finally:
        await conn.close()
    now = REF_NOW + timedelta(days=2)
    async with sessions() as s:
        for label, fn in (("visits the sweeper would apply (visit.unapplied)", visit.unapplied),
                          ("activities the sweeper would pay R1 (activity.unapplied)", activity.unapplied)):
            t0 = time.perf_counter()
            n = len(await fn(s, cutoff=now, now=now))
            results.append((label, n, time.perf_counter() - t0))
    return counts, results


EXPLAINS = {
    "station month board (scoring.boards.station_sums, month)": (
        "SELECT station_id, sum(amount), max(occurred_at) FROM entries WHERE station_id IS NOT NULL "
        "AND occurred_at >= $1 AND occurred_at < $2 GROUP BY station_id", "month"),
    "talent total board (scoring.boards.talent_board, total)": (
        "SELECT talent_id, sum(amount), max(occurred_at) FROM entries WHERE talent_id IS NOT NULL "
        "AND fact_kind <> 'redemption' GROUP BY talent_id", None),
    "rebuild: station months (scoring.live.read_snapshot)": (
        "SELECT station_id, to_char(occurred_at + interval '8 hours', 'YYYY-MM'), sum(amount), max(occurred_at) "
        "FROM entries WHERE station_id IS NOT NULL GROUP BY 1, 2", None),
    "rebuild: talent years (scoring.live.read_snapshot)": (
        "SELECT talent_id, to_char(occurred_at + interval '8 hours', 'YYYY'), sum(amount), max(occurred_at) "
        "FROM entries WHERE talent_id IS NOT NULL AND fact_kind <> 'redemption' GROUP BY 1, 2", None),
}


async def explain(port: int, out_path: str) -> list[tuple[str, str, float]]:
    conn = await pg_connect(port)
    summary = []
    text = []
    try:
        for label, (sql, bounds) in EXPLAINS.items():
            args = Period("month", MONTH_KEY).bounds() if bounds else ()
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
            lines = [r[0] for r in rows]
            text.append(f"-- {label}\n{sql}\n" + "\n".join(lines) + "\n\n")
            ms = float(next(ln for ln in lines if ln.startswith("Execution Time")).split()[2])
            top = next((ln.strip() for ln in lines if "Scan" in ln), lines[0].strip())
            summary.append((label, top.split("  (")[0].lstrip("-> "), ms))
    finally:
        await conn.close()
    await asyncio.to_thread(write_text, out_path, "".join(text))
    return summary


def write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


# -- measuring ---------------------------------------------------------------------------------------------------


async def timed_median(fn: Callable[[], Awaitable[Any]], quick_s: float = 3.0, repeat: int = 3) -> tuple[float, Any]:
    """Seconds of `fn` (the first call; when it is fast, the median of `repeat` more) and its result."""
    t0 = time.perf_counter()
    result = await fn()
    first = time.perf_counter() - t0
    if first > quick_s:
        return first, result
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), result


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mib(kib: float | None) -> str:
    return "?" if kib is None else f"{kib / 1024:,.0f} MiB"


async def measure_boards(sessions: Any, redis: Any, sizes: Sizes) -> list[tuple[str, str, str, str]]:
    from scoring import boards, live

    rows = []
    station_id = 1  # a busy, old station
    talent_id = 1
    periods_ = [("total", Period("total", "all")), ("year", Period("year", YEAR_KEY)),
                ("month", Period("month", MONTH_KEY))]
    for name, p in periods_:
        async def sql_station(p: Period = p) -> Any:
            async with sessions() as s:
                board = await boards.station_board(s, p, now=REF_NOW)
            return board[:50], next((r.rank for r in board if r.standing.id == station_id), None)

        async def live_station(p: Period = p) -> Any:
            async with sessions() as s:
                return await live.station_board(s, redis, p, now=REF_NOW)

        async def live_own(p: Period = p) -> Any:
            async with sessions() as s:
                return await live.station_standing(s, redis, station_id, p, now=REF_NOW)

        sec, (top, own) = await timed_median(sql_station)
        sec_l, lboard = await timed_median(live_station)
        sec_o, standing = await timed_median(live_own)
        same = [(r.standing.id, r.points, r.rank) for r in lboard[:50]] == \
               [(r.standing.id, r.points, r.rank) for r in top]
        rows.append((f"station {name} ({p.key}): top 50 + station {station_id}'s rank", fmt_s(sec),
                     f"{fmt_s(sec_l)} (own rank alone {fmt_s(sec_o)})",
                     f"rank {own}; Redis top 50 equal: {'yes' if same else 'NO'}; "
                     f"{'own rank equal' if standing and standing.rank == own else 'own rank DIFFERS'}"))
    for name, p in periods_:
        async def sql_talent(p: Period = p) -> Any:
            async with sessions() as s:
                board = await boards.talent_board(s, p)
            return board[:50], next((r.rank for r in board if r.standing.id == talent_id), None), len(board)

        async def live_talent(p: Period = p) -> Any:
            async with sessions() as s:
                return await live.talent_board(s, redis, p, limit=50)

        sec, (top, own, n) = await timed_median(sql_talent)
        sec_l, ltop = await timed_median(live_talent)
        if name == "month":
            rows.append((f"talent month ({p.key}): top 50 + talent {talent_id}'s rank ({n:,} ranked)", fmt_s(sec),
                         f"{fmt_s(sec_l)} (no Redis month board for talents: scoring.live reads SQL)",
                         f"rank {own}"))
            continue
        async def own_talent(p: Period = p) -> Any:
            return await live.talent_standing(redis, talent_id, p)

        sec_o, standing = await timed_median(own_talent)
        same = [(r.standing.id, r.points) for r in ltop] == [(r.standing.id, r.points) for r in top]
        rows.append((f"talent {name} ({p.key}): top 50 + talent {talent_id}'s rank ({n:,} ranked)", fmt_s(sec),
                     f"{fmt_s(sec_l)} (own rank alone {fmt_s(sec_o)})",
                     f"rank {own} (Redis: {standing[0] if standing else None}); "
                     f"Redis top 50 equal: {'yes' if same else 'NO'}"))
    return rows


def redis_memory(client: Any) -> dict[str, int]:
    """used_memory and the live boards' memory by family (MEMORY USAGE of every key in the index)."""
    from scoring import live

    fam: dict[str, int] = {}
    for raw in client.smembers(live.INDEX):
        key = raw.decode()
        parts = key[len(live.PREFIX) + 1:].split(":")
        family = "seen bitmaps" if parts[0] == "seen" else f"{parts[0]} {parts[1]}" + (" at" if key.endswith(":at")
                                                                                         else "")
        fam[family] = fam.get(family, 0) + int(client.memory_usage(key, samples=0) or 0)
    fam["used_memory"] = int(client.info("memory")["used_memory"])
    return fam


async def measure_calendar(sessions: Any, settings: Any) -> list[tuple[str, str, str]]:
    from scoring import calendar, rating
    from scoring.clock import utcnow

    rows = []
    async with sessions() as s:
        t0 = time.perf_counter()
        closed = await calendar.month_close(s, MONTH_KEY, utcnow())
        sec = time.perf_counter() - t0
        await s.rollback()
    assert isinstance(closed, calendar.MonthClosed), closed
    rows.append((f"month close {MONTH_KEY} (scoring.calendar.month_close, rolled back)", fmt_s(sec),
                 f"{len(closed.board):,} stations snapshotted, {closed.notified:,} reports queued"
                 + (" (closed before)" if closed.already else "")))
    for mode in ("preview", "confirm"):
        async with sessions() as s:
            t0 = time.perf_counter()
            out = await rating.rate(s, RATE_YEAR, settings, mode=mode, actor="bench")
            sec = time.perf_counter() - t0
            await s.rollback()
        assert isinstance(out, rating.Outcome), out
        moves: dict[str, int] = {}
        for line in out.lines:
            moves[line.move] = moves.get(line.move, 0) + 1
        rows.append((f"annual rating {RATE_YEAR} --{mode} (scoring.rating.rate, rolled back)", fmt_s(sec),
                     f"{len(out.lines):,} rows; moves {moves}"
                     + (f"; {out.notified:,} notifications" if mode == "confirm" else "")))
    return rows


def wrk(url: str, seconds: int, connections: int) -> dict[str, Any] | None:
    if shutil.which("wrk") is None:
        return None
    from bench.api import WRK_SCRIPT

    with temp_dir() as folder:
        script = os.path.join(folder, "r.lua")
        with open(script, "w") as fh:
            fh.write(WRK_SCRIPT)
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script,
                              url], capture_output=True, text=True, timeout=seconds + 120, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    r: dict[str, Any] = json.loads(line[len("RESULT "):])
    return r


def get(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as resp:
        body = bytes(resp.read())
    return time.perf_counter() - t0, body


def product_env(db_url: str, redis_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in server_env().items() if not k.startswith(("WECHAT_", "DATABASE_", "REDIS_", "BOT_"))}
    return env | {"DATABASE_URL": db_url, "REDIS_URL": redis_url, "BOT_HOST": "127.0.0.1", **(extra or {})}


def measure_api(env: dict[str, str], folder: str, seconds: int) -> tuple[list[tuple[str, str, str]], int | None]:
    from bench.webhook import cpu_seconds, stop_server, wait_healthy

    port = free_port()
    rows = []
    with open(os.path.join(folder, "bot.log"), "w") as log:
        bot = subprocess.Popen([sys.executable, "-m", "talenthome.cli", "serve"], env=env | {"BOT_PORT": str(port)},
                               cwd=folder, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_healthy(port, bot, seconds=120)
        base = f"http://127.0.0.1:{port}/api/v1/boards"
        for kind, q in (("month", f"period={MONTH_KEY}&"), ("year", f"period={YEAR_KEY}&"), ("total", "")):
            url = f"{base}/{kind}?{q}limit=50"
            cold, body = get(url)
            data = json.loads(body)
            warm = statistics.median(get(url)[0] for _ in range(20))
            rows.append((f"GET /api/v1/boards/{kind}?{q}limit=50", f"first {fmt_s(cold)}, then median {fmt_s(warm)}",
                         f"{data['total']:,} ranked, {len(body):,} bytes"))
        url = f"{base}/month?period={MONTH_KEY}&limit=50"
        cpu0 = cpu_seconds(bot.pid)
        r = wrk(url, seconds, 16)
        if r is not None:
            cpu = cpu_seconds(bot.pid) - cpu0
            rps = r["requests"] / (r["duration_us"] / 1e6)
            errors = r["status"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
            rows.append((f"wrk -c16 -d{seconds}s on the month board", f"{rps:,.0f} req/s",
                         f"p50 {r['p50_us'] / 1000:.1f} ms, p99 {r['p99_us'] / 1000:.1f} ms, "
                         f"CPU {cpu / max(1, r['requests']) * 1000:.2f} ms/req, errors {errors}"))
        hwm = vm_hwm_kib(bot.pid)
    finally:
        stop_server(bot)
    return rows, hwm


async def measure_worker(port: int, env: dict[str, str], folder: str, redis_url: str, jobs: int
                         ) -> tuple[list[tuple[str, str, str]], int | None]:
    """`talenthome worker` on an empty Redis (its first sweep rebuilds the boards) and `jobs` new scans to
    apply, as the bot enqueues them. Returns rows and the worker's VmHWM."""
    from arq import create_pool
    from arq.connections import RedisSettings

    from bench.webhook import stop_server
    from bench.worker import start_wechat
    from scoring import live
    from scoring.clock import utcnow
    from scoring.facts import visit
    from scoring.facts.common import APPLY

    runner, wechat = await start_wechat()
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    await pool.flushall()
    conn = await pg_connect(port)
    rows = []
    try:
        worker = start_worker(env | {"WECHAT_API_BASE": wechat}, folder)
        try:
            t0 = time.perf_counter()
            while not await pool.exists(live.GEN):
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited {worker.returncode}; see {folder}/worker.log")
                if time.perf_counter() - t0 > 1800:
                    raise RuntimeError("the worker did not build the boards in 30 minutes")
                await asyncio.sleep(0.5)
            built = time.perf_counter() - t0
            hwm_built = vm_hwm_kib(worker.pid)
            rows.append(("worker start on an empty Redis until its sweeper has rebuilt the boards", fmt_s(built),
                         f"VmHWM then {fmt_mib(hwm_built)}"))
            # New scans of today, each by another talent at a station, as the bot records and enqueues them.
            now = utcnow()
            day = periods.local_day(now)
            first = int(await conn.fetchval("SELECT max(id) FROM visits")) + 1
            rng = random.Random(5)
            n_st = int(await conn.fetchval("SELECT max(id) FROM stations"))
            talents = await conn.fetch(  # not those who scanned today already (a kept cluster's earlier run)
                "SELECT id FROM talents t WHERE openid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM visits v "
                "WHERE v.talent_id = t.id AND v.local_day = $2) ORDER BY id DESC LIMIT $1", jobs, day)
            new = []
            for i, (tid,) in enumerate(talents):
                sid = rng.randint(1, int(0.9 * n_st))
                at = now - timedelta(seconds=rng.uniform(1, 600))
                new.append((first + i, openid(tid), tid, sid, None, "station", at, day, "accepted", None,
                            visit.credit_key(tid, sid, day), None, None))
            await conn.copy_records_to_table("visits", records=new, columns=list(COLS["visits"]))
            await conn.execute("SELECT setval(pg_get_serial_sequence('visits', 'id'), (SELECT max(id) FROM visits))")
            t0 = time.perf_counter()
            for v in new:
                j = visit.job(v[0])
                await pool.enqueue_job(APPLY, *j.args, _job_id=j.id)
            while await conn.fetchval("SELECT count(*) FROM visits WHERE id >= $1 AND applied_at IS NULL", first):
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited {worker.returncode}; see {folder}/worker.log")
                if time.perf_counter() - t0 > 900:
                    raise RuntimeError("the worker did not apply the new scans in 15 minutes")
                await asyncio.sleep(0.2)
            applied = time.perf_counter() - t0
            while await pool.zcard("arq:queue"):
                if time.perf_counter() - t0 > 900:
                    raise RuntimeError("the worker did not empty its queue in 15 minutes")
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # the last batch's bumps follow its commit
            rows.append((f"worker: {len(new):,} new scans enqueued and applied (fraud rules, ledger, live boards)",
                         fmt_s(applied), f"{len(new) / applied:,.0f} visits/s"))
            hwm = vm_hwm_kib(worker.pid)
        finally:
            stop_server(worker)
        failed = worker_failures(os.path.join(folder, "worker.log"))
        rows.append(("worker jobs that failed meanwhile (its log)", str(len(failed)), "; ".join(failed)[:300]))
    finally:
        await conn.close()
        await pool.aclose()
        await runner.cleanup()
    return rows, hwm


def start_worker(env: dict[str, str], folder: str) -> subprocess.Popen[bytes]:
    with open(os.path.join(folder, "worker.log"), "w") as log:
        return subprocess.Popen([sys.executable, "-m", "talenthome.cli", "worker"], env=env, cwd=folder,
                                stdout=log, stderr=log)


def worker_failures(path: str) -> list[str]:
    """The arq lines of failed jobs, e.g. `180.07s ! tasks:sweep failed, TimeoutError`."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return [ln.split("arq.worker: ", 1)[1].strip() for ln in fh if "arq.worker:" in ln and " failed" in ln]


def xlsx_summary(path: str) -> str:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    n_rows = wb.active.max_row if wb.active is not None else 0
    return f"{n_rows:,} rows, {os.path.getsize(path) / 1024:,.0f} KiB"


# -- the run -----------------------------------------------------------------------------------------------------


async def measure(port: int, redis_server: RedisServer, folder: str, sizes: Sizes, args: argparse.Namespace,
                  report: dict[str, Any]) -> None:
    import redis as sync_redis
    import redis.asyncio as aioredis

    from scoring import live
    from scoring.db import make_engine, make_sessionmaker
    from scoring.settings import Settings

    db_url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/province"
    env = product_env(db_url, redis_server.url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    redis = aioredis.from_url(redis_server.url)  # type: ignore[no-untyped-call]
    sync = sync_redis.Redis.from_url(redis_server.url)
    try:
        print("checking the data ...", flush=True)
        counts, checks = await check(port, sessions)
        report["counts"], report["checks"] = counts, checks
        for label, n, sec in checks:
            print(f"  {label}: {n} ({fmt_s(sec)})", flush=True)
        conn = await pg_connect(port)
        report["db_size"] = await conn.fetchval("SELECT pg_size_pretty(pg_database_size('province'))")
        report["entries_size"] = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('entries'))")
        await conn.close()

        print("rebuild-boards ...", flush=True)
        sync.flushall()
        before = int(sync.info("memory")["used_memory"])  # type: ignore[index]
        sec, rss, out = run_measured([sys.executable, "-m", "talenthome.cli", "rebuild-boards"], env=env, cwd=folder)
        mem = redis_memory(sync)
        report["rebuild"] = {"seconds": sec, "rss_kib": rss, "out": out.strip(), "before": before, "memory": mem}
        print(f"  {sec:.1f} s, peak RSS {fmt_mib(rss)}, Redis {mem['used_memory'] / 2**20:.0f} MiB: {out.strip()}",
              flush=True)

        print("boards ...", flush=True)
        report["boards"] = await measure_boards(sessions, redis, sizes)
        for row in report["boards"]:
            print("  " + " | ".join(row), flush=True)

        print("month close and rating ...", flush=True)
        settings = Settings(_env_file=None, database_url=db_url, redis_url=redis_server.url)
        report["calendar"] = await measure_calendar(sessions, settings)
        for row in report["calendar"]:
            print("  " + " | ".join(row), flush=True)

        print("exports ...", flush=True)
        report["exports"] = []
        sec, rss, _ = run_measured([sys.executable, "-m", "talenthome.cli", "--help"], env=env, cwd=folder)
        report["exports"].append(("talenthome --help (the CLI's start-up alone, for comparison)", fmt_s(sec),
                                  fmt_mib(rss), ""))
        sec, rss, _ = run_measured([sys.executable, "-m", "talenthome.cli", "rate", str(RATE_YEAR)], env=env,
                                   cwd=folder)
        report["exports"].append((f"talenthome rate {RATE_YEAR} (preview, stored)", fmt_s(sec), fmt_mib(rss), ""))
        for kind, period in (("month-board", MONTH_KEY), ("year-board", YEAR_KEY), ("rating", str(RATE_YEAR))):
            path = os.path.join(folder, f"{kind}.xlsx")
            sec, rss, _ = run_measured([sys.executable, "-m", "talenthome.cli", "export", kind, "--period", period,
                                        "-o", path], env=env, cwd=folder)
            report["exports"].append((f"talenthome export {kind} --period {period}", fmt_s(sec), fmt_mib(rss),
                                      xlsx_summary(path)))
        for row in report["exports"]:
            print("  " + " | ".join(row), flush=True)

        print("explain analyze ...", flush=True)
        report["explain"] = await explain(port, os.path.join(args.keep or folder, "explain.txt"))
        for row in report["explain"]:
            print(f"  {row[0]}: {row[1]}, {row[2]:.0f} ms", flush=True)

        print("API (talenthome serve) ...", flush=True)
        report["api"], report["bot_hwm"] = await asyncio.to_thread(measure_api, env, folder, args.wrk_seconds)
        for row in report["api"]:
            print("  " + " | ".join(row), flush=True)
        print(f"  bot VmHWM {fmt_mib(report['bot_hwm'])}", flush=True)

        print("worker ...", flush=True)
        report["worker"], report["worker_hwm"] = await measure_worker(port, env, folder, redis_server.url,
                                                                      args.worker_jobs)
        for row in report["worker"]:
            print("  " + " | ".join(row), flush=True)
        print(f"  worker VmHWM {fmt_mib(report['worker_hwm'])}", flush=True)

        print("Redis against SQL (scoring.live.compare) ...", flush=True)
        t0 = time.perf_counter()
        async with sessions() as s:
            drift = await live.compare(s, redis, now=REF_NOW)
        report["compare"] = (len(drift), time.perf_counter() - t0)
        print(f"  {len(drift)} drifting lines ({report['compare'][1]:.1f} s)", flush=True)
        report["redis_after_worker"] = int(sync.info("memory")["used_memory"])  # type: ignore[index]
    finally:
        await redis.aclose()
        sync.close()
        await engine.dispose()


def render(report: dict[str, Any], sizes: Sizes, info: dict[str, str], command: str) -> str:
    c = report["counts"]
    gen = report.get("generation")
    rb = report["rebuild"]
    mem = rb["memory"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{command}` on: "
        + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        f"Load average (1, 5, 15 min) at the start: {report['load_start']}; at the end: {report['load_end']} "
        f"(2 cores shared with other engineers' work: absolute times are noisy).",
        f"PostgreSQL settings for this cluster: `{PG_OPTIONS}` (plus fsync off, as every bench cluster).",
        "",
        f"Data (scale {sizes.scale:g}): {c['stations']:,} stations, {c['talents']:,} talents, {c['staff']:,} staff, "
        f"{c['activities']:,} activities ({c['publicity_reports']:,} publicity reports), {c['visits']:,} visits "
        f"({c['attendances']:,} of them attendances), {c['entries']:,} ledger entries over 24 local months "
        f"(2024-12 to 2026-11); database {report['db_size']}, of which `entries` with its indexes "
        f"{report['entries_size']}. Boards are read as of {MONTH_KEY}-30 12:00 Asia/Shanghai. On a kept cluster the "
        f"counts include the scans earlier worker measurements added (each: {WORKER_NOTE_SCANS}).",
    ]
    if gen:
        lines.append(f"Generated with COPY (asyncpg) in {gen['copy']:.0f} s, indexes and constraints rebuilt in "
                     f"{gen['indexes']:.0f} s, VACUUM ANALYZE {gen['vacuum_analyze']:.0f} s, migrations "
                     f"{gen['migrate']:.1f} s.")
    else:
        lines.append("Generation: reused the kept cluster (`--keep`).")
    lines += ["", "Checks (0 expected everywhere):", "",
              format_table(["check", "found", "time"], [(lbl, n, fmt_s(s)) for lbl, n, s in report["checks"]]
                           + [("Redis against SQL after the worker's run (scoring.live.compare)", report["compare"][0],
                               fmt_s(report["compare"][1]))]),
              "", "Boards (median of 3 after a first call when under 3 s, else the first call):", "",
              format_table(["board", "SQL (scoring.boards)", "Redis (scoring.live)", "notes"], report["boards"]),
              "", "Rebuild, calendar, exports:", ""]
    fam = ", ".join(f"{k} {v / 2**20:.2f} MiB" for k, v in sorted(mem.items()) if k != "used_memory")
    rows = [("talenthome rebuild-boards", fmt_s(rb["seconds"]), fmt_mib(rb["rss_kib"]),
             f"{rb['out']}; Redis used_memory {rb['before'] / 2**20:.1f} -> {mem['used_memory'] / 2**20:.1f} MiB "
             f"(by family: {fam})")]
    rows += [(a, b, "", d) for a, b, d in report["calendar"]]
    rows += report["exports"]
    lines += [format_table(["what", "time", "peak RSS", "notes"], rows), ""]
    if report.get("rss") != "vmhwm":
        lines += [report.get("rss_note", "Peak RSS here is wait4's ru_maxrss, which counts the child's fork-time copy "
                                         "of the bench process: read it as an upper bound."), ""]
    lines += ["EXPLAIN (ANALYZE, BUFFERS) of the heavy aggregates (full plans: explain.txt in the kept folder):", "",
              format_table(["query", "plan's scan", "execution"], [(a, b, f"{c_:,.0f} ms")
                                                                   for a, b, c_ in report["explain"]]), ""]
    lines += ["API and processes:", "",
              format_table(["what", "figure", "notes"], report["api"] + report["worker"] + [
                  ("bot (`talenthome serve`) peak RSS, VmHWM after the runs above", fmt_mib(report["bot_hwm"]), ""),
                  ("worker (`talenthome worker`) peak RSS, VmHWM after the runs above", fmt_mib(report["worker_hwm"]),
                   "")]), ""]
    if report.get("worker_note"):
        lines += [report["worker_note"], ""]
    return "\n".join(lines) + analysis(report, sizes)


def seconds_of(text: str) -> float:
    """"95.16 s" or "29.1 ms" (the start of a formatted figure) in seconds."""
    number, unit = text.split()[:2]
    return float(number.replace(",", "")) / (1000 if unit.startswith("ms") else 1)


def analysis(report: dict[str, Any], sizes: Sizes) -> str:
    """What breaks first when the sizes grow another 10x, from this run's figures (linear extrapolation, which
    flatters the aggregates: a hash aggregate 10x larger also spills out of work_mem)."""
    if sizes.scale < 1:
        return "\n(The 10x analysis is written from a full-size run, `--scale 1`.)\n"
    import re

    rb = report["rebuild"]
    m = re.search(r"read ([\d.]+) s, write ([\d.]+) s", rb["out"])
    read_s, write_s = (float(m.group(1)), float(m.group(2))) if m else (rb["seconds"], 0.0)
    redis_mib = rb["memory"]["used_memory"] / 2**20
    boards = {row[0].split(" (")[0]: row for row in report["boards"]}
    t_total = seconds_of(boards["talent total"][1])
    t_month = seconds_of(boards["talent month"][1])
    close = seconds_of(report["calendar"][0][1])
    confirm = seconds_of(report["calendar"][2][1])
    explain = {row[0]: row for row in report["explain"]}
    month_plan = next(v for k, v in explain.items() if k.startswith("station month"))
    from scoring.live import REBUILD_LOCK_S

    lines_ = rb["out"].split("(")[1].split()[0]
    found = re.search(r"\(([\d,]+) ranked\)", boards["talent total"][0])
    ranked = found.group(1) if found else "all the"
    failed = next((row for row in report["worker"] if row[0].startswith("worker jobs that failed")), None)
    earlier = report.get("worker_run1_failures") or []
    if failed and failed[1] != "0":
        worker_fail = f"the worker's log: {failed[2]}"
    elif earlier:
        worker_fail = "the first worker start's log, its invitation backlog running alongside: " + "; ".join(earlier)
    else:
        worker_fail = "none failed this time"

    exports = "; ".join(f"`{row[0].split(' --')[0].replace('talenthome ', '')}` {row[1]}" for row in report["exports"]
                        if "export" in row[0]) + " here for 10,000 rows"

    return f"""
### What breaks first at 10x (100,000 stations, 10,000,000 talents, 100,000,000 entries)

Linear extrapolation of the figures above (optimistic for the SQL aggregates: 10x more groups no longer fit
`work_mem` and spill to disk).

0. **The exports, though by a bug rather than a limit.** `scoring.exports._sheet` reads `ws.max_row` for every
   row it appends, and openpyxl computes `max_row` by scanning every cell written so far, so a sheet costs
   O(rows^2):
   {exports}. Measured apart (`_sheet` alone, CPU time, load about 11): 2,500 rows 1.3 s, 5,000 rows
   4.9 s, 10,000 rows 21.4 s. 100,000 stations would be about 35 minutes of CPU for one month-board workbook
   (and the admin page's export, /admin/export/..., waits for it). Fix: count the rows instead of asking
   openpyxl (`for r, row in enumerate(rows, start=3): ws.append(row); for cell in ws[r]: ...`); none of the
   three remedies is needed. Left alone here: it does not block the measurement at this size.
1. **Rebuilding the live boards is the first limit of the design.** `talenthome rebuild-boards` took
   {rb['seconds']:.0f} s here (read {read_s:.0f} s: GROUP BYs over every entry; write {write_s:.0f} s:
   pipelined ZADD/HSET of {lines_} board lines), {fmt_mib(rb['rss_kib'])} peak RSS, {redis_mib:,.0f} MiB of
   Redis: inside the 10-minute target. But the worker rebuilds inside its sweep job (`tasks:sweep`, arq timeout
   180 s, worker/tasks.py) when Redis is empty or flushed, and in this run its first sweep already timed out
   ({worker_fail}) before a second one finished. At 10x a rebuild is about {10 * (read_s + write_s) / 60:.0f}
   minutes and {10 * rb['rss_kib'] / 2**20:.0f} GiB in the rebuilding process (the whole snapshot is held in
   Python dicts before the first write), past the sweep's 180 s and past the rebuild lock's {REBUILD_LOCK_S} s
   (`scoring.live.REBUILD_LOCK_S`, checked at the swap): the worker would start a rebuild every minute and
   never finish one, the live boards would stay missing, and every board read would fall back to SQL (point
   2). The nightly reconciliation (`tasks:reconcile`, timeout 300 s: `scoring.live.compare` reads the SQL
   talent boards) took {report['compare'][1]:.0f} s here and would take about
   {10 * report['compare'][1] / 60:.0f} minutes at 10x.
   **Fix: a materialized period table** (one row per account and period: station month/year/total, talent
   year/total, with points and reached-at), kept by `ledger.post` in the entry's own transaction (INSERT .. ON
   CONFLICT DO UPDATE per draft, reversals included). A rebuild then copies about 3 rows per talent instead of
   aggregating every entry, and can stream them (a server-side cursor, each chunk written before the next is
   read) instead of holding them; the SQL boards and `compare` become index reads (ORDER BY points DESC
   LIMIT 50) instead of full GROUP BYs. Until then, rebuilds at this size belong in their own job with a
   longer timeout and a renewed lock, not in the one-minute sweep.
2. **SQL talent boards**, the fallback when Redis is not built and the only source of the talent month
   board (scoring.live has no Redis month board for talents): {t_total:.0f} s for the total board and
   {t_month:.0f} s for a month here (a GROUP BY over every entry, then ranking {ranked} talents in Python),
   so about {10 * t_total / 60:.0f} and {10 * t_month / 60:.0f}
   minutes at 10x. The same materialized period table fixes it; partitioning by year would only prune the
   month and year boards, not the total.
3. **Month close and annual rating** ({close:.0f} s and {confirm:.0f} s here, one transaction each) grow
   linearly with stations: about {10 * close / 60:.0f} and {10 * confirm / 60:.0f} minutes at 10x, near the
   worker's 600 s job timeout for `calendar:month_close`. Not profiled; what they do per station is one INSERT
   round trip per queued message (`outbox.add` per operator: {report['calendar'][0][2].split(', ')[1]}) and,
   for the close, two SQL month boards (this month and the one before), whose sums are a {month_plan[1]}
   ({month_plan[2]:,.0f} ms each here). **Partitioning `entries` by year** (or
   month) would let the month and year sums read one partition instead of the whole table (the plan above
   reads every entry for one month), and a multi-row outbox insert would remove the round trips.
4. **Redis** is not the first limit: {redis_mib:,.0f} MiB now, about {10 * redis_mib / 1024:.1f} GiB at
   10x, on one instance with room to spare; each board is a single sorted set (the talent total board would
   hold 10,000,000 members), which Redis Cluster cannot split across slots anyway. **Redis Cluster** is for a
   100x step, or for write throughput, not for this one.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="1.0: 10,000 stations, 1e6 talents, 1e7 entries")
    ap.add_argument("--keep", metavar="DIR", help="keep the PostgreSQL cluster in DIR and reuse it on the next run")
    ap.add_argument("--write", action="store_true", help='put the "Province" section at the end of BENCHMARKS.md')
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--worker-jobs", type=int, default=5000)
    ap.add_argument("--render-only", action="store_true",
                    help="print (and with --write, write) the section from the last run's report.json in --keep DIR")
    args = ap.parse_args(argv)
    if args.render_only:
        if not args.keep:
            ap.error("--render-only needs --keep DIR")
        with open(os.path.join(args.keep, "report.json"), encoding="utf-8") as fh:
            saved = json.load(fh)
        return publish(render(saved["report"], Sizes(args.scale), saved["info"], saved["command"]), args.write)
    stop_on_sigterm()
    sizes = Sizes(args.scale)
    info = machine_info()
    print("machine:")
    print_machine(info)
    command = ".venv/bin/python bench/scale.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    report: dict[str, Any] = {"load_start": loadavg(), "rss": "vmhwm"}
    with temp_dir("talenthome-province-") as folder:
        pg_folder = os.path.abspath(args.keep) if args.keep else os.path.join(folder, "pg")
        with kept_postgres(pg_folder, PG_OPTIONS) as (server, created):
            meta_path = os.path.join(pg_folder, "province.json")
            if not created:
                with open(meta_path, encoding="utf-8") as fh:
                    meta = json.load(fh)
                if meta != sizes.as_dict():
                    print(f"{pg_folder} holds another province ({meta}); use another --keep folder", file=sys.stderr)
                    return 2
                print(f"reusing the province in {pg_folder}", flush=True)
            else:
                print(f"generating {sizes.as_dict()} ...", flush=True)
                report["generation"] = asyncio.run(generate(server.port, sizes))
                with open(meta_path, "w", encoding="utf-8") as fh:
                    json.dump(sizes.as_dict(), fh)
                print(f"  {report['generation']}", flush=True)
            redis_server = RedisServer(os.path.join(folder, "redis")).start(persist=False)
            try:
                asyncio.run(measure(server.port, redis_server, folder, sizes, args, report))
            finally:
                redis_server.stop()
        report["load_end"] = loadavg()
        if args.keep:
            with open(os.path.join(pg_folder, "report.json"), "w", encoding="utf-8") as fh:
                json.dump({"report": report, "info": info, "command": command}, fh, default=str, indent=1)
    return publish(render(report, sizes, info, command), args.write)


def publish(body: str, write: bool) -> int:
    print()
    print(body)
    if write:
        replace_section(os.path.join(ROOT, "BENCHMARKS.md"), HEADING, body)
        print(f"BENCHMARKS.md: section {HEADING!r} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
