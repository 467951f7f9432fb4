"""Test events: a synthetic `webhook.test` event sent to one endpoint from the admin pages."""

from __future__ import annotations

import hashlib
import json
import uuid

from ..clock import utcnow
from ..extensions import db
from ..models import Endpoint, Event, Trigger
from .audit import record_audit
from .catalog import TEST_EVENT_TYPE
from .fanout import create_deliveries


class TestEventRefused(ValueError):
    """The endpoint cannot take a test event now; the message says why."""


def send_test_event(endpoint: Endpoint, actor: str) -> int:
    """Create the event and its one delivery (trigger 'test'); the caller commits and enqueues.
    Returns the delivery id."""
    if endpoint.deleted_at is not None:
        raise TestEventRefused("the webhook was deleted")
    if not endpoint.enabled:
        raise TestEventRefused("enable the webhook before sending a test event")
    now = utcnow()
    event_id = f"evt_test_{uuid.uuid4().hex}"
    data = {
        "message": "This is a test event from SoftPOS Webhooks.",
        "endpoint_id": endpoint.id,
        "sent_by": actor,
    }
    body = json.dumps({"type": TEST_EVENT_TYPE, "data": data}, sort_keys=True).encode()
    db.session.add(
        Event(
            id=event_id,
            type=TEST_EVENT_TYPE,
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
    [delivery_id] = create_deliveries(event_id, [endpoint.id], trigger=Trigger.TEST)
    record_audit(
        actor,
        "endpoint.test",
        "endpoint",
        endpoint.id,
        None,
        {"event_id": event_id, "delivery_id": delivery_id},
    )
    return delivery_id
