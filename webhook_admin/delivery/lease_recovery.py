"""Tries whose worker died: found by their expired lease, ended like any failed try.

An interrupted try counts against the schedule and backs off like any other failure: a
delivery whose worker is killed during every try still reaches `failed` after its last
scheduled try, instead of being sent again at once, without end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..clock import utcnow
from ..models import ErrorClass
from .claims import expired_leases, record_interrupted
from .retry_policy import decide


@dataclass(frozen=True)
class Recovered:
    delivery_id: int
    attempts_made: int
    status: str  # retrying, or failed when the schedule is used up
    retry_at: datetime | None  # naive UTC, when retrying


def recover_expired_leases(schedule: tuple[int, ...], limit: int = 500) -> list[Recovered]:
    """Record each expired lease's try as interrupted (flushed, not committed) and decide
    what comes next, as for any failed try. Returns the deliveries recovered."""
    now = utcnow()
    recovered = []
    for lease in expired_leases(now, limit):
        outcome = decide(schedule, lease.attempts_count, now, error_class=ErrorClass.INTERRUPTED)
        if record_interrupted(lease, outcome, now):
            recovered.append(
                Recovered(lease.id, lease.attempts_count, outcome.status, outcome.next_attempt_at)
            )
    return recovered
