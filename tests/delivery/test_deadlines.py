"""Deadlines per event type: a delivery not made by occurred_at + expires_after_seconds gets
no more automatic tries and becomes `expired` (its own status, filter and metric); a manual
retry still sends it and the audit says it was expired. The real pipeline in this process
(RQ SimpleWorker, a real receiver on 127.0.0.1) with the clock frozen and moved; the
sweeper is not run (the deadline holds on the try's own path)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from tests.conftest import valid_data
from tests.support.receiver import Receiver, Reply
from tests.support.work import run_queued_jobs
from webhook_admin import clock
from webhook_admin.clock import utcnow
from webhook_admin.delivery.claims import Outcome
from webhook_admin.delivery.deadlines import apply_deadline, expire_overdue
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, Delivery, DeliveryStatus, Event, EventType
from webhook_admin.queues import enqueue_deliveries
from webhook_admin.services.bulk_retry import retry_delivery
from webhook_admin.services.metrics import deliveries_by_status
from webhook_admin.services.queries import DeliveryFilters, deliveries_page

SCHEDULE = "600,600,600,600,600,600,600"  # 10 min apart, 70 min in all
DEADLINE = 3600  # the seeded transaction.approved deadline: 1 h
T0 = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def environ(environ):
    return environ | {"WEBHOOK_RETRY_SCHEDULE": SCHEDULE}


@pytest.fixture
def failing_receiver():
    state = {"status": 500}
    with Receiver(lambda request: Reply(status=state["status"])) as receiver:
        receiver.state = state
        yield receiver


# apply_deadline, the pure step after retry_policy.decide

times = st.datetimes(min_value=T0 - timedelta(days=2), max_value=T0 + timedelta(days=2))


@given(
    status=st.sampled_from(
        [DeliveryStatus.SUCCEEDED, DeliveryStatus.RETRYING, DeliveryStatus.FAILED]
    ),
    at=times,
    wait=st.integers(0, 48 * 3600),
    deadline=st.one_of(st.none(), times),
)
def test_no_retry_is_ever_scheduled_at_or_past_the_deadline(status, at, wait, deadline):
    next_at = at + timedelta(seconds=wait) if status == DeliveryStatus.RETRYING else None
    result = apply_deadline(Outcome(status, next_at), deadline, at)
    if deadline is None or status == DeliveryStatus.SUCCEEDED:
        assert result == Outcome(status, next_at)
    elif result.status == DeliveryStatus.RETRYING:
        assert result.next_attempt_at < deadline
    elif result.status == DeliveryStatus.EXPIRED:
        assert result.next_attempt_at is None
        assert (next_at or at) >= deadline
    else:
        assert result.status == DeliveryStatus.FAILED and at < deadline


def test_examples_at_the_edges():
    deadline = T0 + timedelta(hours=1)
    retry = Outcome(DeliveryStatus.RETRYING, deadline - timedelta(seconds=1))
    assert apply_deadline(retry, deadline, T0) == retry
    at_deadline = Outcome(DeliveryStatus.RETRYING, deadline)
    assert apply_deadline(at_deadline, deadline, T0).status == DeliveryStatus.EXPIRED
    exhausted = Outcome(DeliveryStatus.FAILED)
    assert apply_deadline(exhausted, deadline, T0).status == DeliveryStatus.FAILED
    assert apply_deadline(exhausted, deadline, deadline).status == DeliveryStatus.EXPIRED


# The pipeline, clock moved


def run_due(app, delivery: Delivery) -> None:
    """Queue the delivery's next try now (the clock moved past it) and work the queues."""
    db.session.refresh(delivery)
    enqueue_deliveries([(delivery.id, delivery.attempts_count)])
    run_queued_jobs(app)
    db.session.expire_all()


def test_a_failing_delivery_expires_at_its_deadline_and_is_counted_apart(
    app, post_event, add_endpoint, failing_receiver
):
    clock.freeze()
    add_endpoint(failing_receiver.url)
    assert post_event(event_id="evt_deadline").status_code == 202
    event = db.session.get(Event, "evt_deadline")
    assert event.expires_at == event.occurred_at + timedelta(seconds=DEADLINE)
    run_queued_jobs(app)
    delivery = db.session.scalar(select(Delivery))
    assert delivery.status == DeliveryStatus.RETRYING
    while delivery.status == DeliveryStatus.RETRYING:
        assert delivery.next_attempt_at < event.expires_at  # never a retry past it
        clock.advance((delivery.next_attempt_at - utcnow()).total_seconds() + 1)
        run_due(app, delivery)
        delivery = db.session.get(Delivery, delivery.id)
    assert delivery.status == DeliveryStatus.EXPIRED
    assert delivery.completed_at is not None and delivery.next_attempt_at is None
    # Fewer tries than the schedule's 8: the deadline cut it short.
    tries = delivery.attempts_count
    assert 4 <= tries <= 7 and len(failing_receiver.requests) == tries

    # No further automatic tries: a job for it finds nothing to claim.
    clock.advance(3600)
    run_due(app, delivery)
    assert len(failing_receiver.requests) == tries

    # Its own status: the filter, the metric, the badge; failed stays 0.
    counts = deliveries_by_status()
    assert counts[DeliveryStatus.EXPIRED] == 1 and counts[DeliveryStatus.FAILED] == 0
    assert [d.id for d in deliveries_page(DeliveryFilters(status="expired")).items] == [delivery.id]
    assert deliveries_page(DeliveryFilters(status="failed")).items == []
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'webhook_deliveries{status="expired"} 1' in metrics

    # A manual retry still sends it, audited as expired; failing again, it stays expired.
    retry_delivery(delivery, "ops@example.com")
    db.session.commit()
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "delivery.retry"))
    assert entry.after["was_expired"] is True
    run_due(app, delivery)
    delivery = db.session.get(Delivery, delivery.id)
    assert len(failing_receiver.requests) == tries + 1
    assert delivery.status == DeliveryStatus.EXPIRED
    failing_receiver.state["status"] = 200
    retry_delivery(delivery, "ops@example.com")
    db.session.commit()
    run_due(app, delivery)
    assert db.session.get(Delivery, delivery.id).status == DeliveryStatus.SUCCEEDED


def test_a_type_without_a_deadline_uses_its_whole_schedule(
    app, post_event, add_endpoint, failing_receiver
):
    clock.freeze()
    db.session.execute(
        update(EventType)
        .where(EventType.name == "transaction.approved")
        .values(expires_after_seconds=None)
    )
    db.session.commit()
    add_endpoint(failing_receiver.url)
    post_event(event_id="evt_no_deadline")
    assert db.session.get(Event, "evt_no_deadline").expires_at is None
    run_queued_jobs(app)
    delivery = db.session.scalar(select(Delivery))
    while delivery.status == DeliveryStatus.RETRYING:
        clock.advance((delivery.next_attempt_at - utcnow()).total_seconds() + 1)
        run_due(app, delivery)
        delivery = db.session.get(Delivery, delivery.id)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts_count == 8


def test_an_event_arriving_past_its_deadline_is_expired_at_once_and_never_sent(
    app, client, add_endpoint, failing_receiver
):
    from tests.conftest import signed_headers

    add_endpoint(failing_receiver.url)
    occurred = (utcnow() - timedelta(hours=2)).isoformat() + "Z"
    body = json.dumps(
        {"type": "transaction.approved", "data": valid_data(), "occurred_at": occurred}
    ).encode()
    response = client.post("/api/v1/events", data=body, headers=signed_headers(body, "evt_late"))
    assert response.status_code == 202
    run_queued_jobs(app)
    delivery = db.session.scalar(select(Delivery))
    assert delivery.status == DeliveryStatus.EXPIRED and delivery.attempts_count == 0
    assert failing_receiver.requests == []


def test_the_sweeper_expires_what_waits_past_its_deadline(app, post_event, add_endpoint):
    """An endpoint disabled while its deliveries wait: they expire at the deadline, and a
    manual retry asked for before it is left to run."""
    clock.freeze()
    endpoint = add_endpoint("http://127.0.0.1:9/held")
    post_event(event_id="evt_held_1")
    post_event(event_id="evt_held_2")
    first, second = db.session.scalars(select(Delivery).order_by(Delivery.id))
    second.next_trigger = "manual"
    endpoint.enabled = False
    db.session.commit()
    assert expire_overdue(db.session.connection(), utcnow()) == 0
    clock.advance(DEADLINE)
    assert expire_overdue(db.session.connection(), utcnow()) == 1
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Delivery, first.id).status == DeliveryStatus.EXPIRED
    assert db.session.get(Delivery, second.id).status == DeliveryStatus.PENDING
