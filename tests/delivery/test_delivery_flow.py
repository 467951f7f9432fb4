"""Deliveries end to end in-process: signed requests, outcomes, retries, attempts recorded."""

from __future__ import annotations

import base64
import json

from sqlalchemy import select
from standardwebhooks import Webhook

from tests.conftest import valid_data
from tests.support.receiver import Reply
from tests.support.work import run_queued_jobs
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, Endpoint
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


def add_endpoint(url, events=("transaction.approved",), **kw):
    endpoint, secret = create_endpoint(EndpointInput(url, list(events), **kw), "test")
    db.session.commit()
    return endpoint, secret


def only_delivery() -> Delivery:
    db.session.expire_all()
    return db.session.scalars(select(Delivery)).one()


def attempts() -> list[Attempt]:
    return list(db.session.scalars(select(Attempt).order_by(Attempt.number)))


def test_delivery_verifies_with_the_standardwebhooks_library(app, post_event, receiver):
    _, secret = add_endpoint(receiver.url)
    post_event(event_id="evt_sw", data=valid_data(amount=2599))
    run_queued_jobs(app)
    request = receiver.wait_for(1)[0]
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["id"] == "evt_sw"
    assert payload["type"] == "transaction.approved"
    assert payload["data"] == valid_data(amount=2599)


def test_request_has_the_standard_headers_and_the_endpoint_custom_headers(
    app, post_event, receiver
):
    add_endpoint(receiver.url, custom_headers={"X-Tenant": "acme"})
    post_event(event_id="evt_headers")
    run_queued_jobs(app)
    headers = receiver.wait_for(1)[0].headers
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "evt_headers"
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["x-tenant"] == "acme"
    assert "webhook-admin" in headers["user-agent"]


def test_a_2xx_marks_the_delivery_succeeded_with_one_attempt(app, post_event, receiver):
    add_endpoint(receiver.url)
    post_event()
    run_queued_jobs(app)
    delivery = only_delivery()
    assert (delivery.status, delivery.attempts_count) == ("succeeded", 1)
    [attempt] = attempts()
    assert (attempt.number, attempt.response_status, attempt.trigger) == (1, 200, "automatic")
    assert attempt.response_body == "ok"


def test_recorded_request_headers_mask_the_signature(app, post_event, receiver):
    add_endpoint(receiver.url, custom_headers={"Authorization": "Bearer topsecret"})
    post_event()
    run_queued_jobs(app)
    [attempt] = attempts()
    assert attempt.request_headers["webhook-signature"] == "v1,•••"
    assert attempt.request_headers["Authorization"] == "•••"
    assert "topsecret" not in json.dumps(attempt.request_headers)


def test_a_failure_is_retried_then_succeeds_with_the_same_webhook_id(app, post_event, receiver):
    replies = iter([Reply(500, b"boom"), Reply(503), Reply(200)])
    receiver.responder = lambda request: next(replies)
    add_endpoint(receiver.url)
    post_event(event_id="evt_retry")
    run_queued_jobs(app)
    received = receiver.wait_for(3)
    assert {r.headers["webhook-id"] for r in received} == {"evt_retry"}
    assert [a.response_status for a in attempts()] == [500, 503, 200]
    assert [a.error_class for a in attempts()] == ["http", "http", None]
    assert only_delivery().status == "succeeded"


def test_after_the_last_try_the_delivery_is_failed(app, post_event, receiver):
    receiver.responder = lambda request: Reply(500)
    add_endpoint(receiver.url)
    post_event()
    run_queued_jobs(app)
    # schedule "0,0,0" in tests: the first try and three retries
    assert [a.number for a in attempts()] == [1, 2, 3, 4]
    assert only_delivery().status == "failed"


def test_a_manual_retry_of_a_failed_delivery_makes_one_more_attempt(app, post_event, receiver, cli):
    replies = iter([Reply(500)] * 4 + [Reply(200)])
    receiver.responder = lambda request: next(replies)
    add_endpoint(receiver.url)
    post_event()
    run_queued_jobs(app)
    delivery = only_delivery()
    assert delivery.status == "failed"
    result = cli.invoke(args=["deliveries", "retry", str(delivery.id)])
    assert result.exit_code == 0, result.output
    run_queued_jobs(app)
    assert only_delivery().status == "succeeded"
    assert [(a.number, a.trigger) for a in attempts()][-1] == (5, "manual")


def test_410_gone_disables_the_endpoint_and_fails_the_delivery(app, post_event, receiver):
    receiver.responder = lambda request: Reply(410)
    endpoint, _ = add_endpoint(receiver.url)
    post_event()
    run_queued_jobs(app)
    assert only_delivery().status == "failed"
    assert len(attempts()) == 1
    endpoint = db.session.get(Endpoint, endpoint.id)
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "gone")


def test_a_redirect_is_a_failure_and_is_not_followed(app, post_event, receiver):
    receiver.responder = lambda request: Reply(302, headers={"Location": receiver.url + "/x"})
    add_endpoint(receiver.url)
    post_event()
    run_queued_jobs(app, max_jobs=1)
    assert len(receiver.requests) == 1
    assert attempts()[0].error_class == "http"
    assert attempts()[0].response_status == 302


def test_a_timeout_is_recorded_with_error_class_timeout(app, post_event, receiver):
    receiver.responder = lambda request: Reply(200, delay=4)
    endpoint, _ = add_endpoint(receiver.url)
    endpoint.timeout_seconds = 1
    db.session.commit()
    post_event()
    run_queued_jobs(app, max_jobs=1)
    first = attempts()[0]
    assert first.error_class == "timeout"
    assert 900 <= first.duration_ms < 2500


def test_connection_refused_is_recorded_with_error_class_connect(app, post_event):
    add_endpoint("http://127.0.0.1:9/closed")
    post_event()
    run_queued_jobs(app, max_jobs=1)
    assert attempts()[0].error_class == "connect"


def test_retry_after_on_429_postpones_the_next_try(app, post_event, receiver):
    receiver.responder = lambda request: Reply(429, headers={"Retry-After": "120"})
    add_endpoint(receiver.url)
    post_event()
    run_queued_jobs(app, max_jobs=1)
    delivery = only_delivery()
    wait = (delivery.next_attempt_at - attempts()[0].started_at).total_seconds()
    assert delivery.status == "retrying"
    assert 119 <= wait <= 121


def test_the_response_body_is_stored_truncated_to_64_kib(app, post_event, receiver):
    receiver.responder = lambda request: Reply(200, body=b"x" * 200_000)
    add_endpoint(receiver.url)
    post_event()
    run_queued_jobs(app)
    assert len(attempts()[0].response_body) == 65536


def test_the_bytes_sent_are_the_bytes_signed(app, post_event, receiver):
    _, secret = add_endpoint(receiver.url)
    post_event(data=valid_data(note="café ☕", n=1.5))
    run_queued_jobs(app)
    request = receiver.wait_for(1)[0]
    import hashlib
    import hmac

    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
    expected = base64.b64encode(hmac.new(key, signed + request.body, hashlib.sha256).digest())
    assert request.headers["webhook-signature"] == "v1," + expected.decode()
