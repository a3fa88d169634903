"""A Hypothesis state machine for the ledger, in the spirit of TigerBeetle's auditor.

Random facts (visits with duplicates and replays, voids, redemptions, survey results, media reports,
activities held) go through the rules (scoring/facts/) and scoring.ledger on a fresh SQLite database per
example. An independent model
(plain Python, no scoring code: local time is UTC+8, Asia/Shanghai has had no DST since 1991) keeps what
the ledger should contain, and after every step the invariants compare the two:

- the entries are exactly the model's (keys, accounts, amounts, periods, what each reversal reverses), so
  no fact is applied twice and no entry ever changes once written (append-only);
- every balance equals the sum of its entries; no talent balance is negative unless a void took back
  points already spent (a redemption never does);
- one R3 credit per (talent, station, local day), checked against the visits table;
- the SQL boards (scoring.boards) equal the model's sums and competition ranks, eligibility and the
  extended scoring window included.

Balances, credits and boards are functions of the entries, which are compared after every step, so they
are read again after every step that wrote an entry (and skipped after one that wrote none).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from scoring import ledger
from scoring.boards import station_board, talent_board
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts import activity, media, redemption, survey, visit
from scoring.facts.common import Applied, Outcome, Refusal, Refused
from scoring.models import Activity, Entry, Gift, MediaReport, Redemption, Station, Visit
from scoring.periods import Period
from tests import factories as f
from tests.scoring import builders as b

UTC8 = timedelta(hours=8)
FIRST_DAY = date(2026, 12, 29)  # days run across the year boundary and the extension's extra days
DAYS = 9
NOW_SURVEY = datetime(2027, 1, 2, 4, 0)  # 12:00 local
NOW_BOARDS = datetime(2027, 6, 1)
NOW_HELD = datetime(2027, 2, 1)
MEDIA = {"central": 20, "provincial": 10, "municipal": 5, "county": 3}
GIFTS = [(1, 3), (2, 100), (5, 100)]  # (cost, stock)


def utc(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour) - UTC8


def local_date(at: datetime) -> date:
    return (at + UTC8).date()


def local_midnight(y: int, m: int = 1, d: int = 1) -> datetime:
    return datetime(y, m, d) - UTC8


@dataclass(frozen=True)
class M:
    """A model entry."""

    key: str
    amount: int
    station: int | None
    talent: int | None
    occurred_at: datetime
    kind: str  # the fact kind: visit | activity | media | survey | redemption
    fact: int
    reverses: str | None = None


@dataclass(frozen=True)
class StationInfo:
    id: int
    code: str
    certified_year: int
    active: bool
    extension_2026: int  # days


_counter = itertools.count()


class LedgerMachine(RuleBasedStateMachine):
    template: str = ""
    folder: str = ""

    visits = Bundle("visits")
    redemptions = Bundle("redemptions")
    surveys = Bundle("surveys")

    # The seeded database (stations, talents, gifts, activities) is built once per test run and copied
    # for each example, with what the model needs to know about it.
    seeded: tuple[str, dict[str, Any]] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        if LedgerMachine.seeded is None:
            path = os.path.join(self.folder, "seeded.db")
            shutil.copyfile(self.template, path)
            engine = make_engine(f"sqlite+aiosqlite:///{path}")
            seed = self.run(self._seed(make_sessionmaker(engine)))
            self.run(engine.dispose())
            LedgerMachine.seeded = (path, seed)
        seeded_path, seed = LedgerMachine.seeded
        path = os.path.join(self.folder, f"stateful{next(_counter)}.db")
        shutil.copyfile(seeded_path, path)
        self.engine = make_engine(f"sqlite+aiosqlite:///{path}")
        self.sessions = make_sessionmaker(self.engine)
        self.stations: list[StationInfo] = seed["stations"]
        self.talents: dict[int, str] = seed["talents"]
        self.activities: dict[int, tuple[int, datetime]] = seed["activities"]
        self.gift_cost: dict[int, int] = seed["gift_cost"]
        self.stock: dict[int, int] = dict(seed["stock"])
        self.entries: dict[str, M] = {}  # the model ledger, by key
        self.reversed: set[str] = set()
        self.reports: dict[int, list[tuple[str, datetime, bool]]] = defaultdict(list)  # activity: reports
        self.in_debt: set[int] = set()  # talents a void took below zero
        self.visit_facts: dict[int, tuple[int, int, datetime]] = {}  # visit id: (talent, station, scanned_at)
        self.survey_years: dict[int, int] = {}
        self.ids: dict[str, int] = {}  # model key: entry id, refreshed by the invariant after every step
        self.derived_checked_at = -1

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()

    @staticmethod
    async def _seed(sessions: Any) -> dict[str, Any]:
        async with transaction(sessions) as s:
            a = await f.station(s, "A")
            bb = await f.station(s, "B")
            await b.extension(s, bb, 2026, 3)  # 2026 runs to 2027-01-04 00:00 local for B
            c = await f.station(s, "C", certified_on=date(2026, 6, 1))  # ranked from 2027 only
            d = await f.station(s, "D", status="delisted")
            seed: dict[str, Any] = {
                "stations": [StationInfo(a.id, "A", 2020, True, 0), StationInfo(bb.id, "B", 2020, True, 3),
                             StationInfo(c.id, "C", 2026, True, 0), StationInfo(d.id, "D", 2020, False, 0)],
                "talents": {}, "stock": {}, "gift_cost": {}, "activities": {}}
            talents = [await f.talent(s, f"T{i}") for i in range(3)]
            seed["talents"] = {t.id: t.cert_no for t in talents}
            for cost, stock in GIFTS:
                g = await b.gift(s, cost=cost, stock=stock)
                seed["stock"][g.id], seed["gift_cost"][g.id] = stock, cost
            for station, day in ((a, date(2026, 12, 30)), (c, date(2027, 1, 2))):
                act = await b.activity(s, station, starts_at=utc(day, 10))
                await b.attend(s, act, talents[0])
                await b.publicity(s, act)
                seed["activities"][act.id] = (station.id, act.ends_at)
        return seed

    # -- the model ----------------------------------------------------------------------------------
    def add(self, e: M) -> None:
        assert e.key not in self.entries
        self.entries[e.key] = e

    def talent_balance(self, talent: int) -> int:
        return sum(e.amount for e in self.entries.values() if e.talent == talent)

    def reverse_model(self, keys: list[str]) -> None:
        for key in keys:
            orig = self.entries[key]
            if orig.reverses is not None or key in self.reversed:
                continue
            self.reversed.add(key)
            self.add(M(f"void:{key}", -orig.amount, orig.station, orig.talent, orig.occurred_at, orig.kind,
                       orig.fact, reverses=key))
            if orig.talent is not None and self.talent_balance(orig.talent) < 0:
                self.in_debt.add(orig.talent)

    def credited_day(self, talent: int, station: int, day: date) -> str:
        return f"R3:{talent}:{station}:{day.isoformat()}"

    # -- visits -------------------------------------------------------------------------------------
    @rule(target=visits, talent=st.integers(0, 2), station=st.integers(0, 3), day=st.integers(0, DAYS - 1),
          hour=st.integers(0, 23), apply=st.booleans())
    def scan(self, talent: int, station: int, day: int, hour: int, apply: bool) -> int:
        tid = list(self.talents)[talent]
        info = self.stations[station]
        at = utc(FIRST_DAY + timedelta(days=day), hour)

        local = local_date(at)
        exists = any(t == tid and sid == info.id and local_date(when) == local
                     for t, sid, when in self.visit_facts.values())

        async def go() -> int:
            async with transaction(self.sessions) as s:
                # A second scan the same day would be rejected by the bot; record it as an accepted
                # visit without the de-duplication key, so that only the ledger's key stands in the way.
                v = Visit(openid=f"o{tid}", talent_id=tid, station_id=info.id, source="station", scanned_at=at,
                          local_day=local, status="accepted",
                          credit_key=None if exists else f"{tid}:{info.id}:{local.isoformat()}")
                s.add(v)
                await s.flush()
                return v.id

        vid: int = self.run(go())
        self.visit_facts[vid] = (tid, info.id, at)
        if apply:
            self.apply_visit(vid)
        return vid

    def expect_visit(self, vid: int) -> None:
        tid, sid, at = self.visit_facts[vid]
        day = local_date(at)
        base = self.credited_day(tid, sid, day)
        if base + "#s" in self.entries:
            return
        self.add(M(base + "#s", 1, sid, None, at, "visit", vid))
        self.add(M(base + "#t", 1, None, tid, at, "visit", vid))

    @rule(vid=visits)
    def apply_visit(self, vid: int) -> None:
        async def go() -> int:
            async with transaction(self.sessions) as s:
                return await visit.credit(s, [vid])

        had = self.credited_day(*self.visit_facts[vid][:2], local_date(self.visit_facts[vid][2])) + "#s"
        already = had in self.entries
        credited = self.run(go())
        self.expect_visit(vid)
        assert credited == (0 if already else 1)

    @rule(vids=st.lists(visits, min_size=1, max_size=5))
    def apply_visit_batch(self, vids: list[int]) -> None:
        async def go() -> int:
            async with transaction(self.sessions) as s:
                return await visit.credit(s, vids)

        n = self.run(go())
        before = len(self.entries)
        for vid in sorted(set(vids)):
            self.expect_visit(vid)
        assert n == (len(self.entries) - before) // 2

    @rule(vid=visits)
    def void_visit(self, vid: int) -> None:
        async def go() -> list[Entry]:
            async with transaction(self.sessions) as s:
                return await b.reversed_now(s, await ledger.originals(s, "visit", [vid]), reason="代打卡")

        written = self.run(go())
        keys = [k for k, e in self.entries.items() if e.kind == "visit" and e.fact == vid and e.reverses is None]
        fresh = [k for k in keys if k not in self.reversed]
        self.reverse_model(keys)
        assert len(written) == len(fresh)
        assert all(e.actor == "admin" and e.reason == "代打卡" for e in written)

    @precondition(lambda self: bool(self.entries))
    @rule(pick=st.integers(0, 10_000))
    def void_any_entry(self, pick: int) -> None:
        keys = sorted(self.entries)
        key = keys[pick % len(keys)]

        async def go() -> list[Entry]:
            async with transaction(self.sessions) as s:
                return await b.reversed_now(s, [self.ids[key]], reason="error")

        written = self.run(go())
        is_reversal, was_reversed = self.entries[key].reverses is not None, key in self.reversed
        self.reverse_model([key])
        assert len(written) == (0 if is_reversal or was_reversed else 1)

    # -- redemptions --------------------------------------------------------------------------------
    @rule(target=redemptions, talent=st.integers(0, 2), gift=st.integers(0, len(GIFTS) - 1))
    def redeem(self, talent: int, gift: int) -> int:
        tid = list(self.talents)[talent]
        gid = list(self.stock)[gift]

        async def go() -> tuple[int, Outcome]:
            async with transaction(self.sessions) as s:  # recorded and applied in one transaction
                red = await b.redemption(s, tid, gid)
                return red.id, await redemption.apply(s, red.id, now=NOW_SURVEY)

        rid, posted = self.run(go())
        cost = self.gift_cost[gid]
        if self.stock[gid] <= 0:
            assert isinstance(posted, Refused) and posted.reason is Refusal.STOCK
        elif self.talent_balance(tid) < cost:
            assert isinstance(posted, Refused) and posted.reason is Refusal.BALANCE
        else:
            assert isinstance(posted, Applied) and posted.written == 1
            self.stock[gid] -= 1
            self.add(M(f"redeem:{rid}", -cost, None, tid, NOW_SURVEY, "redemption", rid))
            assert self.talent_balance(tid) >= 0
            self.in_debt.discard(tid)
        return rid

    @rule(rid=redemptions)
    def reapply_redemption(self, rid: int) -> None:
        async def go() -> Outcome:
            async with transaction(self.sessions) as s:
                return await redemption.apply(s, rid, now=NOW_SURVEY + timedelta(days=1))

        posted = self.run(go())
        assert isinstance(posted, Applied) == (f"redeem:{rid}" in self.entries)
        assert isinstance(posted, Refused) or posted.already

    # -- surveys ------------------------------------------------------------------------------------
    @rule(target=surveys, station=st.integers(0, 3), year=st.sampled_from([2026, 2027]),
          amount=st.integers(-30, 30))
    def survey(self, station: int, year: int, amount: int) -> int:
        info = self.stations[station]

        async def go() -> tuple[int, Outcome]:
            async with transaction(self.sessions) as s:
                station = await s.get(Station, info.id)
                assert station is not None
                sv = await b.survey(s, station, year, amount)
                return sv.id, await survey.apply(s, sv.id, now=NOW_SURVEY)

        sid, posted = self.run(go())
        total = sum(e.amount for e in self.entries.values()
                    if e.kind == "survey" and e.station == info.id and e.fact in self.survey_years
                    and self.survey_years[e.fact] == year)
        self.survey_years[sid] = year
        if -50 <= total + amount <= 50:
            assert isinstance(posted, Applied) and posted.written == 1
            at = NOW_SURVEY if year == 2027 else local_midnight(2027) - timedelta(seconds=1)
            self.add(M(f"survey:{info.id}:{year}:{sid}", amount, info.id, None, at, "survey", sid))
        else:
            assert posted == Refused(Refusal.SURVEY_CAP)
        return sid

    @rule(sid=surveys)
    def reapply_survey(self, sid: int) -> None:
        async def go() -> Outcome:
            async with transaction(self.sessions) as s:
                return await survey.apply(s, sid, now=NOW_SURVEY)

        again = self.run(go())
        assert isinstance(again, Refused) or again.already

    # -- activities and media -----------------------------------------------------------------------
    @rule(which=st.integers(0, 1))
    def hold(self, which: int) -> None:
        aid = list(self.activities)[which]

        async def go() -> Outcome:
            async with transaction(self.sessions) as s:
                return await activity.apply(s, aid, now=NOW_HELD)

        posted = self.run(go())
        sid, ends_at = self.activities[aid]
        assert isinstance(posted, Applied)
        if f"host:{aid}" in self.entries:
            assert posted.already
        else:
            assert posted.written == 1
            self.add(M(f"host:{aid}", 5, sid, None, ends_at, "activity", aid))

    def expect_media(self, aid: int) -> None:
        valid = [(MEDIA[level], at) for level, at, voided in self.reports[aid] if not voided]
        if not valid:
            return
        target = max(p for p, _ in valid)
        # the best report's upload time, or the activity's end when the report came before it
        at = max(min(at for p, at in valid if p == target), self.activities[aid][1])
        paid = sum(e.amount for e in self.entries.values() if e.kind == "media" and e.fact == aid)
        n_rev = sum(1 for e in self.entries.values() if e.kind == "media" and e.fact == aid and e.reverses)
        if target > paid:
            level = next(lv for lv, p in MEDIA.items() if p == target)
            self.add(M(f"media:{aid}:{level}:v{n_rev}", target - paid, self.activities[aid][0], None, at,
                       "media", aid))

    @rule(which=st.integers(0, 1), level=st.sampled_from(sorted(MEDIA)), day=st.integers(0, DAYS - 1),
          hour=st.integers(0, 23))
    def media_report(self, which: int, level: str, day: int, hour: int) -> None:
        aid = list(self.activities)[which]
        at = utc(FIRST_DAY + timedelta(days=day), hour)

        async def go() -> Outcome:
            async with transaction(self.sessions) as s:
                act = await s.get(Activity, aid)
                assert act is not None
                await b.media(s, act, level, at=at)
                return await media.apply(s, aid, now=NOW_HELD)

        before = len(self.entries)
        posted = self.run(go())
        self.reports[aid].append((level, at, False))
        self.expect_media(aid)
        assert isinstance(posted, Applied) and posted.written == len(self.entries) - before

    @precondition(lambda self: any(self.reports.values()))
    @rule(pick=st.integers(0, 100))
    def void_media_report(self, pick: int) -> None:
        """An admin voids a report and everything paid for the activity's media, then media is re-paid."""
        candidates = [(aid, i) for aid, rs in self.reports.items() for i, r in enumerate(rs) if not r[2]]
        if not candidates:
            return
        aid, i = candidates[pick % len(candidates)]

        async def go() -> None:
            async with transaction(self.sessions) as s:
                reports = (await s.scalars(select(MediaReport).where(MediaReport.activity_id == aid)
                                           .order_by(MediaReport.id))).all()
                reports[i].voided_at = NOW_HELD
                await ledger.reverse(s, await ledger.originals(s, "media", [aid]), actor="admin", reason="假报道")
                await media.apply(s, aid, now=NOW_HELD)

        self.run(go())
        level, at, _ = self.reports[aid][i]
        self.reports[aid][i] = (level, at, True)
        self.reverse_model([k for k, e in self.entries.items() if e.kind == "media" and e.fact == aid])
        self.expect_media(aid)

    # -- invariants ---------------------------------------------------------------------------------
    def db_key(self, key: str) -> str:
        """The model's key spelled as the ledger spells it (visits and voids differ)."""
        if key.startswith("void:"):
            return f"void:{self.ids[key[5:]]}"
        if key.startswith("R3:"):
            _, t, s, day = key.split("#")[0].split(":")
            return f"visit:{t}:{s}:{day}#{'station' if key.endswith('#s') else 'talent'}"
        return key

    async def snapshot(self, derived: bool) -> dict[str, Any]:
        """What the database says, read in one session (one transaction)."""
        out: dict[str, Any] = {}
        async with self.sessions() as s:
            out["entries"] = list((await s.execute(select(
                Entry.id, Entry.key, Entry.amount, Entry.station_id, Entry.talent_id, Entry.occurred_at,
                Entry.fact_kind, Entry.fact_id, Entry.reverses_id, Entry.rule))).all())
            out["stock"] = {g: n for g, n in (await s.execute(select(Gift.id, Gift.stock))).all()}
            out["applied"] = int(await s.scalar(select(func.count(Redemption.id)).where(
                Redemption.status == "applied")) or 0)
            if not derived:
                return out
            out["talents"] = {tid: int(total) for tid, total in (await s.execute(
                select(Entry.talent_id, func.sum(Entry.amount)).where(Entry.talent_id.is_not(None))
                .group_by(Entry.talent_id))).all()}
            out["stations"] = {sid: int(total) for sid, total in (await s.execute(
                select(Entry.station_id, func.sum(Entry.amount)).where(Entry.station_id.is_not(None))
                .group_by(Entry.station_id))).all()}
            out["doubled"] = list((await s.execute(
                select(Visit.talent_id, Visit.station_id, Visit.local_day, func.count(Entry.id))
                .join(Entry, (Entry.fact_kind == "visit") & (Entry.fact_id == Visit.id))
                .where(Entry.reverses_id.is_(None), Entry.station_id.is_not(None))
                .group_by(Visit.talent_id, Visit.station_id, Visit.local_day)
                .having(func.count(Entry.id) > 1))).all())
            boards = out["boards"] = {}
            # 2026: eligibility (C is not ranked) and B's extended window; January 2027: the calendar
            # month (B's extra days included); total: C counted from 2027 only, D (delisted) never.
            for kind, key in (("year", "2026"), ("month", "2027-01"), ("total", "all")):
                boards["station", key] = await station_board(s, Period(kind, key), now=NOW_BOARDS)
            boards["talent", "2026"] = await talent_board(s, Period("year", "2026"))
        return out

    @invariant()
    def database_matches_model(self) -> None:
        # Balances, credits and boards are functions of the entries (stations, gifts and extensions are
        # fixed per example), and the entries are compared after every step: a step that wrote no entry
        # cannot have changed them, so they are read again only when the ledger grew.
        derived = self.derived_checked_at != len(self.entries)
        self.derived_checked_at = len(self.entries)
        db = self.run(self.snapshot(derived))

        rows: list[Any] = db["entries"]
        by_id = {e.id: e for e in rows}
        by_key = {e.key: e.id for e in rows}
        assert len(rows) == len(self.entries) == len(by_key)
        self.ids = {}
        for key in sorted(self.entries, key=lambda k: k.count("void:")):  # originals before their reversals
            self.ids[key] = by_key[self.db_key(key)]
        for key, m in self.entries.items():
            e = by_id[self.ids[key]]
            assert (e.amount, e.station_id, e.talent_id, e.occurred_at, e.fact_kind, e.fact_id) == (
                m.amount, m.station, m.talent, m.occurred_at, m.kind, m.fact), key
            assert e.reverses_id == (self.ids[m.reverses] if m.reverses else None)
            assert e.rule == ("V@1" if m.reverses else {"visit": "R3@1", "activity": "R1@1", "media": "R2@1",
                                                        "survey": "R4@1", "redemption": "G@1"}[m.kind])
        assert db["stock"] == self.stock and all(v >= 0 for v in db["stock"].values())
        assert db["applied"] == sum(1 for e in self.entries.values() if e.kind == "redemption" and not e.reverses)
        if not derived:
            return

        for tid in self.talents:
            balance = db["talents"].get(tid, 0)
            assert balance == self.talent_balance(tid)
            assert balance >= 0 or tid in self.in_debt, (tid, balance)
            if balance >= 0:
                self.in_debt.discard(tid)
        for info in self.stations:
            assert db["stations"].get(info.id, 0) == sum(
                e.amount for e in self.entries.values() if e.station == info.id)
        assert db["doubled"] == []
        for (scope, key), board in db["boards"].items():
            got = {r.code: (r.rank, r.points) for r in board}
            want = self.expected_station_board(key) if scope == "station" else self.expected_talent_board(key)
            assert got == want, (scope, key)
            assert [r.points for r in board] == sorted((r.points for r in board), reverse=True)

    def station_window(self, info: StationInfo, period: str) -> tuple[datetime | None, datetime | None]:
        if period == "all":
            return local_midnight(info.certified_year + 1), None
        if len(period) == 4:
            y = int(period)
            start = local_midnight(y) + timedelta(days=info.extension_2026 if y == 2027 else 0)
            end = local_midnight(y + 1) + timedelta(days=info.extension_2026 if y == 2026 else 0)
            return start, end
        y, m = (int(p) for p in period.split("-"))
        return local_midnight(y, m), local_midnight(y + (m == 12), m % 12 + 1)

    def expected_station_board(self, period: str) -> dict[str, tuple[int, int]]:
        year = 2027 if period == "all" else int(period[:4])
        points = {}
        for info in self.stations:
            if not info.active or info.certified_year >= year:
                continue
            start, end = self.station_window(info, period)
            points[info.code] = sum(e.amount for e in self.entries.values() if e.station == info.id
                                    and (start is None or e.occurred_at >= start)
                                    and (end is None or e.occurred_at < end))
        return {c: (1 + sum(q > p for q in points.values()), p) for c, p in points.items()}

    def expected_talent_board(self, period: str) -> dict[str, tuple[int, int]]:
        points: dict[str, int] = {}
        for e in self.entries.values():
            if e.talent is None or e.kind == "redemption":
                continue
            if period != "all" and not local_midnight(int(period)) <= e.occurred_at < local_midnight(int(period) + 1):
                continue
            code = self.talents[e.talent]
            points[code] = points.get(code, 0) + e.amount
        return {c: (1 + sum(q > p for q in points.values()), p) for c, p in points.items()}


def test_ledger_state_machine(sqlite_template: str, tmp_path: os.PathLike[str]) -> None:
    LedgerMachine.template, LedgerMachine.folder, LedgerMachine.seeded = sqlite_template, str(tmp_path), None
    # Shrinking a failing run of this machine takes minutes (past pytest's timeout), so it is off unless
    # TALENTHOME_SHRINK=1: a failure then reports the whole, unshrunk, run of steps.
    phases = list(Phase) if os.environ.get("TALENTHOME_SHRINK") else [p for p in Phase if p != Phase.shrink]
    LedgerMachine.TestCase.settings = settings(
        max_examples=25, stateful_step_count=20, deadline=None, phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    LedgerMachine.TestCase().runTest()
    assert next(_counter) > 1  # examples ran
