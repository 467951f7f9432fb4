"""When to try again: the schedule with jitter, bounded Retry-After, and when to give up.

`decide` is the one place a try's result becomes the delivery's next state, on every path:
an answer (or a network error) from the receiver, a try whose worker died (its lease
expired), an envelope that cannot be built, a manual retry. The schedule caps the tries on
all of them: after `len(schedule) + 1` tries a failure is final, and a manual retry of a
delivery that used them up gets exactly one try."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from ..models import DeliveryStatus, ErrorClass
from .claims import Outcome

JITTER = 0.20
MAX_RETRY_AFTER_SECONDS = 24 * 3600  # a receiver cannot park a delivery for longer than a day
RETRY_AFTER_STATUSES = (429, 503)


def decide(
    schedule: tuple[int, ...],
    attempt_number: int,
    at: datetime,
    *,
    succeeded: bool = False,
    status_code: int | None = None,
    error_class: str | None = None,
    retry_after: str | None = None,
) -> Outcome:
    """The delivery's next state after its `attempt_number`-th try, which ended at `at`
    (naive UTC): succeeded, retrying at a time, or failed.

    A 410 disables the endpoint, and a blocked destination or an unbuildable envelope will
    not mend by waiting: those fail at once. `retry_after` is the receiver's Retry-After
    header, honoured on 429 and 503."""
    if succeeded:
        return Outcome(DeliveryStatus.SUCCEEDED)
    if status_code == 410 or error_class in ErrorClass.NOT_RETRIED:
        return Outcome(DeliveryStatus.FAILED)
    asked = parse_retry_after(retry_after, at) if status_code in RETRY_AFTER_STATUSES else None
    delay = next_delay(schedule, attempt_number, asked)
    if delay is None:
        return Outcome(DeliveryStatus.FAILED)
    return Outcome(DeliveryStatus.RETRYING, at + timedelta(seconds=delay))


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
