"""Endpoint health is written when it changes, and a success stream to a healthy endpoint at
most about once a second, judged on the endpoint row as the batch reads it (the row is
shared by every attempt of every worker)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import event, func, select

from tests.support.receiver import Reply
from tests.support.work import run_queued_jobs
from webhook_admin import clock
from webhook_admin.delivery.attempt import (
    claim_committed,
    record_attempts,
    send_claimed,
    work_for,
)
from webhook_admin.delivery.health_writes import EndpointHealth
from webhook_admin.delivery.runner import DeliveryRunner, make_sender
from webhook_admin.delivery.send_cache import EndpointCache, EnvelopeCache
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, Endpoint
from webhook_admin.services.endpoint_health import needs_health_write

T0 = datetime(2026, 11, 28, 12, 0, 0)


def test_a_success_within_the_second_of_the_same_status_needs_no_write():
    healthy = EndpointHealth(0, None, T0, 200)

    def covers(health, started_at, status_code):
        return not needs_health_write(health, started_at, status_code, True)

    assert covers(healthy, T0 + timedelta(seconds=0.5), 200)
    assert not covers(healthy, T0 + timedelta(seconds=1.5), 200)  # a second later: write
    assert not covers(healthy, T0 + timedelta(seconds=0.5), 204)  # another status: write
    assert not covers(EndpointHealth(0, None, None, None), T0, 200)  # never answered
    assert not covers(EndpointHealth(1, T0, T0, 500), T0 + timedelta(seconds=0.1), 200)
    assert not covers(EndpointHealth(0, T0, T0, 200), T0 + timedelta(seconds=0.1), 200)
    assert needs_health_write(healthy, T0 + timedelta(seconds=0.1), 500, False)  # a failure


def test_successes_in_a_row_write_the_endpoint_once_and_a_failure_at_once(
    app, add_endpoint, post_event, receiver
):
    endpoint = add_endpoint(receiver.url)
    runner = DeliveryRunner(app, threads=1)
    # "Within a second" on the app's clock, not on this machine's speed: four posts and
    # their deliveries once took just over a second here, on PostgreSQL.
    clock.freeze()

    def version():  # the last health write (health writes leave updated_at alone)
        db.session.rollback()
        return db.session.scalar(select(Endpoint.last_attempt_at).where(Endpoint.id == endpoint.id))

    post_event()
    run_queued_jobs(app, runner=runner)
    after_first = version()
    for _ in range(3):
        clock.advance(0.25)  # each success at its own time, all within the second
        post_event()
        run_queued_jobs(app, runner=runner)
    assert version() == after_first  # three more successes within the second: no write

    receiver.responder = lambda request: Reply(500)
    post_event()
    run_queued_jobs(app, runner=runner)
    failed = db.session.get(Endpoint, endpoint.id)
    failed_tries = db.session.scalar(
        select(func.count()).select_from(Attempt).where(Attempt.response_status == 500)
    )
    assert failed_tries >= 1
    assert failed.consecutive_failures == failed_tries  # every failed try is written
    assert failed.last_attempt_status == 500


def test_a_batch_writes_its_healthy_successes_in_one_statement_and_rows_in_id_order(
    app, add_endpoint, post_event, receiver
):
    """Four endpoints in one writer batch, the last one failing: the three successes are one
    executemany, the failure its own statement after it; every row locked in id order (two
    writers locking in different orders could deadlock), and each endpoint's health right."""
    endpoints = [add_endpoint(f"{receiver.url}/{n}") for n in range(4)]
    failing = endpoints[-1]
    receiver.responder = lambda request: Reply(500 if request.path.endswith("/3") else 200)
    post_event()
    ids = list(db.session.scalars(select(Delivery.id).order_by(Delivery.id.desc())))
    settings = app.config["SETTINGS"]
    claims = claim_committed(ids, settings.lease_duration)
    cache, envelopes = EndpointCache(app.extensions["secret_box"]), EnvelopeCache()
    with make_sender(settings) as sender:
        finished = [
            send_claimed(work_for(claims[i], cache, envelopes), sender, settings) for i in ids
        ]

    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        text = statement.upper()
        if text.lstrip().startswith("UPDATE ENDPOINTS") and "LAST_ATTEMPT_AT=" in text.replace(
            " ", ""
        ):
            rows = parameters if executemany else [parameters]
            # The WHERE's id is the last parameter (a dict on PostgreSQL, a tuple on SQLite).
            ids = [row["endpoint_id"] if isinstance(row, dict) else row[-1] for row in rows]
            statements.append((executemany, ids))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        record_attempts(finished, settings)
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    healthy_ids = [e.id for e in endpoints[:3]]
    assert statements[0] == (True, healthy_ids)
    assert statements[1][1] == [failing.id]
    locked = [endpoint_id for _, ids in statements for endpoint_id in ids]
    assert locked == sorted(locked)
    db.session.expire_all()
    for endpoint in endpoints[:3]:
        row = db.session.get(Endpoint, endpoint.id)
        assert (row.last_attempt_status, row.consecutive_failures) == (200, 0)
        assert row.last_attempt_at is not None and row.failing_since is None
    row = db.session.get(Endpoint, failing.id)
    assert (row.last_attempt_status, row.consecutive_failures) == (500, 1)
    assert row.failing_since == row.last_attempt_at


def test_a_success_claimed_before_a_failure_was_recorded_still_ends_the_streak(
    app, add_endpoint, post_event, receiver
):
    """Two deliveries claimed together while the endpoint was healthy; the first fails and is
    recorded, then the second succeeds within the second of the last success. The claim's
    snapshot says "healthy, 200 just now", but the row says "failing": the success must be
    written, or the endpoint shows a failure streak its last attempt ended (for good, if no
    more traffic comes)."""
    endpoint = add_endpoint(receiver.url)
    settings = app.config["SETTINGS"]
    cache, envelopes = EndpointCache(app.extensions["secret_box"]), EnvelopeCache()
    clock.freeze()

    def send(ids):
        claims = claim_committed(ids, settings.lease_duration)
        with make_sender(settings) as sender:
            return [
                send_claimed(work_for(claims[i], cache, envelopes), sender, settings) for i in ids
            ]

    post_event(event_id="evt_first")
    record_attempts(send(list(db.session.scalars(select(Delivery.id)))), settings)
    receiver.responder = lambda request: Reply(500 if b"evt_fails" in request.body else 200)
    post_event(event_id="evt_fails")
    post_event(event_id="evt_succeeds")
    ids = list(
        db.session.scalars(
            select(Delivery.id).where(Delivery.event_id != "evt_first").order_by(Delivery.id)
        )
    )
    clock.advance(0.2)
    failed, succeeded = send(ids)  # both claims read the healthy endpoint
    record_attempts([failed], settings)
    db.session.expire_all()
    assert db.session.get(Endpoint, endpoint.id).consecutive_failures == 1
    record_attempts([succeeded], settings)

    db.session.expire_all()
    row = db.session.get(Endpoint, endpoint.id)
    assert (row.last_attempt_status, row.consecutive_failures, row.failing_since) == (200, 0, None)
