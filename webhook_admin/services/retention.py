"""Retention: delete finished deliveries, their attempts and their events after N days.

Small batches, one commit each, so deliveries in progress are never blocked for long. Only
finished deliveries go (succeeded, failed, cancelled); anything still waiting stays."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, exists, select

from ..clock import utcnow
from ..extensions import db
from ..models import Attempt, Delivery, DeliveryStatus, Event

log = logging.getLogger(__name__)


def purge_batch(retention_days: int, batch: int = 500) -> int:
    """Delete one batch of old finished deliveries (with attempts); returns how many."""
    cutoff = utcnow() - timedelta(days=retention_days)
    ids = list(
        db.session.scalars(
            select(Delivery.id)
            .where(Delivery.created_at < cutoff, Delivery.status.in_(DeliveryStatus.FINAL))
            .limit(batch)
        )
    )
    if not ids:
        return 0
    db.session.execute(delete(Attempt).where(Attempt.delivery_id.in_(ids)))
    db.session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
    return len(ids)


def purge_orphan_events(retention_days: int, batch: int = 500) -> int:
    """Delete old events that no longer have any delivery."""
    cutoff = utcnow() - timedelta(days=retention_days)
    ids = list(
        db.session.scalars(
            select(Event.id)
            .where(
                Event.received_at < cutoff,
                ~exists().where(Delivery.event_id == Event.id),
            )
            .limit(batch)
        )
    )
    if ids:
        db.session.execute(delete(Event).where(Event.id.in_(ids)))
    return len(ids)


def _in_batches(purge, retention_days: int, batch: int, max_batches: int) -> int:
    """Call `purge` until a batch comes back short; commit after each. Returns the total."""
    total = 0
    for _ in range(max_batches):
        count = purge(retention_days, batch)
        db.session.commit()
        total += count
        if count < batch:
            break
    return total


def purge_expired(retention_days: int, batch: int = 500, max_batches: int = 200) -> dict:
    """Old finished deliveries first, then the events they leave without deliveries."""
    deleted = {
        "deliveries": _in_batches(purge_batch, retention_days, batch, max_batches),
        "events": _in_batches(purge_orphan_events, retention_days, batch, max_batches),
    }
    if any(deleted.values()):
        log.info(
            "retention purge deliveries=%d events=%d", deleted["deliveries"], deleted["events"]
        )
    return deleted
