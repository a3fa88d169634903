from datetime import datetime

from scoring.boards import station_board, talent_points
from scoring.db import transaction
from scoring.facts import visit
from scoring.facts.common import Applied
from scoring.periods import Period
from tests import factories as f


async def test_visit_applies_once_on_both_databases(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
        t = await f.talent(s)
        v = await f.visit(s, t, st, datetime(2026, 11, 2, 3, 0))
    async with transaction(sessions) as s:
        first = await visit.apply(s, v.id)
    async with transaction(sessions) as s:
        again = await visit.apply(s, v.id)
    assert isinstance(first, Applied) and len(first.entries) == 2 and first.written == 2
    assert isinstance(again, Applied) and again.already
    assert [e.id for e in again.entries] == [e.id for e in first.entries]
    async with sessions() as s:
        pts = await talent_points(s, t.id, now=datetime(2026, 11, 20))
        board = await station_board(s, Period("month", "2026-11"), now=datetime(2026, 11, 20))
    assert pts == {"total": 1, "year": 1, "month": 1, "balance": 1}
    assert [(r.rank, r.code, r.points) for r in board] == [(1, "ST1", 1)]
