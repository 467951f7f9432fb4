"""Retention: old finished deliveries, attempts and events go; waiting ones stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from tests.support.work import run_queued_jobs
from webhook_admin.clock import utcnow
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, Event
from webhook_admin.services.endpoints import EndpointInput, create_endpoint
from webhook_admin.services.retention import purge_expired


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_purges_old_finished_deliveries_in_batches_and_keeps_the_rest(app, post_event, receiver):
    create_endpoint(EndpointInput(receiver.url, ["transaction.approved"]), "test")
    db.session.commit()
    for n in range(5):
        post_event(event_id=f"evt_old_{n}")
    run_queued_jobs(app)
    post_event(event_id="evt_old_waiting")  # old but never attempted: must stay
    old = utcnow() - timedelta(days=31)
    db.session.execute(update(Delivery).values(created_at=old))
    db.session.execute(update(Event).values(received_at=old))
    post_event(event_id="evt_new")
    db.session.commit()

    deleted = purge_expired(retention_days=30, batch=2)

    assert deleted == {"deliveries": 5, "events": 5}
    remaining = set(db.session.scalars(select(Event.id)))
    assert remaining == {"evt_old_waiting", "evt_new"}
    assert count(Attempt) == 0 and count(Delivery) == 2
