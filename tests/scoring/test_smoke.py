from datetime import datetime

from scoring import ledger
from scoring.boards import station_board, talent_points
from scoring.db import transaction
from scoring.periods import Period
from tests import factories as f


async def test_visit_applies_once_on_both_databases(sessions):
    async with transaction(sessions) as s:
        st = await f.station(s, "ST1")
        t = await f.talent(s)
        v = await f.visit(s, t, st, datetime(2026, 11, 2, 3, 0))
    async with transaction(sessions) as s:
        first = await ledger.apply_visit(s, v.id)
    async with transaction(sessions) as s:
        again = await ledger.apply_visit(s, v.id)
    assert len(first.entries) == 2 and not first.already
    assert again.already and not again.entries
    async with sessions() as s:
        pts = await talent_points(s, t.id, now=datetime(2026, 11, 20))
        board = await station_board(s, Period("month", "2026-11"), now=datetime(2026, 11, 20))
    assert pts == {"total": 1, "year": 1, "month": 1, "balance": 1}
    assert [(r.rank, r.code, r.points) for r in board] == [(1, "ST1", 1)]
