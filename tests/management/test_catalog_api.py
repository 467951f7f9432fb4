"""/api/v1/event-types and /api/v1/categories."""

from __future__ import annotations

from sqlalchemy import select

from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry

from .test_endpoints_api import assert_problem

NEW_TYPE = {"name": "payout.sent", "category": "Transactions", "description": "Paid out."}


def test_event_types_and_categories_are_listed(read_api):
    types = read_api.get("/api/v1/event-types").get_json()["data"]
    assert "transaction.approved" in {t["name"] for t in types}
    one = read_api.get("/api/v1/event-types/transaction.approved").get_json()
    assert one["category"] == "Transactions" and one["example_payload"]
    categories = read_api.get("/api/v1/categories").get_json()["data"]
    assert (
        "transaction.approved"
        in next(c for c in categories if c["name"] == "Transactions")["event_types"]
    )
    assert_problem(read_api.get("/api/v1/event-types/no.such"), 404)


def test_admin_adds_changes_and_archives_an_event_type(admin_api):
    response = admin_api.post("/api/v1/event-types", json=NEW_TYPE)
    assert response.status_code == 201 and response.get_json()["name"] == "payout.sent"
    response = admin_api.patch("/api/v1/event-types/payout.sent", json={"archived": True})
    assert response.get_json()["archived"] is True
    assert response.get_json()["description"] == "Paid out."
    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-2:] == ["catalog.event_type_create", "catalog.event_type_archive"]


def test_event_type_bad_inputs(admin_api):
    assert_problem(admin_api.post("/api/v1/event-types", json=NEW_TYPE | {"name": "Bad"}), 422)
    assert_problem(admin_api.post("/api/v1/event-types", json=NEW_TYPE | {"category": "No"}), 422)
    admin_api.post("/api/v1/event-types", json=NEW_TYPE)
    assert_problem(admin_api.post("/api/v1/event-types", json=NEW_TYPE), 422)
    assert_problem(admin_api.patch("/api/v1/event-types/payout.sent", json={"name": "x.y"}), 422)


def test_categories_can_be_added_by_admins_only(admin_api, read_api):
    assert_problem(read_api.post("/api/v1/categories", json={"name": "Payouts"}), 403)
    response = admin_api.post("/api/v1/categories", json={"name": "Payouts"})
    assert response.status_code == 201 and response.get_json()["event_types"] == []
    assert_problem(admin_api.post("/api/v1/categories", json={"name": "payouts"}), 422)
    assert_problem(admin_api.post("/api/v1/categories", json={"name": "   "}), 422)


def test_read_token_may_not_change_the_catalog(read_api):
    assert_problem(read_api.post("/api/v1/event-types", json=NEW_TYPE), 403)
    patch = {"archived": True}
    assert_problem(read_api.patch("/api/v1/event-types/transaction.approved", json=patch), 403)


def test_a_deadline_is_set_checked_and_cleared_through_the_api(admin_api, read_api):
    seeded = read_api.get("/api/v1/event-types/transaction.approved").get_json()
    assert seeded["expires_after_seconds"] == 3600  # the catalog file's
    created = admin_api.post("/api/v1/event-types", json=NEW_TYPE | {"expires_after_seconds": 900})
    assert created.status_code == 201 and created.get_json()["expires_after_seconds"] == 900
    body = assert_problem(
        admin_api.patch("/api/v1/event-types/payout.sent", json={"expires_after_seconds": 30}),
        422,
    )
    assert body["errors"][0]["field"].endswith("expires_after_seconds")
    kept = admin_api.patch("/api/v1/event-types/payout.sent", json={"description": "d"})
    assert kept.get_json()["expires_after_seconds"] == 900  # left out: unchanged
    cleared = admin_api.patch(
        "/api/v1/event-types/payout.sent", json={"expires_after_seconds": None}
    )
    assert cleared.get_json()["expires_after_seconds"] is None
    entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
    assert (
        entry.before["expires_after_seconds"] == 900
        and entry.after["expires_after_seconds"] is None
    )


def test_a_non_ascii_category_name_sent_twice_is_a_422_not_a_500(admin_api):
    """SQLite's lower() folds ASCII only: the exact name must be checked too."""
    body = {"name": "Õrders Ü"}
    assert admin_api.post("/api/v1/categories", json=body).status_code == 201
    assert_problem(admin_api.post("/api/v1/categories", json=body), 422)
