"""The one place that reads the wall clock, so tests can move time (the only thing we stub)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset_seconds = 0.0
_frozen_at: datetime | None = None


def utcnow() -> datetime:
    """Naive UTC now: stored naive because SQLite has no time zones; every column is UTC."""
    now = _frozen_at if _frozen_at is not None else datetime.now(UTC).replace(tzinfo=None)
    return now + timedelta(seconds=_offset_seconds)


def freeze() -> None:
    """Stop this process's clock where it is (tests only); `advance` still moves it."""
    global _frozen_at
    _frozen_at = datetime.now(UTC).replace(tzinfo=None)


def advance(seconds: float) -> None:
    """Move this process's clock forward (tests only)."""
    global _offset_seconds
    _offset_seconds += seconds


def reset() -> None:
    global _offset_seconds, _frozen_at
    _offset_seconds = 0.0
    _frozen_at = None
