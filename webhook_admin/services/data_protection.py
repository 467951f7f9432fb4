"""Sensitive payload values after ingest: an admin's audited reveal, erasure once delivered,
key rotation, and erasing one merchant's data on request."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import delete, exists, select, update

from ..clock import utcnow
from ..extensions import db
from ..models import Attempt, Delivery, DeliveryStatus, Event, EventType
from .audit import record_audit
from .sensitive import loads_values, restore

log = logging.getLogger(__name__)
PURGED_REASON = (
    "event {event_id} had its card and personal data erased after delivery; it cannot be "
    "sent again (the receiver would get masked values signed as if they were real)"
)


def _box():
    return current_app.extensions["secret_box"]


def set_protection(
    type_name: str, pan_guard: bool | None, purge_after_delivery: bool | None, actor: str
) -> dict[str, bool]:
    """Turn an event type's PAN guard or erasure after delivery on or off (None: leave as
    is); audited when something changes. LookupError for an unknown type."""
    event_type = db.session.scalar(select(EventType).where(EventType.name == type_name))
    if event_type is None:
        raise LookupError(f"no event type named {type_name!r}")
    before = {
        "pan_guard": event_type.pan_guard,
        "purge_after_delivery": event_type.purge_after_delivery,
    }
    if pan_guard is not None:
        event_type.pan_guard = pan_guard
    if purge_after_delivery is not None:
        event_type.purge_after_delivery = purge_after_delivery
    after = {
        "pan_guard": event_type.pan_guard,
        "purge_after_delivery": event_type.purge_after_delivery,
    }
    if after != before:
        record_audit(
            actor, "catalog.event_type_protection", "event_type", event_type.id, before, after
        )
    return after


def reveal_event_data(event: Event, actor: str, remote_addr: str | None = None) -> dict:
    """The event's data as it came, for an admin, with the audit entry that says who saw it
    (the entry names the fields, never their values)."""
    if not event.sensitive_encrypted:
        values = []
    else:
        values = loads_values(_box().decrypt(event.sensitive_encrypted))
    record_audit(
        actor,
        "event.sensitive_reveal",
        "event",
        event.id,
        after={"fields": [".".join(str(k) for k in path) for path, _ in values]},
        remote_addr=remote_addr,
    )
    return restore(event.data, values)


def purged_reason(event_id: str) -> str | None:
    """Why a delivery of this event can no longer be sent, if its values were erased."""
    purged = db.session.scalar(select(Event.sensitive_purged_at).where(Event.id == event_id))
    return PURGED_REASON.format(event_id=event_id) if purged else None


def not_purged(event_id_column):
    """A condition: the event's sensitive values were not erased (retries check it)."""
    return ~exists().where(Event.id == event_id_column, Event.sensitive_purged_at.is_not(None))


def purge_delivered_batch(batch: int = 500) -> int:
    """Erase the sensitive values of events of types that ask for it once every delivery
    of the event is final (succeeded, failed or cancelled). Returns how many events."""
    # The types first (a small table): with none asking, no events are read at all; with
    # some, ix_events_sensitive_pending finds only their events still holding values.
    types = list(
        db.session.scalars(select(EventType.name).where(EventType.purge_after_delivery.is_(True)))
    )
    if not types:
        return 0
    ids = list(
        db.session.scalars(
            select(Event.id)
            .where(
                Event.type.in_(types),
                Event.sensitive_encrypted.is_not(None),
                ~exists().where(
                    Delivery.event_id == Event.id, Delivery.status.notin_(DeliveryStatus.FINAL)
                ),
            )
            .limit(batch)
        )
    )
    if not ids:
        return 0
    # The NOT EXISTS again in the UPDATE: a retry asked for since the select keeps the values.
    db.session.execute(
        update(Event)
        .where(
            Event.id.in_(ids),
            ~exists().where(
                Delivery.event_id == Event.id, Delivery.status.notin_(DeliveryStatus.FINAL)
            ),
        )
        .values(sensitive_encrypted=None, sensitive_purged_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return len(ids)


def purge_delivered(batch: int = 500, max_batches: int = 200) -> int:
    total = 0
    for _ in range(max_batches):
        count = purge_delivered_batch(batch)
        db.session.commit()
        total += count
        if count < batch:
            break
    if total:
        log.info("sensitive values erased after delivery events=%d", total)
    return total


def reencrypt_events(batch: int = 500) -> int:
    """Re-encrypt every event's sensitive values under the newest key; returns how many."""
    box, count, last = _box(), 0, ""
    while True:
        rows = db.session.execute(
            select(Event.id, Event.sensitive_encrypted)
            .where(Event.sensitive_encrypted.is_not(None), Event.id > last)
            .order_by(Event.id)
            .limit(batch)
        ).all()
        for event_id, token in rows:
            db.session.execute(
                update(Event)
                .where(Event.id == event_id)
                .values(sensitive_encrypted=box.rotate(token))
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
        count += len(rows)
        if len(rows) < batch:
            return count
        last = rows[-1][0]


def purge_merchant(merchant_id: str, actor: str) -> dict[str, int]:
    """Erase one merchant's events with their deliveries and attempts (a data-subject or
    merchant request). Waiting deliveries are cancelled first; an event with a delivery in
    flight stays (run again once it settles): `left` counts them."""
    events_of = select(Event.id).where(Event.merchant_id == merchant_id)
    cancelled = db.session.execute(
        update(Delivery)
        .where(Delivery.event_id.in_(events_of), Delivery.status.in_(DeliveryStatus.WAITING))
        .values(status=DeliveryStatus.CANCELLED, completed_at=utcnow(), next_attempt_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    busy = select(Delivery.event_id).where(Delivery.status == DeliveryStatus.IN_FLIGHT)
    ids = list(
        db.session.scalars(
            select(Event.id).where(Event.merchant_id == merchant_id, Event.id.notin_(busy))
        )
    )
    deleted = {"events": 0, "deliveries": 0, "attempts": 0}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        delivery_ids = select(Delivery.id).where(Delivery.event_id.in_(chunk))
        deleted["attempts"] += db.session.execute(
            delete(Attempt).where(Attempt.delivery_id.in_(delivery_ids))
        ).rowcount
        deleted["deliveries"] += db.session.execute(
            delete(Delivery).where(Delivery.event_id.in_(chunk))
        ).rowcount
        deleted["events"] += db.session.execute(delete(Event).where(Event.id.in_(chunk))).rowcount
    left = db.session.scalar(
        select(db.func.count()).select_from(Event).where(Event.merchant_id == merchant_id)
    )
    result = deleted | {"cancelled": cancelled, "left": left}
    # The entry names the merchant (an id, not personal data) and the counts.
    record_audit(actor, "merchant.data_purge", "merchant", merchant_id, None, result)
    db.session.commit()
    log.info("merchant data purged merchant_id=%s %s", merchant_id, result)
    return result
