"""The ingest API: Standard Webhooks authentication, validation, fan-out, idempotency."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import func, select

from tests.conftest import signed_headers, valid_data
from webhook_admin.extensions import db
from webhook_admin.models import Delivery, Event
from webhook_admin.queues import FRESH, get_queue, job_id_for
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


def add_endpoint(url="http://127.0.0.1:9/hook", events=("transaction.approved",), **kw):
    endpoint, _ = create_endpoint(EndpointInput(url, list(events), **kw), "test")
    db.session.commit()
    return endpoint


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def post_raw(client, body: bytes, headers: dict):
    return client.post("/api/v1/events", data=body, headers=headers)


def test_accepts_a_signed_event_and_answers_202_with_id_and_delivery_count(app, post_event):
    add_endpoint()
    response = post_event(event_id="evt_1")
    assert response.status_code == 202
    assert response.get_json() == {"id": "evt_1", "deliveries": 1}


def test_enqueues_one_job_per_delivery_after_commit(app, post_event):
    add_endpoint()
    add_endpoint("http://127.0.0.1:9/other")
    post_event(event_id="evt_jobs")
    ids = db.session.scalars(select(Delivery.id)).all()
    assert sorted(get_queue(FRESH).job_ids) == sorted(job_id_for(i, 0) for i in ids)


def test_job_arguments_carry_only_the_delivery_id(app, post_event):
    add_endpoint()
    post_event(event_id="evt_args")
    job = get_queue(FRESH).jobs[0]
    delivery_id = db.session.scalar(select(Delivery.id))
    assert job.args == (delivery_id,) and job.kwargs == {}


def test_fans_out_only_to_enabled_endpoints_subscribed_to_the_type(app, post_event):
    subscribed = add_endpoint()
    add_endpoint(events=("transaction.declined",))
    disabled = add_endpoint()
    disabled.enabled = False
    db.session.commit()
    post_event("transaction.approved", event_id="evt_fan")
    endpoint_ids = db.session.scalars(select(Delivery.endpoint_id)).all()
    assert endpoint_ids == [subscribed.id]


def test_whole_category_subscription_matches_every_type_of_the_category(app, post_event):
    endpoint = add_endpoint(events=(), category="Terminals", all_category_events=True)
    post_event("terminal.attestation_failed", event_id="evt_cat")
    post_event("transaction.approved", event_id="evt_other")
    assert db.session.scalars(select(Delivery.event_id)).all() == ["evt_cat"]
    assert endpoint.id == db.session.scalar(select(Delivery.endpoint_id))


def test_merchant_filter_limits_fan_out_to_that_merchant(app, post_event):
    only_m1 = add_endpoint(merchant_id="m1")
    everyone = add_endpoint("http://127.0.0.1:9/all")
    post_event(event_id="evt_m1", merchant_id="m1")
    post_event(event_id="evt_m2", merchant_id="m2")
    pairs = set(db.session.execute(select(Delivery.event_id, Delivery.endpoint_id)).all())
    assert pairs == {("evt_m1", only_m1.id), ("evt_m1", everyone.id), ("evt_m2", everyone.id)}


def test_same_webhook_id_again_returns_200_with_the_same_body_and_creates_nothing(app, post_event):
    add_endpoint()
    first = post_event(event_id="evt_dup", data=valid_data(a=1))
    second = post_event(event_id="evt_dup", data=valid_data(a=1))
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.get_json() == second.get_json()
    assert count(Event) == 1 and count(Delivery) == 1


def test_same_webhook_id_with_a_different_body_is_a_409(app, post_event):
    post_event(event_id="evt_conflict", data=valid_data(a=1))
    response = post_event(event_id="evt_conflict", data=valid_data(a=2))
    assert response.status_code == 409
    assert "different body" in response.get_json()["error"]


def test_a_webhook_id_keeps_its_first_answer_after_its_type_is_archived(app, post_event):
    """Ingest validates before it inserts; a retry of an accepted event must still get its
    first result, not the 400 that a new event of an archived type gets."""
    from webhook_admin.models import EventType

    add_endpoint()
    first = post_event(event_id="evt_then_archived", data=valid_data(a=1))
    event_type = db.session.scalar(
        select(EventType).where(EventType.name == "transaction.approved")
    )
    event_type.archived = True
    db.session.commit()
    again = post_event(event_id="evt_then_archived", data=valid_data(a=1))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json() == first.get_json() == {"id": "evt_then_archived", "deliveries": 1}
    other_body = post_event(event_id="evt_then_archived", data=valid_data(a=2))
    assert other_body.status_code == 409
    assert post_event(event_id="evt_new_of_archived").status_code == 400
    assert count(Event) == 1 and count(Delivery) == 1


def test_an_accepted_webhook_id_with_an_invalid_body_is_a_409_not_a_400(app, client, post_event):
    post_event(event_id="evt_then_garbage")
    body = b'{"type": "no.such.type"}'
    response = post_raw(client, body, signed_headers(body, "evt_then_garbage"))
    assert response.status_code == 409
    assert "different body" in response.get_json()["error"]


def test_twenty_concurrent_copies_create_one_event(app, environ):
    from webhook_admin import create_app

    add_endpoint()
    body = json.dumps({"type": "transaction.approved", "data": valid_data()}).encode()
    headers = signed_headers(body, "evt_race")
    results = []
    barrier = threading.Barrier(20)
    # One app per client, built here one at a time (as gunicorn builds one per process):
    # building them in 20 threads at once made werkzeug compile URL rules with ast.parse
    # concurrently, which CPython 3.11.7 can fail ("AST constructor recursion depth
    # mismatch", python/cpython#106905): that thread's request was never sent and the
    # barrier waited until the test timed out (seen once on a fresh clone).
    clients = [create_app(environ).test_client() for _ in range(20)]

    def send(client):
        barrier.wait()
        results.append(post_raw(client, body, headers))

    threads = [threading.Thread(target=send, args=(client,)) for client in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200] * 19 + [202]
    assert {json.dumps(r.get_json(), sort_keys=True) for r in results} == {
        json.dumps({"deliveries": 1, "id": "evt_race"}, sort_keys=True)
    }
    db.session.rollback()
    assert count(Event) == 1 and count(Delivery) == 1


def test_occurred_at_is_stored_in_utc(app, post_event):
    post_event(event_id="evt_time", occurred_at="2026-11-28T10:00:00+02:00")
    event = db.session.get(Event, "evt_time")
    assert event.occurred_at.isoformat() == "2026-11-28T08:00:00"


def test_succeeds_when_redis_is_down_and_stores_the_deliveries(app, post_event, redis_server):
    add_endpoint()
    redis_server.stop()
    try:
        response = post_event(event_id="evt_noredis")
    finally:
        redis_server.start()
    assert response.status_code == 202
    assert db.session.scalar(select(Delivery.status)) == "pending"


# --- errors: each says what is wrong, and nothing is stored ---------------------------------


def bad_signature(body):
    headers = signed_headers(body)
    headers["webhook-signature"] = "v1," + "A" * 44
    return headers


def stale(body):
    return signed_headers(body, timestamp=int(time.time()) - 301)


def future(body):
    return signed_headers(body, timestamp=int(time.time()) + 301)


def unsigned(body):
    headers = signed_headers(body)
    del headers["webhook-signature"]
    return headers


def other_secret(body):
    return signed_headers(body, secret="whsec_" + "b" * 44)


@pytest.mark.parametrize(
    ("make_headers", "message"),
    [
        (bad_signature, "no webhook-signature matches"),
        (stale, "tolerance"),
        (future, "tolerance"),
        (unsigned, "missing"),
        (other_secret, "no webhook-signature matches"),
    ],
)
def test_rejects_bad_authentication_with_401(app, client, make_headers, message):
    body = json.dumps({"type": "transaction.approved", "data": {}}).encode()
    response = post_raw(client, body, make_headers(body))
    assert response.status_code == 401
    assert message in response.get_json()["error"]
    assert count(Event) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"data": {}}', "'type' is required"),
        (b'{"type": "no.such.type"}', "unknown event type 'no.such.type'"),
        (b'{"type": "transaction.approved", "data": [1]}', "'data' must be a JSON object"),
        (b'{"type": "transaction.approved", "occurred_at": "yesterday"}', "not ISO 8601"),
        (b'{"type": "transaction.approved", "merchant_id": 5}', "'merchant_id' must be a string"),
    ],
)
def test_rejects_malformed_events_with_400(app, client, body, message):
    response = post_raw(client, body, signed_headers(body))
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert count(Event) == 0


def test_rejects_archived_event_types_with_400(app, client):
    from webhook_admin.models import EventType

    event_type = db.session.scalar(select(EventType).where(EventType.name == "refund.failed"))
    event_type.archived = True
    db.session.commit()
    body = b'{"type": "refund.failed"}'
    response = post_raw(client, body, signed_headers(body))
    assert response.status_code == 400
    assert "archived" in response.get_json()["error"]


def test_rejects_bodies_over_256_kib_with_413(app, client):
    body = json.dumps({"type": "transaction.approved", "data": {"x": "a" * 262_144}}).encode()
    response = post_raw(client, body, signed_headers(body))
    assert response.status_code == 413
    assert "256 KiB" in response.get_json()["error"]
    assert count(Event) == 0


def test_rejects_non_json_content_type_with_415(app, client):
    body = b'{"type": "transaction.approved"}'
    headers = signed_headers(body) | {"content-type": "text/plain"}
    response = post_raw(client, body, headers)
    assert response.status_code == 415
    assert "application/json" in response.get_json()["error"]


def test_accepts_any_of_several_ingest_secrets_during_rotation(environ, redis_server):
    from webhook_admin import create_app

    new_secret = "whsec_" + "c" * 44
    app = create_app(
        environ | {"WEBHOOK_INGEST_SECRET": f"{new_secret} {environ['WEBHOOK_INGEST_SECRET']}"}
    )
    client = app.test_client()
    body = b'{"type": "webhook.test"}'
    for secret in (new_secret, environ["WEBHOOK_INGEST_SECRET"]):
        response = post_raw(client, body, signed_headers(body, secret=secret))
        assert response.status_code == 202, response.get_json()


def test_ingest_needs_no_login_and_no_csrf_token(app, client):
    body = b'{"type": "webhook.test"}'
    response = post_raw(client, body, signed_headers(body))
    assert response.status_code == 202


# --- poison inputs: JSON we could not store or send again is refused at the door ---------


def data_of_depth(levels: int) -> str:
    """`data` that makes the whole body `levels` deep: the body's object is one level,
    `data` another, its arrays the rest."""
    return '{"a": ' + "[" * (levels - 2) + "]" * (levels - 2) + "}"


def body_with(data: str = "{}", **fields: str) -> bytes:
    """A body built as raw text, so it can hold what json.dumps would never write. Of type
    webhook.test: its schema requires no field, so these bodies test the JSON limits alone."""
    members = {"type": '"webhook.test"', "data": data, **fields}
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in members.items()) + "}").encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Strings whose value cannot be encoded as UTF-8 again, or stored by PostgreSQL.
        (body_with('{"note": "\\ud83d"}'), "string at $.data.note contains a lone surrogate"),
        (body_with('{"\\udc00x": 1}'), 'key "\\udc00x" in $.data contains a lone surrogate'),
        # The same surrogate as raw bytes (not UTF-8; Python's json decodes it anyway).
        (body_with('{"a": ["?"]}').replace(b"?", b"\xed\xa0\xbd"), "at $.data.a[0] contains a"),
        (body_with('{"note": "a\\u0000b"}'), "string at $.data.note contains NUL"),
        (body_with('{"a\\u0000": 1}'), 'key "a\\u0000" in $.data contains NUL'),
        (body_with(merchant_id='"m\\u0000"'), "string at $.merchant_id contains NUL"),
        (b'{"type": "transaction.approved\\u0000"}', "string at $.type contains NUL"),
        # Depth, numbers and keys Python's json reads but we do not keep.
        (body_with(data_of_depth(33)), "$.data.a" + "[0]" * 30 + " is nested deeper than 32"),
        (body_with(f'{{"n": {2**63}}}'), f"integer {2**63} does not fit in a signed 64-bit"),
        (b"[" * 100_000 + b"]" * 100_000, "body is nested deeper than 32 levels"),
        (body_with('{"n": ' + "7" * 5000 + "}"), "(5000 characters) does not fit in a signed"),
        (body_with('{"n": 1e400}'), "number 1e400 is too large for a 64-bit float at $.data.n"),
        (body_with('{"n": -1e400}'), "too large for a 64-bit float"),
        (body_with('{"n": NaN}'), "NaN is not a JSON number at $.data.n"),
        (body_with('{"n": [Infinity]}'), "Infinity is not a JSON number at $.data.n[0]"),
        (body_with('{"n": -Infinity}'), "-Infinity is not a JSON number"),
        (body_with('{"a": 1, "a": 2}'), 'duplicate key "a" at $.data'),
        (b'{"type": "webhook.test", "type": "transaction.approved"}', 'duplicate key "type" at $'),
        # A time that exists at its offset but not in UTC (an OverflowError: a 500).
        (body_with(occurred_at='"0001-01-01T00:00:00+01:00"'), "'occurred_at' is out of range"),
        (body_with(occurred_at='"9999-12-31T23:59:59-01:00"'), "'occurred_at' is out of range"),
        # Fields longer than their columns (PostgreSQL raised a DataError: a 500).
        (('{"type": "' + "t" * 121 + '"}').encode(), "'type' must be at most 120 characters"),
    ],
)
def test_refuses_json_that_cannot_be_stored_or_sent_again_with_400(app, client, body, message):
    response = post_raw(client, body, signed_headers(body))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.get_json()["error"]
    assert count(Event) == 0 and count(Delivery) == 0


@pytest.mark.parametrize(
    ("at_limit", "over_it", "message"),
    [
        (data_of_depth(32), data_of_depth(33), "nested deeper than 32 levels"),
        ('{"n": 9223372036854775807}', '{"n": 9223372036854775808}', "signed 64-bit integer"),
        ('{"n": -9223372036854775808}', '{"n": -9223372036854775809}', "signed 64-bit integer"),
        ('{"n": 1.7976931348623157e308}', '{"n": 1.8e308}', "too large for a 64-bit float"),
        (
            '{"s": "\\ud83d\\ude00 \u05e9\u05dc\u05d5\u05dd"}',
            '{"s": "\\ud83d \\ude00"}',
            "surrogate",
        ),
        ('{"s": "a\\u0001\\u001fb"}', '{"s": "a\\u0000b"}', "contains NUL"),
        ('{"a": 1, "A": {"a": 2}}', '{"a": 1, "A": 2, "a": 3}', 'duplicate key "a"'),
    ],
)
def test_accepts_json_at_a_limit_and_refuses_it_just_over(app, client, at_limit, over_it, message):
    from webhook_admin.delivery.envelope import envelope_bytes

    accepted = body_with(at_limit)
    assert post_raw(client, accepted, signed_headers(accepted, "evt_ok")).status_code == 202
    event = db.session.get(Event, "evt_ok")
    assert event.data == json.loads(at_limit) == json.loads(envelope_bytes(event))["data"]
    refused = body_with(over_it)
    response = post_raw(client, refused, signed_headers(refused))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert message in response.get_json()["error"]
    assert count(Event) == 1


def test_merchant_id_may_fill_its_column_but_not_overflow_it(app, client):
    """PostgreSQL refused a 121-character merchant_id with a DataError: a 500."""
    fits = body_with(merchant_id='"' + "m" * 120 + '"')
    assert post_raw(client, fits, signed_headers(fits)).status_code == 202
    too_long = body_with(merchant_id='"' + "m" * 121 + '"')
    response = post_raw(client, too_long, signed_headers(too_long))
    assert response.status_code == 400
    assert response.get_json() == {"error": "'merchant_id' must be at most 120 characters"}
    assert count(Event) == 1


@pytest.mark.parametrize(
    "event_id",
    ["evt\x01x", "evt\r\nx-injected: 1", "evt\tx", "evt x", " evt", "evt\x7f", "évt"],
)
def test_refuses_a_webhook_id_that_cannot_be_an_http_header_with_400(app, client, event_id):
    """The id becomes the `webhook-id` header of every delivery; environ_overrides puts it in
    the request as a server would pass it on (the test client refuses CR/LF in headers)."""
    body = b'{"type": "transaction.approved"}'
    headers = signed_headers(body, event_id)
    del headers["webhook-id"]
    response = client.post(
        "/api/v1/events",
        data=body,
        headers=headers,
        environ_overrides={"HTTP_WEBHOOK_ID": event_id},
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "webhook-id must be" in response.get_json()["error"]
    assert count(Event) == 0
