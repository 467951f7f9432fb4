"""The one place that reads the wall clock, so tests can move time (the only thing we stub)."""

from __future__ import annotations

from datetime import UTC, datetime

_offset_seconds = 0.0


def utcnow() -> datetime:
    """Naive UTC now: stored naive because SQLite has no time zones; every column is UTC."""
    from datetime import timedelta

    return datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=_offset_seconds)


def advance(seconds: float) -> None:
    """Move this process's clock forward (tests only)."""
    global _offset_seconds
    _offset_seconds += seconds


def reset() -> None:
    global _offset_seconds
    _offset_seconds = 0.0
