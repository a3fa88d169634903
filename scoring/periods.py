"""Days, months and years in Asia/Shanghai (SPEC 3, "Time"); eligibility and extensions.

Stored datetimes are naive UTC; every period boundary is local midnight converted to naive UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")


def to_local(at: datetime) -> datetime:
    """A naive-UTC (or aware) datetime in local time."""
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    return aware.astimezone(TZ)


def to_utc_naive(at: datetime) -> datetime:
    """Any datetime as naive UTC; a naive input is taken as local (Asia/Shanghai) time."""
    aware = at.replace(tzinfo=TZ) if at.tzinfo is None else at
    return aware.astimezone(UTC).replace(tzinfo=None)


def local_midnight_utc(day: date) -> datetime:
    """00:00 local on `day`, as naive UTC."""
    return to_utc_naive(datetime(day.year, day.month, day.day))


def local_day(at: datetime) -> date:
    return to_local(at).date()


def month_key(at: datetime) -> str:
    return to_local(at).strftime("%Y-%m")


def year_of(at: datetime) -> int:
    return to_local(at).year


@dataclass(frozen=True)
class Period:
    """A board period: kind is 'month' ('2026-11'), 'year' ('2026') or 'total' ('all')."""

    kind: str
    key: str

    @classmethod
    def parse(cls, kind: str, key: str | None = None, *, now: datetime | None = None) -> Period:
        now = now or datetime.now(UTC)
        if kind == "total":
            return cls("total", "all")
        if kind == "year":
            key = key or str(year_of(now))
            if not (len(key) == 4 and key.isdigit()):
                raise ValueError(f"year period must look like 2026, got {key!r}")
            return cls("year", key)
        if kind == "month":
            key = key or month_key(now)
            try:
                datetime.strptime(key, "%Y-%m")
            except ValueError:
                raise ValueError(f"month period must look like 2026-11, got {key!r}") from None
            if len(key) != 7:
                raise ValueError(f"month period must look like 2026-11, got {key!r}")
            return cls("month", key)
        raise ValueError(f"unknown period kind {kind!r} (total, year or month)")

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """[start, end) as naive UTC; None for an open side."""
        if self.kind == "total":
            return None, None
        if self.kind == "year":
            y = int(self.key)
            return local_midnight_utc(date(y, 1, 1)), local_midnight_utc(date(y + 1, 1, 1))
        y, m = (int(p) for p in self.key.split("-"))
        nxt = date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)
        return local_midnight_utc(date(y, m, 1)), local_midnight_utc(nxt)

    @property
    def year(self) -> int | None:
        return None if self.kind == "total" else int(self.key[:4])


def next_month(key: str) -> str:
    y, m = (int(p) for p in key.split("-"))
    return f"{y + 1}-01" if m == 12 else f"{y}-{m + 1:02d}"


def previous_month(key: str) -> str:
    y, m = (int(p) for p in key.split("-"))
    return f"{y - 1}-12" if m == 1 else f"{y}-{m - 1:02d}"


def eligible_from(certified_on: date) -> datetime:
    """SPEC 3: a station's points count for rankings from 1 January after its certification year."""
    return local_midnight_utc(date(certified_on.year + 1, 1, 1))


def eligible_in_year(certified_on: date, year: int) -> bool:
    return certified_on.year < year


def scoring_window(year: int, extension_days: int, previous_extension_days: int = 0) -> tuple[datetime, datetime]:
    """A station's scoring window for `year` as naive UTC [start, end).

    Extension days of `year` move its end into the next year (those entries count toward `year`);
    extension days of the previous year move its start later by the same amount.
    """
    start = local_midnight_utc(date(year, 1, 1)) + timedelta(days=previous_extension_days)
    end = local_midnight_utc(date(year + 1, 1, 1)) + timedelta(days=extension_days)
    return start, end
