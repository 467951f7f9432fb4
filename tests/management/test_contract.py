"""The contract: the OpenAPI 3.1 document is valid, has a webhook per catalog event type,
and schemathesis fuzzes every operation of the live app (real HTTP on 127.0.0.1) with an
admin token and a read token: no 5xx, every answer as documented, every 4xx problem+json."""

from __future__ import annotations

import time

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from webhook_admin.extensions import db
from webhook_admin.models import EventType

from .conftest import token_for

# Per operation and token: 17 operations x 2 tokens x this many ~ 1 minute in all.
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


def test_schemathesis_finds_no_5xx_and_every_answer_matches_the_document(
    live_server, app, endpoint
):
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
    started, operations = time.monotonic(), 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case):
            for token in (read, admin):
                response = case.call(
                    base_url=live_server,
                    session=session,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=15,
                )
                case.validate_response(response, checks=checks)

        fuzz()
    assert operations >= 17
    assert time.monotonic() - started < 240
