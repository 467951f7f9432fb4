"""Replay what an endpoint missed: the received events it subscribes to (by the fan-out rules)
that have no delivery for it, since a time (by default when it was disabled). Count first,
then a background job creates and queues the deliveries in batches."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import exists, func, select, update

from ..extensions import db
from ..models import Delivery, Endpoint, Event, EventType, Trigger
from .audit import record_audit
from .fanout import EventRef, create_endpoint_deliveries, subscription_matches

log = logging.getLogger(__name__)
BATCH_SIZE = 500
INGEST_SOURCE = "ingest"  # test events were sent to one endpoint only: never replayed


def _missed(endpoint_id: int, since: datetime):
    """The events (id, type, merchant) the endpoint would have got since `since` and has no
    delivery for."""
    return (
        select(Event.id, Event.type, Event.merchant_id)
        .join(EventType, EventType.name == Event.type)
        .join(Endpoint, Endpoint.id == endpoint_id)
        .where(
            Event.received_at >= since,
            Event.source == INGEST_SOURCE,
            EventType.archived.is_(False),
            subscription_matches(EventType.id, EventType.category_id, Event.merchant_id),
            ~exists().where(Delivery.event_id == Event.id, Delivery.endpoint_id == endpoint_id),
        )
    )


def count_missed(endpoint_id: int, since: datetime) -> int:
    return db.session.scalar(
        select(func.count()).select_from(_missed(endpoint_id, since).subquery())
    )


def record_replay_request(
    endpoint_id: int, since: datetime, count: int, actor: str, remote_addr: str | None = None
) -> None:
    record_audit(
        actor,
        "endpoint.replay",
        "endpoint",
        endpoint_id,
        None,
        {"since": since.isoformat(), "missed_count": count},
        remote_addr=remote_addr,
    )


def replay_missed(
    endpoint_id: int,
    since: datetime,
    actor: str,
    enqueue: Callable[[list[tuple[int, int]]], object],
) -> int:
    """Create the missing deliveries in batches, committing and enqueueing after each.
    Returns how many were created. Run twice, the second finds nothing left to create."""
    created = 0
    while True:
        events = [
            EventRef(*row)
            for row in db.session.execute(
                _missed(endpoint_id, since).order_by(Event.id).limit(BATCH_SIZE)
            )
        ]
        if not events:
            break
        event_ids = [event.id for event in events]
        ids = create_endpoint_deliveries(endpoint_id, events, Trigger.MANUAL)
        db.session.execute(
            update(Event)
            .where(Event.id.in_(event_ids))
            .values(delivery_count=Event.delivery_count + 1)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        enqueue([(delivery_id, 0) for delivery_id in ids])
        created += len(ids)
    record_audit(
        actor,
        "endpoint.replay_done",
        "endpoint",
        endpoint_id,
        None,
        {"since": since.isoformat(), "created": created},
    )
    db.session.commit()
    log.info("replay done endpoint_id=%s created=%s", endpoint_id, created)
    return created


class ResendRefused(ValueError):
    """The event cannot be sent to that endpoint now; the message says why."""


def resend_event(
    event: Event, endpoint: Endpoint, actor: str, remote_addr: str | None = None
) -> tuple[int, int]:
    """Send one event to one endpoint, subscribed or not: its delivery again if it has one
    (a manual retry), else a new delivery. Returns (delivery id, attempts made) to enqueue
    after the commit."""
    from .bulk_retry import RetryRefused, retry_delivery

    existing = db.session.scalar(
        select(Delivery).where(Delivery.event_id == event.id, Delivery.endpoint_id == endpoint.id)
    )
    if existing is not None:
        try:
            return existing.id, retry_delivery(existing, actor, remote_addr)
        except RetryRefused as exc:
            raise ResendRefused(str(exc)) from None
    [delivery_id] = create_endpoint_deliveries(endpoint.id, [EventRef.of(event)], Trigger.MANUAL)
    event.delivery_count = (event.delivery_count or 0) + 1
    record_audit(
        actor,
        "event.resend",
        "endpoint",
        endpoint.id,
        None,
        {"event_id": event.id, "delivery_id": delivery_id},
        remote_addr=remote_addr,
    )
    return delivery_id, 0
