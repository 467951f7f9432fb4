"""/api/v1/event-types: schemas, examples and trigger conditions through the management API."""

from __future__ import annotations

from tests.conftest import valid_data
from webhook_admin.extensions import db
from webhook_admin.services.endpoints import EndpointInput, create_endpoint

from .test_endpoints_api import assert_problem

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["points"],
    "properties": {"points": {"type": "integer", "minimum": 1}},
}
NEW_TYPE = {
    "name": "loyalty.points_earned",
    "category": "Merchants",
    "description": "Points earned.",
    "trigger_condition": "Fires when a payment earns points.",
    "example_payload": {"points": 12},
    "json_schema": SCHEMA,
}


def errors(response) -> dict:
    return {e["field"]: e["message"] for e in response.get_json()["errors"]}


def test_an_event_type_is_created_with_its_schema_and_ingest_enforces_it(admin_api, post_event):
    response = admin_api.post("/api/v1/event-types", json=NEW_TYPE)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["json_schema"] == SCHEMA
    assert body["trigger_condition"] == "Fires when a payment earns points."
    refused = post_event("loyalty.points_earned", {"points": 0})
    assert refused.get_json()["violations"] == [
        {"path": "data.points", "reason": "0 is less than the minimum of 1"}
    ]


def test_a_schema_that_is_not_json_schema_is_refused_with_the_reason(admin_api):
    bad = NEW_TYPE | {"json_schema": {"type": "object", "required": "points"}}
    response = admin_api.post("/api/v1/event-types", json=bad)
    assert_problem(response, 422)
    assert errors(response)["json_schema"].startswith(
        "not a valid JSON Schema: schema.required: 'points' is not of type 'array'"
    )
    assert admin_api.get("/api/v1/event-types/loyalty.points_earned").status_code == 404


def test_a_remote_reference_or_another_draft_is_refused(admin_api):
    remote = {"type": "object", "properties": {"a": {"$ref": "https://127.0.0.1/s.json"}}}
    response = admin_api.post("/api/v1/event-types", json=NEW_TYPE | {"json_schema": remote})
    assert "only references inside the schema" in errors(response)["json_schema"]
    draft7 = SCHEMA | {"$schema": "http://json-schema.org/draft-07/schema#"}
    response = admin_api.post("/api/v1/event-types", json=NEW_TYPE | {"json_schema": draft7})
    assert "Draft 2020-12" in errors(response)["json_schema"]


def test_an_example_that_does_not_match_the_schema_is_refused(admin_api):
    response = admin_api.post(
        "/api/v1/event-types", json=NEW_TYPE | {"example_payload": {"points": "12"}}
    )
    assert_problem(response, 422)
    assert errors(response)["example_payload"] == (
        "the example does not match the schema: example.points: '12' is not of type 'integer'"
    )


def test_a_patched_example_is_checked_against_the_stored_schema(admin_api):
    response = admin_api.patch(
        "/api/v1/event-types/refund.created",
        json={"example_payload": valid_data("refund.created", amount=-1)},
    )
    assert_problem(response, 422)
    assert "example.amount: -1 is less than the minimum of 0" in errors(response)["example_payload"]


def test_patch_changes_the_schema_or_removes_it_with_null(admin_api, post_event):
    response = admin_api.patch(
        "/api/v1/event-types/merchant.suspended",
        json={"json_schema": None, "example_payload": {"free": "form"}},
    )
    assert response.status_code == 200 and response.get_json()["json_schema"] is None
    assert post_event("merchant.suspended", {"anything": True}).status_code == 202
    response = admin_api.patch(
        "/api/v1/event-types/merchant.suspended",
        json={"json_schema": SCHEMA, "example_payload": {"points": 2}},
    )
    assert response.status_code == 200
    assert post_event("merchant.suspended", {"anything": True}).status_code == 400


def test_one_event_type_lists_the_endpoints_that_receive_it(admin_api, read_api):
    endpoint, _ = create_endpoint(EndpointInput("http://127.0.0.1:9/x", ["payout.failed"]), "t")
    db.session.commit()
    body = read_api.get("/api/v1/event-types/payout.failed").get_json()
    assert body["subscribed_endpoints"] == [endpoint.id]
    assert read_api.get("/api/v1/event-types/payout.paid").get_json()["subscribed_endpoints"] == []
