"""A worker caches each endpoint's sending configuration and recent event bodies; an edit,
a secret rotation or a configuration edit made anywhere is seen by the very next attempt, and
health written anywhere reaches the next claim."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from standardwebhooks import Webhook

from tests.support.receiver import Receiver
from tests.support.work import run_queued_jobs
from webhook_admin.clock import utcnow
from webhook_admin.delivery.runner import DeliveryRunner
from webhook_admin.extensions import db
from webhook_admin.models import Endpoint
from webhook_admin.services.endpoint_health import record_endpoint_result
from webhook_admin.services.endpoint_secrets import replace_secret
from webhook_admin.services.endpoints import EndpointInput, update_endpoint


def test_a_rotated_secret_signs_the_next_attempt_of_the_same_worker(
    app, add_endpoint, post_event, receiver
):
    endpoint = add_endpoint(receiver.url)
    runner = DeliveryRunner(app, threads=1)
    post_event(event_id="evt_before")
    run_queued_jobs(app, runner=runner)
    assert len(runner.endpoints) == 1  # the snapshot is held

    new_secret = replace_secret(db.session.get(Endpoint, endpoint.id))
    db.session.commit()
    post_event(event_id="evt_after")
    run_queued_jobs(app, runner=runner)

    before, after = receiver.wait_for(2)
    Webhook(endpoint.test_secret).verify(before.body, before.headers)
    # Both signatures during the overlap: the new one and the old one.
    assert len(after.headers["webhook-signature"].split()) == 2
    assert Webhook(new_secret).verify(after.body, after.headers)["id"] == "evt_after"
    assert Webhook(endpoint.test_secret).verify(after.body, after.headers)["id"] == "evt_after"


def test_an_edited_url_and_headers_take_effect_on_the_next_attempt(
    app, add_endpoint, post_event, receiver
):
    endpoint = add_endpoint(receiver.url)
    runner = DeliveryRunner(app, threads=1)
    post_event()
    run_queued_jobs(app, runner=runner)
    receiver.wait_for(1)

    with Receiver() as moved:
        update_endpoint(
            db.session.get(Endpoint, endpoint.id),
            EndpointInput(
                moved.url, ["transaction.approved"], custom_headers={"X-Tenant": "moved"}
            ),
            "test",
        )
        db.session.commit()
        post_event(event_id="evt_moved")
        run_queued_jobs(app, runner=runner)
        request = moved.wait_for(1)[0]
    assert request.headers["x-tenant"] == "moved"
    assert len(receiver.requests) == 1  # nothing more went to the old URL


def test_a_health_write_by_another_worker_is_not_hidden_by_the_cache(
    app, add_endpoint, post_event, receiver
):
    """The cached snapshot said healthy and just answered 200 (so a success within a second
    would be a no-op); another process then recorded failures. The next success must clear
    the failure streak, not skip the write."""
    endpoint = add_endpoint(receiver.url)
    record_endpoint_result(endpoint.id, utcnow(), 200, None, succeeded=True)
    db.session.commit()
    runner = DeliveryRunner(app, threads=1)
    post_event()
    run_queued_jobs(app, runner=runner)  # its snapshot: healthy, 200 just now

    failed_at = utcnow() - timedelta(minutes=5)
    record_endpoint_result(endpoint.id, failed_at, 500, "http_5xx", succeeded=False)
    db.session.commit()
    post_event()
    run_queued_jobs(app, runner=runner)

    db.session.expire_all()
    healed = db.session.get(Endpoint, endpoint.id)
    assert healed.consecutive_failures == 0
    assert healed.failing_since is None
    assert healed.last_attempt_status == 200


def test_configuration_writes_move_the_version_and_health_writes_do_not(
    app, add_endpoint, receiver
):
    """Health is written up to once a second per endpoint and process: if it moved the
    version, every worker would re-read (and decrypt) the endpoint that often."""
    endpoint = add_endpoint(receiver.url)

    def version():
        db.session.rollback()
        return db.session.scalar(select(Endpoint.config_version).where(Endpoint.id == endpoint.id))

    created = version()
    record_endpoint_result(endpoint.id, utcnow(), 200, None, succeeded=True)
    record_endpoint_result(endpoint.id, utcnow(), 500, "http", succeeded=False)
    db.session.commit()
    assert version() == created
    db.session.execute(
        update(Endpoint).where(Endpoint.id == endpoint.id).values(timeout_seconds=3.0)
    )
    db.session.commit()
    assert version() != created


def test_the_claim_reads_health_written_since_the_snapshot(app, add_endpoint, post_event, receiver):
    """The snapshot stays cached across health writes; the failure streak another process
    wrote reaches this worker through the claim and the next success clears it."""
    endpoint = add_endpoint(receiver.url)
    runner = DeliveryRunner(app, threads=1)
    post_event()
    run_queued_jobs(app, runner=runner)
    record_endpoint_result(endpoint.id, utcnow(), 500, "http", succeeded=False)
    record_endpoint_result(endpoint.id, utcnow(), 500, "http", succeeded=False)
    db.session.commit()
    post_event()
    run_queued_jobs(app, runner=runner)
    db.session.expire_all()
    healed = db.session.get(Endpoint, endpoint.id)
    assert (healed.consecutive_failures, healed.failing_since) == (0, None)
    assert len(runner.endpoints) == 1 and runner.endpoints.reads == 1


def test_a_fan_out_reads_the_event_once_and_each_endpoint_once(
    app, add_endpoint, post_event, receiver
):
    for _ in range(3):
        add_endpoint(receiver.url)
    runner = DeliveryRunner(app, threads=1)
    post_event(event_id="evt_fan")
    run_queued_jobs(app, runner=runner)
    requests = receiver.wait_for(3)
    assert {r.body for r in requests} == {requests[0].body}  # the same bytes to all three
    assert len(runner.envelopes) == 1
    assert len(runner.endpoints) == 3
