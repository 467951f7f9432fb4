"""Test events: a synthetic event (`webhook.test`, or a type the endpoint subscribes to with an\nedited payload) sent to one endpoint from the admin pages."""

from __future__ import annotations

import hashlib
import json
import uuid

from sqlalchemy import select

from ..clock import utcnow
from ..extensions import db
from ..models import Endpoint, Event, EventType, Trigger
from .audit import record_audit
from .catalog import TEST_EVENT_TYPE
from .fanout import EventRef, create_deliveries


class TestEventRefused(ValueError):
    """The endpoint cannot take a test event now; the message says why."""


MAX_TEST_DATA_BYTES = 64 * 1024


def subscribed_types(endpoint: Endpoint) -> list[EventType]:
    """The live event types this endpoint gets (by name, or every one of its category)."""
    if endpoint.all_category_events and endpoint.category_id is not None:
        return list(
            db.session.scalars(
                select(EventType)
                .where(EventType.category_id == endpoint.category_id, EventType.archived.is_(False))
                .order_by(EventType.name)
            )
        )
    return [t for t in endpoint.event_types if not t.archived]


def send_test_event(
    endpoint: Endpoint, actor: str, event_type: str | None = None, data: dict | None = None
) -> int:
    """Create the event and its one delivery (trigger 'test'); the caller commits and enqueues.
    `event_type`: `webhook.test` (the default) or one the endpoint subscribes to; `data`: the
    payload's data (a JSON object), by default a short note. Returns the delivery id."""
    if endpoint.deleted_at is not None:
        raise TestEventRefused("the webhook was deleted")
    if not endpoint.enabled:
        raise TestEventRefused("enable the webhook before sending a test event")
    event_type = event_type or TEST_EVENT_TYPE
    if event_type != TEST_EVENT_TYPE and event_type not in {
        t.name for t in subscribed_types(endpoint)
    }:
        raise TestEventRefused(f"the webhook does not subscribe to {event_type!r}")
    if data is not None and not isinstance(data, dict):
        raise TestEventRefused(f"the data must be a JSON object, got {type(data).__name__}")
    if data is not None and len(json.dumps(data)) > MAX_TEST_DATA_BYTES:
        raise TestEventRefused(f"the data must be at most {MAX_TEST_DATA_BYTES // 1024} KiB")
    now = utcnow()
    event_id = f"evt_test_{uuid.uuid4().hex}"
    if data is None:
        data = {
            "message": "This is a test event from SoftPOS Webhooks.",
            "endpoint_id": endpoint.id,
            "sent_by": actor,
        }
    body = json.dumps({"type": event_type, "data": data}, sort_keys=True).encode()
    db.session.add(
        Event(
            id=event_id,
            type=event_type,
            data=data,
            merchant_id=endpoint.merchant_id,
            occurred_at=now,
            received_at=now,
            body_sha256=hashlib.sha256(body).hexdigest(),
            source="test",
            delivery_count=1,
        )
    )
    db.session.flush()
    facts = EventRef(event_id, event_type, endpoint.merchant_id)
    [delivery_id] = create_deliveries(facts, [endpoint.id], trigger=Trigger.TEST)
    record_audit(
        actor,
        "endpoint.test",
        "endpoint",
        endpoint.id,
        None,
        {"event_id": event_id, "delivery_id": delivery_id, "event_type": event_type},
    )
    return delivery_id
