"""Endpoint health is written when it changes, and a success stream to a healthy endpoint at
most once a second per worker (the endpoint row is shared by every attempt)."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

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
from webhook_admin.delivery.health_writes import RecentSuccessWrites
from webhook_admin.delivery.runner import DeliveryRunner, make_sender
from webhook_admin.delivery.send_cache import EndpointCache, EnvelopeCache
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, Endpoint
from webhook_admin.services.endpoint_health import needs_health_write

T0 = datetime(2026, 11, 28, 12, 0, 0)


def test_a_recent_success_with_the_same_status_covers_the_next_one_for_a_second():
    """The snapshot a claim carried says the endpoint never answered; this process has
    written a success since. The next success within a second needs no write."""
    snapshot = SimpleNamespace(
        consecutive_failures=0, failing_since=None, last_attempt_at=None, last_attempt_status=None
    )
    recent = RecentSuccessWrites()
    recent.note(1, T0, 200, succeeded=True)

    def covers(endpoint_id, started_at, status_code):
        written = recent.last(endpoint_id)
        return not needs_health_write(snapshot, started_at, status_code, True, written)

    assert covers(1, T0 + timedelta(seconds=0.5), 200)
    assert not covers(1, T0 + timedelta(seconds=1.5), 200)  # a second later: write
    assert not covers(1, T0 + timedelta(seconds=0.5), 204)  # another status: write
    assert not covers(2, T0, 200)  # another endpoint
    recent.note(1, T0 + timedelta(seconds=0.6), 500, succeeded=False)
    assert not covers(1, T0 + timedelta(seconds=0.7), 200)  # after a failure: write


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
        record_attempts(finished, settings, RecentSuccessWrites())
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
