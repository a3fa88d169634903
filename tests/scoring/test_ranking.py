"""Competition ranking ("1224"), tie display order and the rating cut lines (SPEC 3)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.boards import station_board
from scoring.db import transaction
from scoring.facts import visit
from scoring.periods import Period
from scoring.ranking import Standing, cut_lines, rank
from tests import factories as f
from tests.scoring import builders as b

T0 = datetime(2026, 3, 1, 2, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request, tmp_path):
    return await b.clean_db_url(request, tmp_path)


def s(code: str, points: int, reached: datetime | None = None) -> Standing:
    return Standing(id=hash(code) % 10_000, code=code, name=code, points=points, reached_at=reached)


def test_competition_ranking_1224():
    ranked = rank([s("D", 5), s("B", 8, T0), s("A", 10), s("C", 8, T0)])
    assert [(r.rank, r.code, r.points) for r in ranked] == [(1, "A", 10), (2, "B", 8), (2, "C", 8), (4, "D", 5)]
    assert [r.rank for r in rank([s("A", 3), s("B", 3), s("C", 3), s("D", 1)])] == [1, 1, 1, 4]
    assert rank([]) == []
    assert ranked[0].as_json() == {"rank": 1, "code": "A", "name": "A", "points": 10}


def test_a_tie_is_shown_by_who_reached_the_score_first_then_by_code():
    ranked = rank([
        s("A", 7, T0 + timedelta(hours=2)),
        s("Z", 7, T0),
        s("M", 7, T0 + timedelta(hours=1)),
        s("C", 7, T0 + timedelta(hours=1)),
        s("B", 7, None),  # never reached it (0 with no entry, say): last
        s("X", 9, T0 + timedelta(days=9)),
    ])
    assert [(r.rank, r.code) for r in ranked] == [(1, "X"), (2, "Z"), (2, "C"), (2, "M"), (2, "A"), (2, "B")]


def test_negative_points_rank_below_zero():
    assert [(r.rank, r.code) for r in rank([s("N", -3), s("Z", 0), s("P", 2)])] == [(1, "P"), (2, "Z"), (3, "N")]


async def test_station_board_tie_order_comes_from_the_ledger(sessions):
    async with transaction(sessions) as ses:
        a = await f.station(ses, "A")
        bb = await f.station(ses, "B")
        c = await f.station(ses, "C")
        await f.station(ses, "D")  # no points at all
        t = await f.talent(ses)
    # B reaches 2 points first, then A, then C also 2 points but at the same moment as A.
    plan = [(bb, T0), (bb, T0 + timedelta(days=1)), (a, T0), (a, T0 + timedelta(days=2)),
            (c, T0 + timedelta(days=1)), (c, T0 + timedelta(days=2))]
    async with transaction(sessions) as ses:
        for station, at in plan:
            v = await f.visit(ses, t, station, at)
            assert await visit.credit(ses, [v.id]) == 1
    async with sessions() as ses:
        ranked = await station_board(ses, Period("year", "2026"), now=T0 + timedelta(days=30))
    assert [(r.rank, r.code, r.points) for r in ranked] == [(1, "B", 2), (1, "A", 2), (1, "C", 2), (4, "D", 0)]


async def test_delisted_and_not_yet_eligible_stations_are_not_ranked(sessions):
    async with transaction(sessions) as ses:
        ok = await f.station(ses, "OK", type="industry")
        other = await f.station(ses, "OTHER", type="service")
        gone = await f.station(ses, "GONE", status="delisted")
        new = await f.station(ses, "NEW", certified_on=date(2026, 2, 1))
        t = await f.talent(ses)
        for station in (ok, gone, new, other):
            v = await f.visit(ses, t, station, T0)
            await visit.credit(ses, [v.id])
    async with sessions() as ses:
        now = T0 + timedelta(days=1)
        for kind, key in (("year", "2026"), ("month", "2026-03"), ("total", "all")):
            ranked = await station_board(ses, Period(kind, key), now=now)
            assert [(r.rank, r.code) for r in ranked] == [(1, "OK"), (1, "OTHER")], key
        typed = await station_board(ses, Period("year", "2026"), now=now, station_type="industry")
    assert [r.code for r in typed] == ["OK"]


# -- cut lines ----------------------------------------------------------------------------------------
def ranks_of(points: list[int]) -> list[int]:
    """The competition ranks of `points`, index for index."""
    ranked = rank([Standing(i, f"S{i:03d}", "", p) for i, p in enumerate(points)])
    by_id = {r.standing.id: r.rank for r in ranked}
    return [by_id[i] for i in range(len(points))]


def test_cut_line_sizes_without_ties_for_every_n_up_to_200():
    for n in range(1, 201):
        ranks = list(range(1, n + 1))
        top, bottom = cut_lines(ranks)
        assert len(top) == n // 5 and len(bottom) == n // 10, n
        assert top == set(range(n // 5)) and bottom == set(range(n - n // 10, n))
        assert not top & bottom


def test_cut_lines_small_cases():
    assert cut_lines([]) == (set(), set())
    assert cut_lines([1, 2, 3, 4]) == (set(), set())  # N < 5: nobody moves
    assert cut_lines([1, 2, 3, 4, 5]) == ({0}, set())
    assert cut_lines(list(range(1, 11))) == ({0, 1}, {9})
    # ties at the top line all pass, ties at the bottom line all stay
    assert cut_lines([1, 2, 2, 4, 5, 6, 7, 8, 9, 10]) == ({0, 1, 2}, {9})
    assert cut_lines([1, 2, 3, 4, 5, 6, 7, 8, 9, 9]) == ({0, 1}, set())
    assert cut_lines([1] * 10) == (set(range(10)), set())


@st.composite
def tied_points(draw: st.DrawFn) -> list[int]:
    """N = 1..200 stations whose points come from a few values (many ties) or many (few ties)."""
    n = draw(st.integers(1, 200))
    spread = draw(st.sampled_from([0, 1, 3, 10, 50, 10_000]))
    rnd = draw(st.randoms(use_true_random=False))  # far cheaper than drawing 200 integers one by one
    return [rnd.randint(0, spread) for _ in range(n)]


@settings(max_examples=150, deadline=None)
@given(tied_points())
def test_cut_line_properties_with_random_ties(points):
    n = len(points)
    ranks = ranks_of(points)
    top, bottom = cut_lines(ranks)
    assert not top & bottom
    assert top | bottom <= set(range(n))
    # Tied stations share their fate at both lines.
    groups: dict[int, set[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(p, set()).add(i)
    for members in groups.values():
        assert members <= top or not members & top
        assert members <= bottom or not members & bottom
    # Better never falls where worse passes: the top is a prefix, the bottom a suffix, of the order.
    order = [i for p in sorted(groups, reverse=True) for i in sorted(groups[p])]
    flags_top = [i in top for i in order]
    flags_bottom = [i in bottom for i in order]
    assert flags_top == sorted(flags_top, reverse=True)
    assert flags_bottom == sorted(flags_bottom)
    # The sets follow the ranks: top = ranks <= floor(0.2N), bottom = ranks > N - floor(0.1N).
    assert top == {i for i, r in enumerate(ranks) if r <= n // 5}
    assert bottom == {i for i, r in enumerate(ranks) if r > n - n // 10}
    # With ties the top can only grow past floor(0.2N) and the bottom only shrink below floor(0.1N).
    assert len(top) >= min(n // 5, n) and len(bottom) <= n // 10
    if len(set(points)) == n:
        assert len(top) == n // 5 and len(bottom) == n // 10


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200), st.randoms(use_true_random=False))
def test_cut_line_sizes_match_when_there_are_no_ties(n, rnd):
    points = rnd.sample(range(-50, 5000), n)
    top, bottom = cut_lines(ranks_of(points))
    assert (len(top), len(bottom)) == (n // 5, n // 10)
    best = sorted(range(n), key=lambda i: -points[i])
    assert top == set(best[: n // 5]) and bottom == set(best[n - n // 10:])
