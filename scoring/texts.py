"""The domain's words: every Chinese sentence the scoring core renders into an outbox row, by audience.

The domain decides and counts; the sentences a person reads are written here once, so the voice stays one
voice and `tests/test_architecture.py` can hold CJK strings to the texts modules. Labels (`month_label`,
`local_label`) render a period or a time the way every message names it.
"""

from __future__ import annotations

from datetime import datetime

from scoring.periods import to_local


def month_label(key: str) -> str:
    """'2026-03' -> '2026年3月'."""
    y, m = key.split("-")
    return f"{y}年{int(m)}月"


def local_label(at: datetime) -> str:
    """A naive UTC time as Asia/Shanghai '3月5日 14:00'."""
    loc = to_local(at)
    return f"{loc.month}月{loc.day}日 {loc:%H:%M}"
