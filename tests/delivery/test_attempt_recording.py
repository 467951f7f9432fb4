"""Recording attempts: an envelope that cannot be built, and a row the database refuses."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from tests.support.work import run_queued_jobs
from webhook_admin.delivery.attempt import (
    claim_committed,
    record_attempts,
    send_claimed,
    work_for,
)
from webhook_admin.delivery.runner import make_sender
from webhook_admin.delivery.send_cache import EndpointCache, EnvelopeCache
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus, ErrorClass, Event
from webhook_admin.services.fanout import EventRef, create_deliveries


def test_an_event_whose_envelope_cannot_be_built_fails_at_once_with_its_own_error_class(
    app, receiver, add_endpoint
):
    """A lone surrogate (stored before ingest refused them) cannot be encoded as UTF-8: the
    delivery is recorded and failed, not left to crash and loop as interrupted."""
    endpoint = add_endpoint(receiver.url)
    from webhook_admin.clock import utcnow

    db.session.add(
        Event(
            id="evt_surrogate",
            type="transaction.approved",
            data={"name": "\ud83d"},
            occurred_at=utcnow(),
            body_sha256="0" * 64,
        )
    )
    db.session.flush()
    create_deliveries(EventRef("evt_surrogate", "transaction.approved"), [endpoint.id])
    db.session.commit()
    (delivery_id,) = db.session.scalars(select(Delivery.id))
    from webhook_admin.queues import enqueue_deliveries

    enqueue_deliveries([(delivery_id, 0)])
    run_queued_jobs(app)

    db.session.expire_all()
    delivery = db.session.get(Delivery, delivery_id)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error_class == ErrorClass.ENVELOPE
    (attempt,) = db.session.scalars(select(Attempt))
    assert attempt.error_class == ErrorClass.ENVELOPE and attempt.number == 1
    assert "cannot be encoded as UTF-8 JSON" in attempt.error_message
    assert receiver.requests == []


def finished_attempts(app, post_event, count: int) -> list:
    """`count` deliveries claimed and sent to the receiver, answers not yet recorded."""
    settings = app.config["SETTINGS"]
    for n in range(count):
        post_event(event_id=f"evt_batch_{n}")
    ids = list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))
    claims = claim_committed(ids, settings.lease_duration)
    endpoints, envelopes = EndpointCache(app.extensions["secret_box"]), EnvelopeCache()
    with make_sender(settings) as sender:
        return [
            send_claimed(work_for(claims[i], endpoints, envelopes), sender, settings) for i in ids
        ]


def test_a_row_the_database_refuses_never_takes_the_rest_of_its_batch_with_it(
    app, post_event, receiver, add_endpoint
):
    add_endpoint(receiver.url)
    good_before, bad, good_after = finished_attempts(app, post_event, 3)
    # Text that is not UTF-8 (a lone surrogate got past storable_text, say): SQLite and
    # PostgreSQL both refuse it.
    bad = replace(bad, row=bad.row | {"response_body": "ok \ud800"})
    reports = record_attempts([good_before, bad, good_after], app.config["SETTINGS"])
    assert [r.status for r in reports] == [DeliveryStatus.SUCCEEDED] * 3

    db.session.expire_all()
    assert set(db.session.scalars(select(Delivery.status))) == {DeliveryStatus.SUCCEEDED}
    rows = db.session.scalars(select(Attempt).order_by(Attempt.delivery_id)).all()
    assert [a.succeeded for a in rows] == [True, True, True]
    assert rows[0].response_body == rows[2].response_body == "ok"
    # The refused row is there, without what the receiver sent, saying why.
    assert rows[1].response_body is None and rows[1].response_status == 200
    assert "database refused this attempt's record" in rows[1].error_message
    assert len(receiver.requests) == 3
