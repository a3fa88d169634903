"""scoring.boards.station_top and station_rank: the top of a station board and one station's line, computed
without ranking every station, are exactly the first lines of station_board and the station's line on it
(ranks, points, reached-at, order), on SQLite and PostgreSQL, for every kind of period, including stations
with no entry, with a sum of 0 after a void, with a negative sum, delisted, not yet eligible, of another
type, and a year moved by an extension."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scoring import boards
from scoring.db import make_engine, make_sessionmaker, transaction
from scoring.facts import survey
from scoring.models import Entry, Station
from scoring.periods import Period
from scoring.ranking import Ranked
from tests import factories as f
from tests.scoring import builders as b

Sessions = async_sessionmaker[AsyncSession]
NOW = b.local(2027, 3, 2, 12)  # two days into March 2027
PERIODS = [Period("total", "all"), Period("year", "2026"), Period("year", "2027"), Period("month", "2027-03"),
           Period("month", "2027-02"), Period("month", "2026-12"), Period("month", "2026-05")]


def lines(board: list[Ranked]) -> list[tuple[int, int, str, int, datetime | None]]:
    return [(r.rank, r.standing.id, r.code, r.points, r.standing.reached_at) for r in board]


async def city(sessions: Sessions, seed: int, *, extension: bool) -> list[Station]:
    rng = random.Random(seed)
    async with transaction(sessions) as s:
        sts = [await f.station(s, f"T{i:02d}", certified_on=date(2019 + i % 3, 5, 1),
                               type="comprehensive" if i % 3 else "industry") for i in range(14)]
        sts.append(await f.station(s, "T90", certified_on=date(2026, 7, 1)))  # eligible from 2027
        sts.append(await f.station(s, "T91", status="delisted"))
        tls = [await f.talent(s) for _ in range(6)]
        days = [b.local(2026, 5, 3, 10), b.local(2026, 12, 30, 9), b.local(2027, 1, 5, 11),
                b.local(2027, 2, 10, 15), b.local(2027, 3, 1, 9), b.local(2027, 3, 2, 8)]
        seen = set()
        for _ in range(40):
            st, t, day = rng.randrange(len(sts) - 4), rng.randrange(len(tls)), rng.choice(days)
            if (st, t, day) in seen:
                continue
            seen.add((st, t, day))
            await b.credited(s, await f.visit(s, tls[t], sts[st], day + timedelta(minutes=rng.randrange(600))))
        for st in sts[-4:]:  # the not eligible ones have points too
            await b.credited(s, await f.visit(s, tls[0], st, days[-1]))
        for amount, st in ((-5, sts[1]), (-1, sts[2]), (3, sts[3])):
            sv = await b.survey(s, st, 2026, amount)
            await survey.apply(s, sv.id, now=NOW)
        voided = (await s.scalars(select(Entry.id).where(Entry.station_id == sts[4].id))).all()
        if voided:  # a station whose sum is 0 with entries: reached-at set, 0 points
            await b.reversed_now(s, list(voided))
        if extension:
            await b.extension(s, sts[5], 2026, 10)
    return sts


@pytest.mark.parametrize("seed,extension", [(1, False), (2, True)])
async def test_top_and_own_rank_are_the_boards_lines(db_url: str, seed: int, extension: bool) -> None:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        sts = await city(sessions, seed, extension=extension)
        async with sessions() as s:
            for period in PERIODS:
                for station_type in (None, "industry"):
                    board = await boards.station_board(s, period, now=NOW, station_type=station_type)
                    assert board, period
                    for limit in (1, 2, 3, 5, 8, len(board), len(board) + 3):
                        top = await boards.station_top(s, period, limit, now=NOW, station_type=station_type)
                        assert lines(top) == lines(board[:limit]), (period, station_type, limit)
                    on_board = {r.standing.id: r for r in board}
                    for st in sts:
                        own = await boards.station_rank(s, st.id, period, now=NOW, station_type=station_type)
                        want = on_board.get(st.id)
                        assert (lines([own]) if own else None) == (lines([want]) if want else None), \
                            (period, station_type, st.code)
            year = [r.points for r in await boards.station_board(s, Period("year", "2026"), now=NOW)]
            assert min(year) < 0 and 0 in year and max(year) > 0  # the cases above are all there
    finally:
        await engine.dispose()

