"""Catalog edits, user administration and the audit page."""

from __future__ import annotations

import json

from sqlalchemy import select

from tests.conftest import valid_data
from tests.views.conftest import make_user
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, EventType, User


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def test_admin_adds_category_and_event_type(admin):
    assert admin.post("/catalog/categories", {"name": "Loyalty"}).status_code == 303
    response = admin.post(
        "/catalog/event-types",
        {
            "name": "loyalty.points_earned",
            "category": "Loyalty",
            "description": "Points",
            "example_payload": '{"points": 10}',
        },
    )
    assert response.status_code == 303
    created = db.session.scalar(select(EventType).where(EventType.name == "loyalty.points_earned"))
    assert created.example_payload == {"points": 10}
    assert "loyalty.points_earned" in admin.get("/catalog").get_data(as_text=True)


def test_event_type_with_bad_json_example_answers_422(admin):
    response = admin.post(
        "/catalog/event-types",
        {"name": "refund.x", "category": "Refunds", "example_payload": "{nope"},
    )
    assert response.status_code == 422
    assert "not valid JSON" in response.get_data(as_text=True)


def test_archiving_an_event_type_shows_it_archived_and_audits(admin):
    event_type = db.session.scalar(select(EventType).where(EventType.name == "refund.failed"))
    admin.post(
        f"/catalog/event-types/{event_type.id}/edit",
        {
            "category": "Refunds",
            "description": "x",
            "example_payload": json.dumps(valid_data("refund.failed")),
            "archived": "y",
        },
    )
    db.session.refresh(event_type)
    assert event_type.archived
    assert "Archived" in admin.get("/catalog").get_data(as_text=True)
    assert db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "catalog.event_type_archive")
    )


def test_invite_user_shows_one_time_password_and_audits(admin):
    response = admin.post("/users", {"email": "new@example.com", "role": "viewer"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    assert user("new@example.com").role == "viewer"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.create"))
    assert "password" not in str(entry.after)


def test_change_role_and_disable_user(admin):
    make_user("v@example.com", "viewer")
    target = user("v@example.com")
    response = admin.post(f"/users/{target.id}/role", {"role": "admin"}, htmx=True)
    assert response.get_data(as_text=True).lstrip().startswith(f'<tr id="user-{target.id}"')
    admin.post(f"/users/{target.id}/disable", htmx=True)
    db.session.refresh(target)
    assert (target.role, target.active) == ("admin", False)


def test_last_admin_cannot_be_demoted(admin):
    me = user("admin@example.com")
    response = admin.post(f"/users/{me.id}/role", {"role": "viewer"}, htmx=True)
    assert response.status_code == 409
    db.session.refresh(me)
    assert me.role == "admin"


def test_disabled_users_session_ends(admin, viewer):
    admin.post(f"/users/{user('viewer@example.com').id}/disable", htmx=True)
    assert viewer.get("/webhooks").status_code == 302


def test_audit_page_filters_by_action_actor_and_target(admin, endpoint):
    admin.post(f"/webhooks/{endpoint.id}/disable", htmx=True)
    rows = admin.get("/audit?action=endpoint.disable", htmx=True).get_data(as_text=True)
    assert "endpoint.disable" in rows and "user.login" not in rows
    rows = admin.get("/audit?actor=nobody", htmx=True).get_data(as_text=True)
    assert "No entries match" in rows
    rows = admin.get(f"/audit?target=endpoint:{endpoint.id}", htmx=True).get_data(as_text=True)
    assert "endpoint.disable" in rows and "user.login" not in rows


def test_events_page_shows_payload_and_fan_out(viewer, endpoint, post_event):
    post_event("transaction.approved", data=valid_data(amount=4242), event_id="evt_fan")
    assert "evt_fan" in viewer.get("/events").get_data(as_text=True)
    html = viewer.get("/events/evt_fan").get_data(as_text=True)
    assert "4242" in html and endpoint.url in html


def test_an_event_type_deadline_is_edited_on_the_catalog_page(admin):
    event_type = db.session.scalar(select(EventType).where(EventType.name == "refund.failed"))
    form = {"category": "Refunds", "description": "x", "example_payload": "{}"}
    response = admin.post(
        f"/catalog/event-types/{event_type.id}/edit", form | {"expires_after_seconds": "5"}
    )
    assert response.status_code == 422 and "60 to 2592000 seconds" in response.get_data(
        as_text=True
    )
    admin.post(
        f"/catalog/event-types/{event_type.id}/edit", form | {"expires_after_seconds": "7200"}
    )
    db.session.refresh(event_type)
    assert event_type.expires_after_seconds == 7200
    assert "2 h" in admin.get("/catalog").get_data(as_text=True)
