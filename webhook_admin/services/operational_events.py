"""Operational events: what happens to endpoints and deliveries, sent through our own
pipeline as System-category event types (endpoint.disabled, endpoint.failing, ...) to the
endpoints subscribed to them: signed, retried, logged and shown like any other event.

`emit` stores the event and its deliveries in the caller's transaction; they are queued
once that transaction commits (a session after_commit hook), so a rolled-back change never
announces itself. Nobody subscribed: nothing is stored.

Loop guard: an event about an endpoint never goes to that endpoint (an operations endpoint
that fails is not told about its own failures), a delivery of an operational event that
fails never produces delivery.exhausted, and endpoint.failing goes out at most once per
endpoint per hour (a conditional UPDATE on endpoints.failing_notified_at, so two workers
cannot both send it)."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import event as sa_event
from sqlalchemy import insert, or_, update
from sqlalchemy.orm import Session

from ..clock import utcnow
from ..extensions import db
from ..models import DeliveryStatus, Endpoint, Event
from . import alerts_mail
from .fanout import EventRef, create_deliveries, type_and_subscribers

log = logging.getLogger(__name__)
SOURCE = "operational"
ENDPOINT_DISABLED = "endpoint.disabled"
ENDPOINT_FAILING = "endpoint.failing"
ENDPOINT_RECOVERED = "endpoint.recovered"
DELIVERY_EXHAUSTED = "delivery.exhausted"
SECRET_ROTATED = "endpoint.secret_rotated"  # noqa: S105 (an event type name)
ENDPOINT_CREATED = "endpoint.created"
ENDPOINT_UPDATED = "endpoint.updated"
ENDPOINT_DELETED = "endpoint.deleted"
ENDPOINT_CERTIFICATE_EXPIRING = "endpoint.certificate_expiring"
OPERATIONAL_TYPES = frozenset(
    {
        ENDPOINT_DISABLED,
        ENDPOINT_FAILING,
        ENDPOINT_RECOVERED,
        DELIVERY_EXHAUSTED,
        SECRET_ROTATED,
        ENDPOINT_CREATED,
        ENDPOINT_UPDATED,
        ENDPOINT_DELETED,
        ENDPOINT_CERTIFICATE_EXPIRING,
    }
)
FAILING_EVERY = timedelta(hours=1)
_PENDING_KEY = "operational_event_deliveries"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def emit(type_name: str, data: dict, about_endpoint_id: int | None = None) -> str | None:
    """Store an operational event and a delivery per subscriber (not the endpoint it is
    about); returns its id, or None when nobody is to get it. Queued after commit."""
    alerts_mail.queue_alert(db.session, type_name, data)  # admins' email, if configured
    connection = db.session.connection()
    routing = type_and_subscribers(connection, type_name, None)
    if routing is None or routing.archived:
        return None
    recipients = [i for i in routing.endpoint_ids if i != about_endpoint_id]
    if not recipients:
        return None
    now = utcnow()
    event_id = f"evt_ops_{uuid.uuid4().hex}"
    body = json.dumps({"type": type_name, "data": data}, sort_keys=True, default=str)
    connection.execute(
        insert(Event.__table__).values(
            id=event_id,
            type=type_name,
            data=data,
            merchant_id=None,
            occurred_at=now,
            received_at=now,
            body_sha256=hashlib.sha256(body.encode()).hexdigest(),
            source=SOURCE,
            delivery_count=len(recipients),
        )
    )
    ids = create_deliveries(EventRef(event_id, type_name), recipients)
    db.session.info.setdefault(_PENDING_KEY, []).extend((i, 0) for i in ids)
    log.info(
        "operational event event_id=%s type=%s about_endpoint_id=%s deliveries=%d",
        event_id,
        type_name,
        about_endpoint_id,
        len(ids),
    )
    return event_id


@sa_event.listens_for(Session, "after_commit")
def _queue_after_commit(session) -> None:
    pending = session.info.pop(_PENDING_KEY, None)
    if pending:
        from ..queues import enqueue_deliveries

        enqueue_deliveries(pending)  # False on a Redis outage: the sweeper sends them
    alerts_mail.enqueue_pending(session)


@sa_event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session) -> None:
    session.info.pop(_PENDING_KEY, None)
    session.info.pop(alerts_mail.PENDING_KEY, None)


def endpoint_facts(endpoint_id: int) -> dict:
    endpoint = db.session.get(Endpoint, endpoint_id)
    if endpoint is None:
        return {"endpoint_id": endpoint_id}
    return {
        "endpoint_id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description or "",
        "merchant_id": endpoint.merchant_id,
    }


# What the delivery wing and the services call (one line at each site).


def endpoint_disabled(endpoint_id: int, reason: str, note: str | None, by: str) -> None:
    facts = endpoint_facts(endpoint_id)
    emit(
        ENDPOINT_DISABLED,
        facts | {"reason": reason, "note": note, "disabled_by": by, "at": _iso(utcnow())},
        about_endpoint_id=endpoint_id,
    )


def endpoint_changed(
    type_name: str, endpoint: Endpoint, actor: str, extra: dict | None = None
) -> None:
    """endpoint.created / updated / deleted / secret_rotated, with who did it. Not to the
    endpoint itself (it is told of its own new secret by whoever rotated it)."""
    emit(
        type_name,
        endpoint_facts(endpoint.id) | {"actor": actor, "at": _iso(utcnow())} | (extra or {}),
        about_endpoint_id=endpoint.id,
    )


def after_failure(endpoint_id: int, threshold: int) -> None:
    """After a failed try was recorded: endpoint.failing once the streak reaches the
    threshold, at most once an hour per endpoint."""
    now = utcnow()
    claimed = db.session.execute(
        update(Endpoint)
        .where(
            Endpoint.id == endpoint_id,
            Endpoint.consecutive_failures >= threshold,
            or_(
                Endpoint.failing_notified_at.is_(None),
                Endpoint.failing_notified_at <= now - FAILING_EVERY,
            ),
        )
        .values(failing_notified_at=now, failing_announced=True, updated_at=Endpoint.updated_at)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return
    endpoint = db.session.get(Endpoint, endpoint_id)
    db.session.refresh(endpoint)
    emit(
        ENDPOINT_FAILING,
        endpoint_facts(endpoint_id)
        | {
            "streak": endpoint.consecutive_failures,
            "failing_since": _iso(endpoint.failing_since),
            "last_status": endpoint.last_attempt_status,
            "last_error": endpoint.last_attempt_error
            or (f"http {endpoint.last_attempt_status}" if endpoint.last_attempt_status else None),
        },
        about_endpoint_id=endpoint_id,
    )


def after_success(endpoint_id: int, streak_before: int | None, failing_since) -> None:
    """After a success that ended a streak: endpoint.recovered if endpoint.failing
    announced it (once: the conditional UPDATE clears the mark)."""
    if not streak_before:
        return  # a healthy endpoint: no query on the hot path
    cleared = db.session.execute(
        update(Endpoint)
        .where(Endpoint.id == endpoint_id, Endpoint.failing_announced.is_(True))
        .values(failing_announced=False, updated_at=Endpoint.updated_at)
        .execution_options(synchronize_session=False)
    )
    if cleared.rowcount != 1:
        return
    emit(
        ENDPOINT_RECOVERED,
        endpoint_facts(endpoint_id)
        | {"streak": streak_before, "failing_since": _iso(failing_since), "at": _iso(utcnow())},
        about_endpoint_id=endpoint_id,
    )


def announce_exhausted(finished) -> None:
    """delivery.exhausted for each recorded attempt (attempt.FinishedAttempt) that left its
    delivery failed."""
    for item in finished:
        if item.outcome.status == DeliveryStatus.FAILED:
            delivery_exhausted(item.work.claim, item.row)


def delivery_exhausted(claim, row: dict) -> None:
    """The last scheduled try of a delivery failed (never for an operational event's own
    delivery: the loop guard)."""
    if claim.event_type in OPERATIONAL_TYPES:
        return
    emit(
        DELIVERY_EXHAUSTED,
        endpoint_facts(claim.endpoint_id)
        | {
            "delivery_id": claim.delivery_id,
            "event_id": claim.event_id,
            "event_type": claim.event_type,
            "attempts": claim.attempt_number,
            "last_status": row.get("response_status"),
            "last_error": row.get("error_class")
            or (f"http {row['response_status']}" if row.get("response_status") else None),
            "last_error_message": row.get("error_message"),
        },
        about_endpoint_id=claim.endpoint_id,
    )
