"""Deadlines per event type: a delivery not made by its event's `expires_at` (occurred_at +
the type's expires_after_seconds, fixed at ingest) gets no more automatic tries and
becomes `expired`.

retry_policy.decide stays the one decision about a try's result; `apply_deadline` is a
pure second step on its outcome, and `with_deadlines` reads the batch's deadlines (one
query, only when some try did not succeed). `expire_overdue` is the sweeper's pass for
deliveries that wait past their deadline without a try ending (an endpoint disabled, an
interrupted try's retry, a lost job)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import and_, bindparam, exists, or_, select, update

from ..models import Delivery, DeliveryStatus, Event, Trigger
from .claims import Outcome

deliveries = Delivery.__table__
events = Event.__table__


def apply_deadline(outcome: Outcome, deadline: datetime | None, at: datetime) -> Outcome:
    """The outcome with the deadline applied: a retry due at or after the deadline, or a
    final failure of a try made after it, is `expired` instead. A success is a success."""
    if deadline is None or outcome.status == DeliveryStatus.SUCCEEDED:
        return outcome
    if outcome.status == DeliveryStatus.RETRYING and outcome.next_attempt_at >= deadline:
        return Outcome(DeliveryStatus.EXPIRED)
    if outcome.status == DeliveryStatus.FAILED and at >= deadline:
        return Outcome(DeliveryStatus.EXPIRED)
    return outcome


DEADLINES = select(events.c.id, events.c.expires_at).where(
    events.c.id.in_(bindparam("ids", expanding=True)), events.c.expires_at.is_not(None)
)


def with_deadlines(connection, finished: list) -> list:
    """The finished attempts (attempt.FinishedAttempt) with their events' deadlines applied
    to the outcomes; the same list when every try succeeded or no event has a deadline."""
    unsuccessful = {
        f.work.claim.event_id for f in finished if f.outcome.status != DeliveryStatus.SUCCEEDED
    }
    if not unsuccessful:
        return finished
    deadlines = dict(connection.execute(DEADLINES, {"ids": sorted(unsuccessful)}).all())
    if not deadlines:
        return finished
    return [
        replace(
            f, outcome=apply_deadline(f.outcome, deadlines.get(f.work.claim.event_id), f.started_at)
        )
        for f in finished
    ]


def expire_overdue(connection, now: datetime) -> int:
    """Expire the waiting deliveries whose next automatic try would come at or after their
    event's deadline, or whose deadline has passed. A manual retry (next_trigger manual) is
    left to run: an operator asked for it."""
    overdue = exists().where(
        events.c.id == deliveries.c.event_id,
        events.c.expires_at.is_not(None),
        or_(events.c.expires_at <= now, events.c.expires_at <= deliveries.c.next_attempt_at),
    )
    result = connection.execute(
        update(deliveries)
        .where(
            and_(
                deliveries.c.status.in_(DeliveryStatus.WAITING),
                deliveries.c.next_trigger == Trigger.AUTOMATIC,
                overdue,
            )
        )
        .values(status=DeliveryStatus.EXPIRED, next_attempt_at=None, completed_at=now)
    )
    return result.rowcount
