"""Endpoint health (last result, failure streak, 410 and auto-disable) from a batch of
recorded attempts, written as rarely as correctness allows.

The endpoint row is shared by every attempt to that endpoint in every worker process: a
write per attempt made it a hot row (writers of two processes queued on its lock, and one
writer thread spent most of its time there: 280 deliveries/s in scenario 2 of the
benchmarks). So:
- a success on a healthy endpoint is written at most about once a second (the page shows
  "last attempt" to the second), judged on the endpoint's row as read once per batch; any
  failure, and the first success after failures, is always written;
- a batch's successes are one executemany, and endpoints are written in id order, so two
  writers can never deadlock."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import NamedTuple

from ..config import Settings
from ..services import operational_events
from ..services.endpoint_health import (
    auto_disable_if_failing_too_long,
    current_health,
    disable_if_gone,
    health_result,
    needs_health_write,
    record_endpoint_result,
    record_endpoint_successes,
)


class EndpointHealth(NamedTuple):
    """An endpoint's health after an attempt of the batch (the row read for the batch has
    the same fields by name): what `needs_health_write` compares the next one with."""

    consecutive_failures: int | None
    failing_since: datetime | None
    last_attempt_at: datetime | None
    last_attempt_status: int | None


# An endpoint whose row is gone (nothing to write; the UPDATE finds no row).
_UNKNOWN = EndpointHealth(0, None, None, None)


def record_health(items, settings: Settings) -> None:
    """`items`: the recorded attempts (FinishedAttempt) of one transaction."""
    by_endpoint = defaultdict(list)
    for item in items:
        by_endpoint[item.work.endpoint.id].append(item)
    # The rows of the batch's endpoints, read once per batch, in its transaction. A
    # snapshot read by the claim could predate a failure recorded since (by this process or
    # another): trusted, a success "within the second of the last one" was skipped and the
    # endpoint kept a failure streak its last attempt had ended. The rows also say what any
    # process wrote last, so a success another worker wrote this second is not written again.
    fresh = current_health(by_endpoint)
    # The successes of healthy endpoints (nearly every attempt) are written together; one
    # that needs more than its write first writes those gathered, so rows lock in id order.
    successes: list[dict] = []
    for endpoint_id in sorted(by_endpoint):
        health = fresh.get(endpoint_id, _UNKNOWN)
        for item in by_endpoint[endpoint_id]:
            if item.row["succeeded"] and not health.consecutive_failures:
                health = _gather_success(item, health, successes)
            else:
                record_endpoint_successes(successes)
                successes = []
                health = _record_one(item, health, settings)
    record_endpoint_successes(successes)


def _gather_success(item, health, successes: list[dict]):
    """Gather a success on a healthy endpoint if it needs a write; the health after it."""
    endpoint_id, row = item.work.endpoint.id, item.row
    status_code = row["response_status"]
    if not needs_health_write(health, item.started_at, status_code, True):
        return health
    successes.append(health_result(endpoint_id, item.started_at, status_code, row["error_class"]))
    return EndpointHealth(0, None, item.started_at, status_code)


def _record_one(item, health, settings: Settings):
    """Write a failure, or a success that ends a streak, and what follows from it; the
    endpoint's health after it."""
    endpoint, row = item.work.endpoint, item.row
    status_code, succeeded = row["response_status"], row["succeeded"]
    record_endpoint_result(endpoint.id, item.started_at, status_code, row["error_class"], succeeded)
    if succeeded:
        operational_events.after_success(
            endpoint.id, health.consecutive_failures, health.failing_since
        )
        return EndpointHealth(0, None, item.started_at, status_code)
    disable_if_gone(endpoint.id, status_code)
    auto_disable_if_failing_too_long(endpoint.id, settings.disable_after_hours)
    operational_events.after_failure(endpoint.id, settings.failing_threshold)
    return EndpointHealth(
        (health.consecutive_failures or 0) + 1,
        health.failing_since or item.started_at,
        item.started_at,
        status_code,
    )
