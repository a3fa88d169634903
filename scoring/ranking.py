"""Competition ranking ("1224") and the rating cut lines (SPEC 3), as pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Standing:
    """One account's score in a period. `reached_at` is when it reached that score (its latest entry
    in the period; None with no entry), the first tie-break; `code` is the second."""

    id: int
    code: str
    name: str
    points: int
    reached_at: datetime | None = None


@dataclass(frozen=True)
class Ranked:
    rank: int
    standing: Standing

    @property
    def code(self) -> str:
        return self.standing.code

    @property
    def points(self) -> int:
        return self.standing.points

    def as_json(self) -> dict[str, object]:
        return {"rank": self.rank, "code": self.standing.code, "name": self.standing.name,
                "points": self.standing.points}


_NEVER = datetime.max


def rank(standings: Sequence[Standing]) -> list[Ranked]:
    """Equal points share a rank and the next rank skips (1, 2, 2, 4); display order within a tie is
    who reached the score first, then code."""
    ordered = sorted(standings, key=lambda s: (-s.points, s.reached_at or _NEVER, s.code))
    out: list[Ranked] = []
    for i, s in enumerate(ordered):
        r = out[-1].rank if out and out[-1].standing.points == s.points else i + 1
        out.append(Ranked(r, s))
    return out


def cut_lines(ranks: Sequence[int]) -> tuple[set[int], set[int]]:
    """Indexes (into `ranks`) of the top set and the bottom set for N = len(ranks) stations.

    Top: rank <= floor(0.2 N). Bottom: rank > N - floor(0.1 N). Stations tied at a line share their rank,
    so they all pass or all stay. floor(0.2N) + floor(0.1N) < N, so no index is in both sets.
    Integer arithmetic: floor(0.2 N) = N // 5 and floor(0.1 N) = N // 10.
    """
    n = len(ranks)
    top_line, bottom_line = n // 5, n - n // 10
    top = {i for i, r in enumerate(ranks) if r <= top_line}
    bottom = {i for i, r in enumerate(ranks) if r > bottom_line}
    return top, bottom
