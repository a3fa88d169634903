"""The annual star rating (scoring.rating) on both databases, and `talenthome rate`.

Cut lines for N stations: top = ranks <= N // 5, bottom = ranks > N - N // 10 (SPEC 3); the expected sets
below are worked out by hand from the points listed with each case.
"""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring import periods, rating
from scoring.boards import station_board
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.models import AuditLog, Entry, Extension, Notification, Rating, RatingRun, Staff, Station
from scoring.periods import Period
from scoring.rating import Outcome, RatingRefusal, RatingRefused
from scoring.settings import Settings
from scoring.texts import admin as admin_texts
from tests import factories as f
from tests.cli import run_many as cli
from tests.conftest import run_sync

_keys = itertools.count(1)
AFTER_2026 = periods.to_utc_naive(datetime(2027, 1, 2, 9, 0))
AFTER_2027 = periods.to_utc_naive(datetime(2028, 1, 2, 9, 0))


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return periods.to_utc_naive(datetime(y, mo, d, h, mi))


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


async def award(s: AsyncSession, st: Station, amount: int, at: datetime) -> None:
    s.add(Entry(key=f"test:{next(_keys)}", station_id=st.id, amount=amount, rule="R3@1", fact_kind="test",
                occurred_at=at))
    await s.flush()


async def cohort(s: AsyncSession, points: list[int], *, prefix: str = "S", year: int = 2026,
                 type: str = "comprehensive") -> list[Station]:
    """Stations {prefix}01.. certified in 2020 with the given points in `year` (0: no entry)."""
    out = []
    for i, p in enumerate(points, 1):
        st = await f.station(s, f"{prefix}{i:02d}", type=type)
        if p:
            await award(s, st, p, local(year, 6, 1))
        out.append(st)
    return out


async def give_points(s: AsyncSession, stations: list[Station], points: list[int], year: int) -> None:
    for st, p in zip(stations, points, strict=True):
        await award(s, st, p, local(year, 6, 1))


def moves(out: Outcome | RatingRefused) -> tuple[set[str], set[str]]:
    assert isinstance(out, Outcome), out
    return {x.code for x in out.lines if x.move == "up"}, {x.code for x in out.lines if x.move == "down"}


def codes(prefix: str, numbers: range | list[int]) -> set[str]:
    return {f"{prefix}{i:02d}" for i in numbers}


CASES = {
    # N=10: top ranks <= 2, bottom ranks > 9. Ranks 1,2,2,4,5,6,7,8,9,9: both 2s pass; the 9s stay.
    "10-ties-at-both-lines": ([100, 90, 90, 80, 70, 60, 50, 40, 30, 30], range(1, 4), []),
    # N=10, no ties: top S01-S02, bottom S10.
    "10-distinct": ([100, 90, 80, 70, 60, 50, 40, 30, 20, 10], range(1, 3), [10]),
    # N=11: top ranks <= 2, bottom ranks > 10. Ranks 1,2,2,2,5,6,7,8,9,10,11: three share rank 2; S11 alone
    # is below the line.
    "11-tie-at-top": ([50, 40, 40, 40, 35, 30, 25, 20, 15, 10, 5], range(1, 5), [11]),
    # N=11 with ranks 1,2,3,3,... : the tie at rank 3 is over the top line; the two last share rank 10, not
    # over the bottom line, so nobody is demoted.
    "11-tie-over-top-line": ([50, 45, 40, 40, 35, 30, 25, 20, 15, 5, 5], range(1, 3), []),
}


def case_200() -> tuple[list[int], set[str], set[str]]:
    """N=200: top ranks <= 40, bottom ranks > 180. Points 1000 - 4i, except: stations 39-41 tie at 844
    (rank 39, all in the top set: 41 stations), 180-182 tie at 280 (rank 180, not demoted), 199-200 tie at
    204 (rank 199, both demoted). Bottom set: 183-200 (18 stations)."""
    pts = [1000 - 4 * i for i in range(1, 201)]
    for i in (40, 41):
        pts[i - 1] = pts[39 - 1]
    for i in (181, 182):
        pts[i - 1] = pts[180 - 1]
    pts[200 - 1] = pts[199 - 1]
    return pts, codes("S", range(1, 42)), {f"S{i:02d}" for i in range(183, 201)}


@pytest.mark.parametrize("case", [*CASES, "200"])
async def test_cut_lines_with_ties(sessions, case):
    if case == "200":
        points, up, down = case_200()
    else:
        points, up_range, down_list = CASES[case]
        up, down = codes("S", up_range), codes("S", down_list)
    async with transaction(sessions) as s:
        await cohort(s, points)
        await f.station(s, "NOTYET", certified_on=date(2026, 2, 1))  # not ranked in 2026
        out = await rating.preview(s, 2026, settings(), now=AFTER_2026)
    assert moves(out) == (up, down)
    assert isinstance(out, Outcome) and out.status == "preview"
    async with sessions() as s:
        run = await s.get(RatingRun, 2026)
        assert run is not None and run.status == "preview"
        rows = (await s.scalars(select(Rating).where(Rating.rank.is_not(None)))).all()
        assert len(rows) == len(points)
        assert all(r.stars_after == (4 if r.move == "up" else 2 if r.move == "down" else 3) for r in rows)
        # A preview changes no station.
        assert set((await s.scalars(select(Station.stars))).all()) == {3}


async def test_nobody_goes_up_for_a_year_without_points(sessions):
    async with transaction(sessions) as s:
        await cohort(s, [0] * 10)
        await cohort(s, [0, 0, 5], prefix="T", type="service")
        out = await rating.preview(s, 2026, settings(), now=AFTER_2026)
    # 13 stations: top ranks <= 2 -> only T03 (rank 1, 5 points); the twelve at 0 share rank 2, so they are
    # in the top set by rank but have no points; bottom ranks > 12: nobody.
    assert moves(out) == ({"T03"}, set())
    assert isinstance(out, Outcome) and out.subsidy_total == 50_000


async def test_type_cohort_ranks_each_type_on_its_own(sessions):
    async with transaction(sessions) as s:
        await cohort(s, [100, 90, 80, 70, 60, 50, 40, 30, 20, 10], prefix="C", type="comprehensive")
        # N=5: top ranks <= 1, bottom ranks > 5 - 0: nobody demoted.
        await cohort(s, [9, 8, 7, 6, 5], prefix="I", type="industry")
        out = await rating.preview(s, 2026, settings(rating_cohort="type"), now=AFTER_2026)
        all_out = await rating.preview(s, 2026, settings(), now=AFTER_2026)
    assert moves(out) == ({"C01", "C02", "I01"}, {"C10"})
    assert isinstance(out, Outcome) and {x.cohort for x in out.lines} == {"comprehensive", "industry"}
    # One cohort of 15: top ranks <= 3, bottom ranks > 14; the industry stations are the last five.
    assert moves(all_out) == ({"C01", "C02", "C03"}, {"I05"})


async def test_five_stays_five_and_one_stays_one_but_counts_as_a_demotion(sessions):
    async with transaction(sessions) as s:
        stations = await cohort(s, [100, 90, 80, 70, 60, 50, 40, 30, 20, 10])
        stations[0].stars, stations[9].stars = 5, 1
        s.add(Staff(openid="op-top", role="operator", station_id=stations[0].id))
        s.add(Staff(openid="op-low", role="operator", station_id=stations[9].id))
        out = await rating.preview(s, 2026, settings(), now=AFTER_2026)
        assert isinstance(out, Outcome)
        top, low = out.lines[0], out.lines[9]
        assert (top.code, top.move, top.stars_before, top.stars_after) == ("S01", "up", 5, 5)
        assert (low.code, low.move, low.stars_before, low.stars_after, low.streak_after) == ("S10", "down", 1, 1, 1)
        done = await rating.confirm(s, 2026, "admin-1", now=AFTER_2026)
        assert isinstance(done, Outcome) and done.status == "confirmed"
    async with sessions() as s:
        top_st, low_st = await s.get(Station, stations[0].id), await s.get(Station, stations[9].id)
        assert (top_st.stars, top_st.demotion_streak) == (5, 0)
        assert (low_st.stars, low_st.demotion_streak, low_st.status) == (1, 1, "active")
        texts = {n.openid: json.loads(n.payload)["text"] for n in (await s.scalars(select(Notification))).all()}
        assert "继续保持五星" in texts["op-top"] and "不超过50000元" in texts["op-top"]
        assert "星级保持一星,但计为一次降星" in texts["op-low"] and "如明年再次降星,将予以摘牌" in texts["op-low"]


async def test_demoted_two_years_running_is_delisted_and_leaves_the_boards(sessions):
    # N=20: top ranks <= 4, bottom ranks > 18 -> S19 and S20 are demoted in 2026.
    async with transaction(sessions) as s:
        stations = await cohort(s, [200 - 10 * i for i in range(20)])
        s.add(Staff(openid="op-s20", role="operator", station_id=stations[19].id))
        s.add(Staff(openid="admin-x", role="admin"))
        assert moves(await rating.preview(s, 2026, settings(), now=AFTER_2026))[1] == {"S19", "S20"}
        assert isinstance(await rating.confirm(s, 2026, "admin-1", now=AFTER_2026), Outcome)
    # 2027: S19 comes first (promoted; its streak resets), S20 is last again (delisted).
    async with transaction(sessions) as s:
        await give_points(s, stations, [100 + i for i in range(18, 0, -1)] + [500, 1], 2027)
        out = await rating.preview(s, 2027, settings(), now=AFTER_2027)
        assert isinstance(out, Outcome)
        assert [x.code for x in out.delisted] == ["S20"]
        s20 = next(x for x in out.lines if x.code == "S20")
        assert (s20.move, s20.streak_before, s20.stars_before, s20.stars_after) == ("down", 1, 2, 1)
        assert isinstance(await rating.confirm(s, 2027, "admin-1", now=AFTER_2027), Outcome)
    async with sessions() as s:
        gone = await s.get(Station, stations[19].id)
        assert gone is not None and gone.status == "delisted" and gone.delisted_at == AFTER_2027
        assert (gone.delisted_code, gone.delisted_params) == ("rating", {"year": 2027})
        reason = admin_texts.delisting(gone.delisted_code, gone.delisted_params)
        assert reason == "2027年度评星位列后10%,连续两年降星(摘牌)"
        back = await s.get(Station, stations[18].id)
        assert back is not None and (back.stars, back.demotion_streak) == (3, 0)
        for period in (Period("year", "2027"), Period("month", "2027-11"), Period("total", "all")):
            assert "S20" not in {r.code for r in await station_board(s, period, now=AFTER_2027)}
        texts = [json.loads(n.payload)["text"] for n in (await s.scalars(
            select(Notification).where(Notification.openid == "op-s20").order_by(Notification.id))).all()]
        assert len(texts) == 2 and "如明年再次降星,将予以摘牌" in texts[0] and "依规予以摘牌" in texts[1]
        admin = (await s.scalars(select(Notification.key).where(Notification.openid == "admin-x")
                                 .order_by(Notification.key))).all()
        assert admin == ["rating:2026:r0:admin:admin-x", "rating:2027:r0:admin:admin-x"]


async def test_subsidy_list(sessions):
    async with transaction(sessions) as s:
        await cohort(s, [100, 90, 80, 70, 60, 50, 40, 30, 20, 10])
        await f.station(s, "NEWH", certified_on=date(2026, 3, 1), kind="home")
        await f.station(s, "NEWC", certified_on=date(2026, 7, 1), kind="community")
        await f.station(s, "NEWX", certified_on=date(2026, 7, 1), status="delisted")
        await f.station(s, "NEXT", certified_on=date(2027, 1, 5))
        out = await rating.preview(s, 2026, settings(), now=AFTER_2026)
        custom = await rating.preview(s, 2026, settings(subsidy_top_cny=30_000, subsidy_new_home_cny=1,
                                                        subsidy_new_community_cny=2), now=AFTER_2026)
    assert isinstance(out, Outcome) and isinstance(custom, Outcome)
    assert [(x.code, x.subsidy_reason, x.subsidy_cny) for x in out.subsidies] == [
        ("S01", "top", 50_000), ("S02", "top", 50_000), ("NEWC", "new_community", 100_000),
        ("NEWH", "new_home", 50_000)]
    assert out.subsidy_total == 250_000
    assert [x.subsidy_cny for x in custom.subsidies] == [30_000, 30_000, 2, 1]
    new = next(x for x in out.lines if x.code == "NEWH")
    assert new.rank is None and new.move == "same" and new.cohort == "new"


async def test_preview_refused_before_the_year_ends_and_while_an_extension_is_open(sessions):
    async with transaction(sessions) as s:
        stations = await cohort(s, [10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
        s.add(Extension(station_id=stations[9].id, year=2026, days=10, reason="台风"))
        # In S10's extra days: counts toward 2026 and lifts it from last to first.
        await award(s, stations[9], 100, local(2027, 1, 8))
        early = await rating.preview(s, 2026, settings(), now=local(2026, 12, 31, 23, 59))
        windowed = await rating.preview(s, 2026, settings(), now=local(2027, 1, 10, 23, 59))
    assert isinstance(early, RatingRefused) and early.reason is RatingRefusal.YEAR_NOT_ENDED
    assert isinstance(windowed, RatingRefused) and windowed.reason is RatingRefusal.WINDOW_OPEN
    assert "provisional until all extended windows have closed: S10" in windowed.detail
    assert "2027-01-11 00:00" in windowed.detail
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(RatingRun)) == 0
    async with transaction(sessions) as s:
        out = await rating.preview(s, 2026, settings(), now=local(2027, 1, 11))
    assert moves(out) == ({"S10", "S01"}, {"S09"})


async def test_confirm_twice_applies_once(sessions):
    async with transaction(sessions) as s:
        stations = await cohort(s, [100, 90, 80, 70, 60, 50, 40, 30, 20, 10])
        s.add(Staff(openid="op-1", role="operator", station_id=stations[0].id))
        await rating.preview(s, 2026, settings(), now=AFTER_2026)
    for _ in range(2):
        async with transaction(sessions) as s:
            done = await rating.confirm(s, 2026, "admin-1", now=AFTER_2026, admin_openids={"env-admin"})
        assert isinstance(done, Outcome) and done.status == "confirmed"
    assert done.already and done.notified == 0
    async with transaction(sessions) as s:
        again = await rating.preview(s, 2026, settings(), now=AFTER_2026)
        assert isinstance(again, RatingRefused) and again.reason is RatingRefusal.CONFIRMED
        assert [st.stars for st in (await s.scalars(select(Station).order_by(Station.code))).all()] == \
            [4, 4, 3, 3, 3, 3, 3, 3, 3, 2]
        keys = set((await s.scalars(select(Notification.key))).all())
        assert keys == {"rating:2026:r0:admin:env-admin", f"rating:2026:r0:{stations[0].id}:op-1"}
        run = await s.get(RatingRun, 2026)
        assert run is not None and (run.status, run.confirmed_by) == ("confirmed", "admin-1")


async def test_reverse_then_confirm_again(sessions):
    async with transaction(sessions) as s:
        stations = await cohort(s, [100, 90, 80, 70, 60, 50, 40, 30, 20, 10])
        stations[9].demotion_streak = 1  # demoted last year: this demotion delists it
        s.add(Staff(openid="op-10", role="operator", station_id=stations[9].id))
        await rating.preview(s, 2026, settings(), now=AFTER_2026)
        first = await rating.confirm(s, 2026, "admin-1", now=AFTER_2026)
        assert isinstance(first, Outcome) and [x.code for x in first.delisted] == ["S10"]
    async with transaction(sessions) as s:
        undone = await rating.reverse_rating(s, 2026, "admin-2", now=AFTER_2026)
        assert isinstance(undone, Outcome) and undone.status == "reversed" and undone.revision == 1
        twice = await rating.reverse_rating(s, 2026, "admin-2", now=AFTER_2026)
        assert isinstance(twice, RatingRefused) and twice.reason is RatingRefusal.NOT_CONFIRMED
        no_preview = await rating.confirm(s, 2026, "admin-1", now=AFTER_2026)
        assert isinstance(no_preview, RatingRefused) and no_preview.reason is RatingRefusal.NO_PREVIEW
    async with sessions() as s:
        restored = [(st.code, st.stars, st.demotion_streak, st.status, st.delisted_at) for st in
                    (await s.scalars(select(Station).order_by(Station.code))).all()]
        assert restored[0] == ("S01", 3, 0, "active", None) and restored[9] == ("S10", 3, 1, "active", None)
    async with transaction(sessions) as s:
        await award(s, stations[9], 95, local(2026, 12, 1))  # a correction: S10 now first
        out = await rating.preview(s, 2026, settings(), now=AFTER_2026)
        assert moves(out) == ({"S01", "S10"}, {"S09"})
        again = await rating.confirm(s, 2026, "admin-1", now=AFTER_2026)
        assert isinstance(again, Outcome) and again.revision == 1 and not again.delisted
    async with sessions() as s:
        s10 = await s.get(Station, stations[9].id)
        assert s10 is not None and (s10.stars, s10.demotion_streak, s10.status) == (4, 0, "active")
        keys = (await s.scalars(select(Notification.key).where(Notification.openid == "op-10")
                                .order_by(Notification.id))).all()
        sid = stations[9].id
        assert keys == [f"rating:2026:r0:{sid}:op-10", f"rating-reversed:2026:r1:{sid}:op-10",
                        f"rating:2026:r1:{sid}:op-10"]


async def test_confirm_refuses_a_stale_preview_and_years_out_of_order(sessions):
    async with transaction(sessions) as s:
        stations = await cohort(s, [100, 90, 80, 70, 60, 50, 40, 30, 20, 10])
        await give_points(s, stations, [5] * 10, 2027)
        await rating.preview(s, 2026, settings(), now=AFTER_2027)
        stations[3].stars = 5  # changed by hand after the preview
        stale = await rating.confirm(s, 2026, "admin-1", now=AFTER_2027)
        assert isinstance(stale, RatingRefused) and stale.reason is RatingRefusal.STALE and "S04" in stale.detail
        await rating.preview(s, 2027, settings(), now=AFTER_2027)
        assert isinstance(await rating.confirm(s, 2027, "admin-1", now=AFTER_2027), Outcome)
        late = await rating.preview(s, 2026, settings(), now=AFTER_2027)
        assert isinstance(late, RatingRefused) and late.reason is RatingRefusal.LATER_CONFIRMED
        assert isinstance(await rating.reverse_rating(s, 2027, "admin-1", now=AFTER_2027), Outcome)
        assert isinstance(await rating.preview(s, 2026, settings(), now=AFTER_2027), Outcome)


# -- the command ---------------------------------------------------------------------------------------------


def test_rate_command(sqlite_url):
    async def setup() -> None:
        engine = make_engine(sqlite_url)
        async with transaction(make_sessionmaker(engine)) as s:
            await cohort(s, [100, 90, 80, 70, 60, 50, 40, 30, 20, 10], year=2024)
        await engine.dispose()

    run_sync(setup())
    done, bad = cli(sqlite_url, ["rate", "2024", "--confirm", "--actor", "admin-cli"], ["rate", "20x4"])
    assert done.returncode == 0, done.stderr
    assert "S01" in done.stdout and "3->4" in done.stdout and "S10" in done.stdout and "3->2" in done.stdout
    assert "total" in done.stdout and "100000" in done.stdout and "2024 confirmed" in done.stdout
    assert bad.returncode == 2 and bad.stderr.strip() == "talenthome: error: year must look like 2026, got '20x4'"


def test_rate_command_in_process(sqlite_url, monkeypatch, capsys):
    """The other outcomes of `rate`, through talenthome.cli.main (same code, without a process each)."""
    from talenthome.cli import main

    async def setup() -> None:
        engine = make_engine(sqlite_url)
        async with transaction(make_sessionmaker(engine)) as s:
            await cohort(s, [100, 90, 80, 70, 60, 50, 40, 30, 20, 10], year=2024)
        await engine.dispose()

    run_sync(setup())
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("LOGNAME", "ops")
    monkeypatch.delenv("RATING_COHORT", raising=False)
    assert main(["rate", "2024"]) == 0
    assert "this is a preview; apply it with: talenthome rate 2024 --confirm" in capsys.readouterr().out
    assert main(["rate", "2024", "--confirm"]) == 0
    assert "2024 confirmed" in capsys.readouterr().out
    assert main(["rate", "2024", "--confirm"]) == 0
    assert "confirmed already; nothing changed" in capsys.readouterr().out
    assert main(["rate", "2024"]) == 0
    assert "rating 2024 (confirmed" in capsys.readouterr().out
    assert main(["rate", "2023", "--reverse"]) == 2
    assert capsys.readouterr().err.strip() == "talenthome: error: 2023 is not confirmed; there is nothing to reverse"
    assert main(["rate", "2999"]) == 2
    assert "2999 has not ended" in capsys.readouterr().err
    assert main(["rate", "2024", "--reverse"]) == 0
    assert "2024 reversed" in capsys.readouterr().out
    assert main(["rate", "2024"]) == 0
    assert "rating 2024 (preview, revision 1" in capsys.readouterr().out
    # one audit row per confirming or reversing command (refusals too); previews and reads leave none
    assert run_sync(_audit_rows(sqlite_url)) == [
        ("cli:ops", "admin", "rate 2024 --confirm", "confirmed r0"),
        ("cli:ops", "admin", "rate 2024 --confirm", "already confirmed r0"),
        ("cli:ops", "admin", "rate 2023 --reverse", "refused: 2023 is not confirmed; there is nothing to reverse"),
        ("cli:ops", "admin", "rate 2024 --reverse", "reversed, now r1")]


async def _audit_rows(url: str) -> list[tuple[str, str, str, str]]:
    """(actor, role, command, outcome up to its first colon-separated summary) of every audit row."""
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as s:
        rows = (await s.execute(select(AuditLog.actor, AuditLog.role, AuditLog.command, AuditLog.outcome)
                                .order_by(AuditLog.id))).all()
    await engine.dispose()
    return [(a, r, c, o if o.startswith("refused") else o.split(":")[0]) for a, r, c, o in rows]


def test_rate_help():
    from talenthome.cli import main

    for argv in (["rate", "--help"], ["month-close", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
