"""When to try again: the schedule with jitter, bounded Retry-After, and when to give up."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

JITTER = 0.20
MAX_RETRY_AFTER_SECONDS = 24 * 3600  # a receiver cannot park a delivery for longer than a day
RETRY_AFTER_STATUSES = (429, 503)


def next_delay(
    schedule: tuple[int, ...],
    attempts_made: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next try after `attempts_made` tries, or None when exhausted.

    The first try is immediate; `schedule[n-1]` is the wait after the n-th failure."""
    if attempts_made > len(schedule):
        return None
    base = schedule[attempts_made - 1]
    delay = base * (1 + (rng or random).uniform(-JITTER, JITTER))
    if retry_after is not None:
        # Never sooner than the receiver asked, never later than our bound.
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (naive UTC `now`)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is not None:
        when = when.replace(tzinfo=None) - (when.utcoffset() or timedelta(0))
    return max(0.0, (when - now).total_seconds())
