"""/api/v1/endpoints: each route, its bad inputs, scopes, roles and audit entries."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, Delivery, Endpoint

PROBLEM = "application/problem+json"
NEW = {"url": "http://127.0.0.1:9/new", "event_types": ["transaction.approved"]}


def audits(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def assert_problem(response, status: int):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"] and body["type"] and "detail" in body
    return body


def test_create_answers_201_with_the_secret_once_and_audits_the_token(admin_api):
    response = admin_api.post("/api/v1/endpoints", json=NEW)
    assert response.status_code == 201
    body = response.get_json()
    assert body["secret"].startswith("whsec_") and body["url"] == NEW["url"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Location"].endswith(f"/api/v1/endpoints/{body['id']}")
    again = admin_api.get(f"/api/v1/endpoints/{body['id']}").get_json()
    assert "secret" not in again
    [entry] = audits("endpoint.create")
    assert entry.actor == f"admin@example.com via token 'ci' #{entry.actor.split('#')[1]}"


def test_create_refuses_an_unknown_field(admin_api):
    body = assert_problem(admin_api.post("/api/v1/endpoints", json=NEW | {"colour": "red"}), 422)
    assert body["errors"][0]["field"] == "colour"


def test_create_refuses_what_the_form_refuses_with_field_errors(admin_api):
    body = assert_problem(
        admin_api.post("/api/v1/endpoints", json={"url": "ftp://x", "event_types": ["nope.x"]}),
        422,
    )
    fields = {e["field"] for e in body["errors"]}
    assert {"url", "event_types"} <= fields
    assert not audits("endpoint.create")


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b'{"url": "\\ud800"}',
        b'{"url": NaN}',
        b"[" * 100 + b"]" * 100,
    ],
)
def test_create_refuses_bodies_we_cannot_store(admin_api, payload):
    response = admin_api.client.post(
        "/api/v1/endpoints",
        data=payload,
        headers=admin_api.headers({"Content-Type": "application/json"}),
    )
    assert response.status_code in (400, 422)
    assert response.mimetype == PROBLEM


def test_create_refuses_a_body_that_is_not_an_object(admin_api):
    assert_problem(admin_api.post("/api/v1/endpoints", json=[NEW]), 422)


def test_create_refuses_a_form_body(admin_api):
    response = admin_api.client.post(
        "/api/v1/endpoints", data={"url": "x"}, headers=admin_api.headers()
    )
    assert_problem(response, 415)


def test_read_token_may_not_create(read_api):
    assert_problem(read_api.post("/api/v1/endpoints", json=NEW), 403)
    assert not audits("endpoint.create")


def test_a_demoted_users_admin_token_may_not_create(viewer_api):
    body = assert_problem(viewer_api.post("/api/v1/endpoints", json=NEW), 403)
    assert "viewer" in body["detail"]


def test_no_token_or_a_bad_token_is_401(anonymous_api, admin_api):
    assert_problem(anonymous_api.get("/api/v1/endpoints"), 401)
    admin_api.token = "whadm_" + "x" * 43
    assert_problem(admin_api.get("/api/v1/endpoints"), 401)


def test_list_pages_by_cursor_and_filters(admin_api, endpoint):
    for i in range(3):
        admin_api.post(
            "/api/v1/endpoints", json=NEW | {"url": f"http://127.0.0.1:9/{i}", "merchant_id": "m1"}
        )
    first = admin_api.get("/api/v1/endpoints?limit=2").get_json()
    assert len(first["data"]) == 2 and first["next"]
    second = admin_api.get(f"/api/v1/endpoints?limit=2&after={first['next']}").get_json()
    ids = [e["id"] for e in first["data"] + second["data"]]
    assert len(ids) == 4 and ids == sorted(ids, reverse=True) and second["next"] is None
    merchant = admin_api.get("/api/v1/endpoints?merchant_id=m1").get_json()["data"]
    assert len(merchant) == 3
    by_type = admin_api.get("/api/v1/endpoints?event_type=transaction.approved").get_json()
    assert len(by_type["data"]) == 4
    assert (
        admin_api.get("/api/v1/endpoints?category=Transactions").get_json()["data"][0]["id"]
        == endpoint.id
    )
    assert admin_api.get("/api/v1/endpoints?q=ERP").get_json()["data"][0]["id"] == endpoint.id
    assert admin_api.get("/api/v1/endpoints?enabled=false").get_json()["data"] == []


def test_list_stays_stable_when_endpoints_are_added_between_pages(admin_api):
    for i in range(3):
        admin_api.post("/api/v1/endpoints", json=NEW | {"url": f"http://127.0.0.1:9/{i}"})
    first = admin_api.get("/api/v1/endpoints?limit=2").get_json()
    admin_api.post("/api/v1/endpoints", json=NEW | {"url": "http://127.0.0.1:9/late"})
    second = admin_api.get(f"/api/v1/endpoints?limit=2&after={first['next']}").get_json()
    assert [e["url"] for e in second["data"]] == ["http://127.0.0.1:9/0"]


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "after=abc", "after=-1"])
def test_list_refuses_bad_paging(admin_api, query):
    assert_problem(admin_api.get(f"/api/v1/endpoints?{query}"), 422)


def test_unknown_id_is_404(admin_api):
    for url in ("/api/v1/endpoints/999", "/api/v1/endpoints/99999999999999999999"):
        assert_problem(admin_api.get(url), 404)
    assert_problem(admin_api.get("/api/v1/nothing-here"), 404)


def test_deleted_endpoint_is_404(admin_api, endpoint):
    assert admin_api.delete(f"/api/v1/endpoints/{endpoint.id}").status_code == 204
    assert_problem(admin_api.get(f"/api/v1/endpoints/{endpoint.id}"), 404)
    assert db.session.get(Endpoint, endpoint.id).deleted_at is not None
    assert audits("endpoint.delete")


def test_patch_changes_only_the_fields_sent(admin_api, endpoint):
    response = admin_api.patch(
        f"/api/v1/endpoints/{endpoint.id}", json={"description": "new", "timeout_seconds": 5}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["description"] == "new" and body["timeout_seconds"] == 5
    assert body["url"] == endpoint.url and body["event_types"] == ["transaction.approved"]
    [entry] = audits("endpoint.update")
    assert entry.before["description"] == "ERP" and entry.after["description"] == "new"


def test_patch_keeps_a_custom_header_value_sent_blank(admin_api, endpoint, app):
    from webhook_admin.services.endpoint_secrets import decrypt_header_values

    admin_api.patch(f"/api/v1/endpoints/{endpoint.id}", json={"custom_headers": {"X-Key": "v1"}})
    admin_api.patch(f"/api/v1/endpoints/{endpoint.id}", json={"custom_headers": {"X-Key": ""}})
    db.session.expire_all()
    stored = db.session.get(Endpoint, endpoint.id).custom_headers
    assert decrypt_header_values(stored) == {"X-Key": "v1"}


@pytest.mark.parametrize(
    "patch",
    [
        {"url": None},
        {"timeout_seconds": 0},
        {"timeout_seconds": 61},
        {"enabled": False},
        {"event_types": []},
    ],
)
def test_patch_refuses_bad_fields(admin_api, endpoint, patch):
    assert_problem(admin_api.patch(f"/api/v1/endpoints/{endpoint.id}", json=patch), 422)


def test_disable_with_a_note_then_enable(admin_api, endpoint):
    response = admin_api.post(f"/api/v1/endpoints/{endpoint.id}/disable", json={"note": "maint"})
    assert response.status_code == 200
    assert response.get_json()["enabled"] is False
    assert response.get_json()["disabled_note"] == "maint"
    assert audits("endpoint.disable")[0].actor.startswith("admin@example.com via token")
    response = admin_api.post(f"/api/v1/endpoints/{endpoint.id}/enable")
    assert response.get_json()["enabled"] is True and audits("endpoint.enable")


def test_disable_without_a_body(admin_api, endpoint):
    assert admin_api.post(f"/api/v1/endpoints/{endpoint.id}/disable").status_code == 200


def test_enable_refuses_a_body(admin_api, endpoint):
    assert_problem(admin_api.post(f"/api/v1/endpoints/{endpoint.id}/enable", json={"x": 1}), 422)


def test_rotate_secret_keeps_the_old_one_for_the_overlap(admin_api, endpoint):
    response = admin_api.post(f"/api/v1/endpoints/{endpoint.id}/rotate-secret")
    assert response.status_code == 200
    body = response.get_json()
    assert body["secret"] != endpoint.test_secret and body["previous_secret_expires_at"]
    assert response.headers["Cache-Control"] == "no-store"
    assert audits("endpoint.secret_rotate")


def test_secret_is_admin_only_and_audited(admin_api, read_api, endpoint):
    assert_problem(read_api.get(f"/api/v1/endpoints/{endpoint.id}/secret"), 403)
    assert not audits("endpoint.secret_reveal")
    response = admin_api.get(f"/api/v1/endpoints/{endpoint.id}/secret")
    assert response.get_json()["secret"] == endpoint.test_secret
    [entry] = audits("endpoint.secret_reveal")
    assert "via token" in entry.actor


def test_test_event_creates_one_delivery(admin_api, endpoint):
    response = admin_api.post(f"/api/v1/endpoints/{endpoint.id}/test")
    assert response.status_code == 202
    delivery = db.session.get(Delivery, response.get_json()["delivery_id"])
    assert delivery.endpoint_id == endpoint.id and delivery.event_id.startswith("evt_test_")
    assert audits("endpoint.test")


def test_test_event_to_a_disabled_endpoint_is_409(admin_api, endpoint):
    admin_api.post(f"/api/v1/endpoints/{endpoint.id}/disable")
    assert_problem(admin_api.post(f"/api/v1/endpoints/{endpoint.id}/test"), 409)


def test_stats_has_24_hours(read_api, endpoint):
    body = read_api.get(f"/api/v1/endpoints/{endpoint.id}/stats").get_json()
    assert len(body["hours"]) == 24 and body["delivered"] == 0


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/endpoints/{id}/enable",
        "/api/v1/endpoints/{id}/disable",
        "/api/v1/endpoints/{id}/rotate-secret",
        "/api/v1/endpoints/{id}/test",
        "/api/v1/endpoints/{id}/recover",
    ],
)
def test_read_token_may_not_act(read_api, endpoint, url):
    assert_problem(read_api.post(url.format(id=endpoint.id), json={}), 403)


def test_read_token_may_not_patch_or_delete(read_api, endpoint):
    assert_problem(read_api.patch(f"/api/v1/endpoints/{endpoint.id}", json={}), 403)
    assert_problem(read_api.delete(f"/api/v1/endpoints/{endpoint.id}"), 403)
    assert db.session.get(Endpoint, endpoint.id).deleted_at is None


def test_unknown_method_and_too_large_body_are_problems(admin_api):
    response = admin_api.client.put("/api/v1/endpoints", headers=admin_api.headers())
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]
    big = {"url": "http://127.0.0.1:9/x", "description": "x" * (1024 * 1024 + 10)}
    assert_problem(admin_api.post("/api/v1/endpoints", json=big), 413)


def test_the_ingest_keeps_its_own_errors(admin_api):
    big = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    response = admin_api.client.post(
        "/api/v1/events", data=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and response.mimetype == "application/json"
    assert "error" in response.get_json()


def test_pages_keep_their_html_errors(client):
    response = client.get("/webhooks/999999/nothing")
    assert response.status_code == 404 and response.mimetype == "text/html"
