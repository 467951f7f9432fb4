"""The contract: the OpenAPI 3.1 document is valid, has a webhook per catalog event type,
and schemathesis fuzzes every operation of the live app (real HTTP on 127.0.0.1) with an
admin token and a read token: no 5xx, every answer as documented, every 4xx problem+json."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select, update

from tests.conftest import valid_data
from webhook_admin.extensions import db
from webhook_admin.models import Delivery, DeliveryStatus, Event, EventType

from .conftest import token_for

# Per operation and generation mode (positive, negative), each sent with both tokens.
EXAMPLES = 40


def test_document_is_valid_openapi_31(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_document_has_a_webhook_per_event_type_with_its_schema_and_headers(client, app):
    document = client.get("/api/v1/openapi.json").get_json()
    names = set(db.session.scalars(select(EventType.name)))
    assert set(document["webhooks"]) == names
    hook = document["webhooks"]["transaction.approved"]["post"]
    headers = {p["name"] for p in hook["parameters"] if p["in"] == "header"}
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers
    envelope = hook["requestBody"]["content"]["application/json"]["schema"]
    assert envelope["properties"]["type"]["const"] == "transaction.approved"
    approved = db.session.scalar(select(EventType).where(EventType.name == "transaction.approved"))
    assert envelope["properties"]["data"] == approved.json_schema
    assert hook["description"] == approved.trigger_condition


def test_document_is_generated_from_the_validating_schemas(client):
    document = client.get("/api/v1/openapi.json").get_json()
    create = document["components"]["schemas"]["EndpointCreate"]
    assert create["additionalProperties"] is False and "url" in create["required"]
    assert document["paths"]["/api/v1/endpoints"]["post"]["security"] == [{"bearer": []}]


def test_reference_page_works_under_the_csp(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    page = response.get_data(as_text=True)
    assert "<script>" not in page and "swagger-ui-bundle.js" in page
    for asset in ("swagger-ui-5.35.0/swagger-ui-bundle.js", "api-docs.js"):
        assert client.get(f"/static/{asset}").status_code == 200


@schemathesis.check
def problem_json_for_errors(ctx, response, case):
    """Every 4xx and 5xx of the management API is RFC 9457 problem+json."""
    if response.status_code >= 400:
        media_type = response.headers.get("content-type", [""])[0].split(";")[0]
        assert media_type == "application/problem+json", f"{response.status_code} {media_type}"
        body = response.json()
        assert {"type", "title", "status", "detail"} <= set(body), body
        assert body["status"] == response.status_code


@pytest.fixture
def environ(environ):
    """The fuzzer sends thousands of calls a minute per token: above the rate limit, which
    would answer most of them 429 (documented, but nothing behind it would be reached)."""
    return environ | {"WEBHOOK_API_RATE_LIMIT": "1000000/minute"}


@pytest.fixture
def fuzz_data(app, post_event, endpoint, add_endpoint):
    """Rows for the fuzzer to find: endpoints, events, deliveries (some failed), so that
    generated calls reach the code behind the 404s, not only the 404s."""
    endpoints = [endpoint.id] + [add_endpoint(f"http://127.0.0.1:9/{i}").id for i in range(3)]
    for i in range(4):
        assert post_event(data=valid_data(amount=i)).status_code == 202
    deliveries = list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))
    db.session.execute(
        update(Delivery).where(Delivery.id.in_(deliveries[:2])).values(status=DeliveryStatus.FAILED)
    )
    db.session.commit()
    return {
        "endpoint_id": endpoints,
        "delivery_id": deliveries,
        "event_id": list(db.session.scalars(select(Event.id))),
        "name": list(db.session.scalars(select(EventType.name).limit(4))),
    }


def strategy(operation, mode, known: dict) -> st.SearchStrategy:
    """Generated cases, and as many again with a path parameter that exists."""
    choices = [operation.as_strategy(mode)]
    for parameter in operation.path_parameters:
        for value in known.get(parameter.name, []):
            choices.append(operation.as_strategy(mode, path_parameters={parameter.name: value}))
    return st.one_of(choices[:1] * max(1, len(choices) - 1) + choices[1:])


def steer_body(case, data) -> None:
    """Now and then a URL and an event type that validate, so creates and edits get past
    the service's checks and the rest of the body is what is fuzzed."""
    if isinstance(case.body, dict) and "url" in case.body and data.draw(st.booleans()):
        case.body["url"] = "http://127.0.0.1:9/fuzzed"
        case.body["event_types"] = ["transaction.approved"]


# 4,000 calls: ~90 s on a quiet host, and past the suite's 120 s default when the host's
# shared cores are busy. Its own bound keeps a hang from holding the suite for long.
@pytest.mark.timeout(480)
def test_schemathesis_finds_no_5xx_and_every_answer_matches_the_document(live_server, fuzz_data):
    admin, _ = token_for("admin@example.com", "admin", "admin", "fuzz-admin")
    read, _ = token_for("admin@example.com", "admin", "read", "fuzz-read")
    document = requests.get(f"{live_server}/api/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        problem_json_for_errors,
    ]
    session = requests.Session()
    started, seen = time.monotonic(), Counter()
    # Deletes last: the rows the other operations are steered to must still be there.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda operation: operation.method.upper() == "DELETE",
    )
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy(operation, mode, fuzz_data), data=st.data())
            def fuzz(case, data):
                steer_body(case, data)
                for token in (read, admin):
                    response = case.call(
                        base_url=live_server,
                        session=session,
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=15,
                    )
                    seen[response.status_code // 100] += 1
                    case.validate_response(response, checks=checks)

            fuzz()
    elapsed = time.monotonic() - started
    print(
        f"schemathesis: {len(operations)} operations, {sum(seen.values())} calls, {dict(seen)}, {elapsed:.1f} s"
    )
    assert len(operations) >= 17 and seen[2] > 800 and seen[4]
