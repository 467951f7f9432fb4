"""Endpoint health (last result, failure streak, 410 and auto-disable) from a batch of
recorded attempts, written as rarely as correctness allows.

The endpoint row is shared by every attempt to that endpoint in every worker process: a
write per attempt made it a hot row (writers of two processes queued on its lock, and one
writer thread spent most of its time there: 280 deliveries/s in scenario 2 of the
benchmarks). So:
- a success on a healthy endpoint is written at most once a second per process (the page
  shows "last attempt" to the second); any failure, and the first success after failures,
  is always written;
- within a batch, endpoints are written in id order, so two writers can never deadlock."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime

from ..config import Settings
from ..services import operational_events
from ..services.endpoint_health import (
    auto_disable_if_failing_too_long,
    disable_if_gone,
    health_result,
    needs_health_write,
    record_endpoint_result,
    record_endpoint_successes,
)


class RecentSuccessWrites:
    """Per process (one per delivery runner): the last success this process wrote for each
    endpoint. The health a claim read can predate it; `needs_health_write` takes the later
    of the two, so the next success within a second is not written again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[int, tuple[datetime, int | None]] = {}

    def last(self, endpoint_id: int) -> tuple[datetime, int | None] | None:
        with self._lock:
            return self._last.get(endpoint_id)

    def note(self, endpoint_id: int, started_at: datetime, status_code, succeeded: bool) -> None:
        with self._lock:
            if succeeded:
                self._last[endpoint_id] = (started_at, status_code)
            else:
                self._last.pop(endpoint_id, None)


def record_health(items, settings: Settings, recent: RecentSuccessWrites) -> None:
    """`items`: the recorded attempts (FinishedAttempt) of one transaction."""
    by_endpoint = defaultdict(list)
    for item in items:
        by_endpoint[item.work.endpoint.id].append(item)
    # The successes of healthy endpoints (nearly every attempt) are written together; one
    # that needs more than its write first writes those gathered, so rows lock in id order.
    successes: list[dict] = []
    for endpoint_id in sorted(by_endpoint):
        for item in by_endpoint[endpoint_id]:
            health = item.work.claim.endpoint_health
            if item.row["succeeded"] and not health.consecutive_failures:
                _gather_success(item, recent, successes)
            else:
                record_endpoint_successes(successes)
                successes = []
                _record_one(item, settings, recent)
    record_endpoint_successes(successes)


def _gather_success(item, recent: RecentSuccessWrites, successes: list[dict]) -> None:
    endpoint, row, health = item.work.endpoint, item.row, item.work.claim.endpoint_health
    status_code = row["response_status"]
    if needs_health_write(health, item.started_at, status_code, True, recent.last(endpoint.id)):
        successes.append(
            health_result(endpoint.id, item.started_at, status_code, row["error_class"])
        )
        recent.note(endpoint.id, item.started_at, status_code, True)


def _record_one(item, settings: Settings, recent: RecentSuccessWrites) -> None:
    endpoint, row = item.work.endpoint, item.row
    status_code, succeeded = row["response_status"], row["succeeded"]
    written_since = recent.last(endpoint.id)
    health = item.work.claim.endpoint_health
    if needs_health_write(health, item.started_at, status_code, succeeded, written_since):
        record_endpoint_result(
            endpoint.id, item.started_at, status_code, row["error_class"], succeeded
        )
        recent.note(endpoint.id, item.started_at, status_code, succeeded)
    if not succeeded:
        disable_if_gone(endpoint.id, status_code)
        auto_disable_if_failing_too_long(endpoint.id, settings.disable_after_hours)
        operational_events.after_failure(endpoint.id, settings.failing_threshold)
    else:
        operational_events.after_success(
            endpoint.id, health.consecutive_failures, health.failing_since
        )
