"""Tries whose worker died: counted against the schedule, backed off, and capped.

In-process on the real database, with the clock moved instead of waited for: a claim that
is never recorded is exactly what a killed worker leaves behind."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from webhook_admin import clock
from webhook_admin.delivery.attempt import claim_committed
from webhook_admin.delivery.lease_recovery import recover_expired_leases
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus, ErrorClass, Trigger
from webhook_admin.services.delivery_state import request_retry

SCHEDULE = (10, 100)  # three tries


@pytest.fixture
def delivery_id(app, post_event, add_endpoint):
    clock.freeze()
    add_endpoint("http://127.0.0.1:9/hook")
    assert post_event(event_id="evt_lease").status_code == 202
    return db.session.scalar(select(Delivery.id))


def claim_and_die(app, delivery_id: int) -> None:
    """A worker claims the delivery and dies before recording anything."""
    assert claim_committed([delivery_id], app.config["SETTINGS"].lease_duration)


def expire_and_recover(app) -> list:
    clock.advance(app.config["SETTINGS"].lease_duration + 1)
    recovered = recover_expired_leases(SCHEDULE)
    db.session.commit()
    return recovered


def delivery(delivery_id: int) -> Delivery:
    db.session.expire_all()
    return db.session.get(Delivery, delivery_id)


def attempt_rows(delivery_id: int) -> list[tuple[int, str | None]]:
    return db.session.execute(
        select(Attempt.number, Attempt.error_class)
        .where(Attempt.delivery_id == delivery_id)
        .order_by(Attempt.number)
    ).all()


def test_an_interrupted_try_backs_off_per_the_schedule(app, delivery_id):
    claim_and_die(app, delivery_id)
    (recovered,) = expire_and_recover(app)
    now = clock.utcnow()
    d = delivery(delivery_id)
    assert d.status == DeliveryStatus.RETRYING and d.last_error_class == ErrorClass.INTERRUPTED
    # The wait after the first failure is schedule[0] +-20 %, not "now".
    assert 8 <= (d.next_attempt_at - now).total_seconds() <= 12
    assert recovered.retry_at == d.next_attempt_at
    # Not due yet: nothing can claim it before its time.
    assert claim_committed([delivery_id], 60) == {}
    clock.advance(12)
    assert claim_committed([delivery_id], 60)


def test_a_worker_killed_during_every_try_ends_failed_after_the_last(app, delivery_id):
    for _ in range(len(SCHEDULE) + 1):
        clock.advance(200)  # past any backoff
        claim_and_die(app, delivery_id)
        expire_and_recover(app)
    d = delivery(delivery_id)
    assert d.status == DeliveryStatus.FAILED and d.completed_at is not None
    assert d.next_attempt_at is None
    assert attempt_rows(delivery_id) == [(n, ErrorClass.INTERRUPTED) for n in (1, 2, 3)]
    clock.advance(10_000)
    assert claim_committed([delivery_id], 60) == {}  # no fourth try


def test_a_manual_retry_that_is_interrupted_gets_exactly_one_try(app, delivery_id):
    for _ in range(len(SCHEDULE) + 1):
        clock.advance(200)
        claim_and_die(app, delivery_id)
        expire_and_recover(app)
    assert request_retry(delivery(delivery_id), Trigger.MANUAL)
    db.session.commit()
    claim_and_die(app, delivery_id)
    expire_and_recover(app)
    d = delivery(delivery_id)
    assert d.status == DeliveryStatus.FAILED and d.attempts_count == 4
    assert attempt_rows(delivery_id)[-1] == (4, ErrorClass.INTERRUPTED)


def stalled_attempt(app, delivery_id: int, receiver_url: str):
    """Claim and send; the answer is in hand but not recorded (the worker stalled)."""
    from webhook_admin.delivery.attempt import send_claimed, work_for
    from webhook_admin.delivery.runner import make_sender
    from webhook_admin.delivery.send_cache import EndpointCache, EnvelopeCache

    settings = app.config["SETTINGS"]
    (claim,) = claim_committed([delivery_id], settings.lease_duration).values()
    work = work_for(claim, EndpointCache(app.extensions["secret_box"]), EnvelopeCache())
    with make_sender(settings) as sender:
        return send_claimed(work, sender, settings)


def record(app, finished) -> list:
    from webhook_admin.delivery.attempt import record_attempts

    return record_attempts([finished], app.config["SETTINGS"])


def test_an_answer_recorded_after_its_lease_expired_replaces_the_interrupted_row(
    app, post_event, receiver
):
    """The receiver acknowledged; the sweeper had already written the try off as
    interrupted. The acknowledgement wins: nothing a receiver acknowledged ends failed."""
    from webhook_admin.services.endpoints import EndpointInput, create_endpoint

    clock.freeze()
    create_endpoint(EndpointInput(receiver.url, ["transaction.approved"]), "test")
    db.session.commit()
    post_event(event_id="evt_stall")
    delivery_id = db.session.scalar(select(Delivery.id))
    for _ in range(len(SCHEDULE)):  # use up every try but the last
        clock.advance(200)
        claim_and_die(app, delivery_id)
        expire_and_recover(app)
    clock.advance(200)
    finished = stalled_attempt(app, delivery_id, receiver.url)
    assert finished.row["succeeded"]
    expire_and_recover(app)
    assert delivery(delivery_id).status == DeliveryStatus.FAILED  # the last try, written off
    assert record(app, finished) == []  # not ours to record as a normal finish any more
    d = delivery(delivery_id)
    assert d.status == DeliveryStatus.SUCCEEDED and d.last_status_code == 200
    assert attempt_rows(delivery_id) == [
        (1, ErrorClass.INTERRUPTED),
        (2, ErrorClass.INTERRUPTED),
        (3, None),
    ]
    assert len(receiver.requests) == 1
