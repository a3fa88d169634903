"""The labels every message shares: a month, a local time, a day, a list, rendered the way every
sentence (scoring/texts/talent.py, operator.py, admin.py) names them."""

from __future__ import annotations

from datetime import date, datetime

from scoring.periods import to_local

LIST_SEP = "、"


def month_label(key: str) -> str:
    """'2026-03' -> '2026年3月'."""
    y, m = key.split("-")
    return f"{y}年{int(m)}月"


def local_label(at: datetime) -> str:
    """A naive UTC time as Asia/Shanghai '3月5日 14:00'."""
    loc = to_local(at)
    return f"{loc.month}月{loc.day}日 {loc:%H:%M}"


def day_label(day: date) -> str:
    """A local day as '3月5日'."""
    return f"{day.month}月{day.day}日"
