"""The one place that reads the wall clock, so tests can move it (time-machine patches it too)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now as naive UTC: the convention for every datetime stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def unix(at: datetime) -> float:
    """A naive-UTC datetime (the database convention) as unix seconds."""
    return at.replace(tzinfo=UTC).timestamp()
