"""The "nothing lost" invariants, checked against the database after every fault test.

1. Every accepted event has exactly one delivery per matching endpoint.
2. Every delivery is succeeded, failed (retries exhausted, every attempt recorded) or still
   waiting with a due time (pending / retrying with next_attempt_at set).
3. Attempt numbers are 1..n per delivery, n = the delivery's attempt count.
4. Nothing is both done and claimable (a final status with a lease or a due time).
5. Nothing a receiver acknowledged (logged a 2xx for that webhook-id at that endpoint) is
   marked failed.
6. No delivery has more tries than its schedule allows (len(schedule) + 1, plus one per
   manual retry), interrupted ones included."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select

from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus, ErrorClass, Event, Trigger
from webhook_admin.services.fanout import type_and_subscribers


def check_invariants(
    schedule: tuple[int, ...],
    accepted: Iterable[str] = (),
    acknowledged: Iterable[tuple[str, int]] = (),
    allow_waiting: bool = True,
    retention_cutoff: datetime | None = None,
) -> dict[str, int]:
    """Assert all six; returns deliveries by status for the test's own assertions.

    `accepted`: event ids ingest answered 2xx for; `acknowledged`: (event id, endpoint id)
    pairs a receiver answered 2xx; `allow_waiting=False` when everything must be done.
    `retention_cutoff` (a soak with retention on): events received before it may have lost
    their finished deliveries to the purge, so theirs need only be a subset (1.)."""
    db.session.rollback()  # read what the workers committed
    problems: list[str] = []
    events = {e.id: e for e in db.session.scalars(select(Event))}
    problems += [f"accepted event {i} is missing" for i in set(accepted) - events.keys()]
    deliveries = list(db.session.scalars(select(Delivery)))
    by_event: dict[str, list[int]] = defaultdict(list)
    for d in deliveries:
        by_event[d.event_id].append(d.endpoint_id)
    connection = db.session.connection()
    for event in events.values():
        expected = type_and_subscribers(connection, event.type, event.merchant_id).endpoint_ids
        if retention_cutoff and event.received_at < retention_cutoff:
            if not set(by_event[event.id]) <= set(expected):
                problems.append(f"event {event.id}: deliveries to {by_event[event.id]}")
        elif sorted(by_event[event.id]) != sorted(expected):
            problems.append(
                f"event {event.id}: deliveries to {by_event[event.id]}, want {expected}"
            )
    numbers: dict[int, list[int]] = defaultdict(list)
    manual: dict[int, int] = defaultdict(int)
    for delivery_id, number, trigger in db.session.execute(
        select(Attempt.delivery_id, Attempt.number, Attempt.trigger)
    ):
        numbers[delivery_id].append(number)
        manual[delivery_id] += trigger == Trigger.MANUAL
    acked = set(acknowledged)
    counts: dict[str, int] = defaultdict(int)
    for d in deliveries:
        counts[d.status] += 1
        problems += delivery_problems(d, sorted(numbers[d.id]), schedule, allow_waiting)
        if d.attempts_count > len(schedule) + 1 + manual[d.id]:
            problems.append(f"delivery {d.id}: {d.attempts_count} tries, over its schedule")
        if d.status == DeliveryStatus.FAILED and (d.event_id, d.endpoint_id) in acked:
            problems.append(f"delivery {d.id} is failed but its receiver acknowledged it")
    assert not problems, f"{len(problems)} invariant violations:\n" + "\n".join(problems[:30])
    return dict(counts)


def delivery_problems(
    d: Delivery, numbers: list[int], schedule: tuple[int, ...], allow_waiting: bool
) -> list[str]:
    problems = []
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"delivery {d.id}: attempt numbers {numbers} are not 1..n")
    if d.status != DeliveryStatus.IN_FLIGHT and len(numbers) != d.attempts_count:
        problems.append(f"delivery {d.id}: {len(numbers)} attempts, counted {d.attempts_count}")
    if d.status in DeliveryStatus.FINAL and (d.lease_token or d.next_attempt_at):
        problems.append(f"delivery {d.id} is {d.status} but still claimable (lease/due time)")
    if d.status == DeliveryStatus.FAILED:
        gave_up_early = d.last_status_code == 410 or d.last_error_class in ErrorClass.NOT_RETRIED
        if d.attempts_count != len(schedule) + 1 and not gave_up_early:
            problems.append(f"delivery {d.id} failed after {d.attempts_count} attempts")
    elif d.status in DeliveryStatus.WAITING:
        if not allow_waiting:
            problems.append(f"delivery {d.id} is still {d.status}")
        elif d.next_attempt_at is None:
            problems.append(f"delivery {d.id} is {d.status} with no due time: it would be lost")
    elif d.status != DeliveryStatus.SUCCEEDED:
        problems.append(f"delivery {d.id} ends {d.status}")
    return problems
