"""GET /api/v1/events/{id}/explain and GET /api/v1/endpoints/{id}/explain?event_id=."""

from __future__ import annotations

from webhook_admin.extensions import db
from webhook_admin.services.endpoints import EndpointInput, create_endpoint

from .test_endpoints_api import assert_problem


def test_event_explain_lists_every_endpoint(read_api, endpoint, post_event):
    other, _ = create_endpoint(EndpointInput("http://127.0.0.1:9/r", ["refund.created"]), "t")
    db.session.commit()
    assert post_event(event_id="evt_api_why").status_code == 202
    response = read_api.get("/api/v1/events/evt_api_why/explain")
    assert response.status_code == 200
    body = response.get_json()
    assert body["event_type"] == "transaction.approved"
    by_id = {a["endpoint_id"]: a for a in body["endpoints"]}
    assert by_id[endpoint.id]["outcome"] == "pending" and by_id[endpoint.id]["delivery_id"]
    assert by_id[endpoint.id]["would_deliver"] is True
    assert by_id[other.id] | {"detail": None} == {
        "endpoint_id": other.id,
        "endpoint_url": "http://127.0.0.1:9/r",
        "outcome": "not_subscribed",
        "would_deliver": False,
        "reasons": ["not_subscribed"],
        "detail": None,
        "delivery_id": None,
        "delivery_status": None,
    }
    assert_problem(read_api.get("/api/v1/events/evt_nope/explain"), 404)


def test_endpoint_explain_answers_for_one_event(read_api, anonymous_api, endpoint, post_event):
    assert post_event(event_id="evt_api_one").status_code == 202
    url = f"/api/v1/endpoints/{endpoint.id}/explain?event_id=evt_api_one"
    body = read_api.get(url).get_json()
    assert body["endpoint_id"] == endpoint.id and body["outcome"] == "pending"
    assert_problem(read_api.get(f"/api/v1/endpoints/{endpoint.id}/explain"), 422)
    assert_problem(read_api.get(f"/api/v1/endpoints/{endpoint.id}/explain?event_id=x"), 404)
    assert_problem(read_api.get("/api/v1/endpoints/99999/explain?event_id=evt_api_one"), 404)
    assert_problem(anonymous_api.get(url), 401)
