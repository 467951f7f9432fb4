"""Custom header values are secrets: encrypted at rest, sent in clear to the receiver only,
masked in attempt rows and on every page, revealed to an admin alone, with an audit entry.
And database errors never carry their bound values (hide_parameters)."""

from __future__ import annotations

import json
import logging

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from tests.security.test_secrets import database_text
from tests.support.work import run_queued_jobs
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, AuditEntry, Endpoint, User
from webhook_admin.services.endpoint_secrets import decrypt_header_values
from webhook_admin.services.endpoints import EndpointInput, create_endpoint, update_endpoint

TOKEN = "tok_live_5up3r-s3cr3t-header-value"


def add_endpoint(url: str, headers: dict[str, str]) -> Endpoint:
    endpoint, _ = create_endpoint(
        EndpointInput(url, ["transaction.approved"], custom_headers=headers), "test"
    )
    db.session.commit()
    return endpoint


def test_header_values_are_encrypted_at_rest_and_sent_in_clear(app, post_event, receiver):
    add_endpoint(receiver.url, {"X-Api-Token": TOKEN, "X-Tenant": "acme-tenant-7"})
    post_event()
    run_queued_jobs(app)
    request = receiver.wait_for(1)[0]
    assert request.headers["x-api-token"] == TOKEN
    assert request.headers["x-tenant"] == "acme-tenant-7"
    stored = database_text()
    assert "X-Api-Token" in stored  # the names stay readable
    assert TOKEN not in stored and "acme-tenant-7" not in stored


def test_attempt_rows_mask_every_custom_header_value(app, post_event, receiver):
    add_endpoint(receiver.url, {"X-Api-Token": TOKEN, "X-Tenant": "acme-tenant-7"})
    post_event()
    run_queued_jobs(app)
    receiver.wait_for(1)
    attempt = db.session.scalar(select(Attempt))
    assert attempt.request_headers["X-Api-Token"] == "•••"
    assert attempt.request_headers["X-Tenant"] == "•••"
    assert attempt.request_headers["webhook-id"]  # ours are still recorded as sent


def test_pages_show_header_names_never_values(app, admin, viewer, post_event, receiver):
    endpoint = add_endpoint(receiver.url, {"X-Api-Token": TOKEN})
    post_event()
    run_queued_jobs(app)
    receiver.wait_for(1)
    attempt = db.session.scalar(select(Attempt))
    for session in (admin, viewer):
        for path in (
            f"/webhooks/{endpoint.id}",
            f"/deliveries/{attempt.delivery_id}",
            "/webhooks",
            "/audit",
        ):
            html = session.get(path).get_data(as_text=True)
            assert TOKEN not in html, path
        assert "X-Api-Token" in session.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    edit = admin.get(f"/webhooks/{endpoint.id}/edit").get_data(as_text=True)
    assert "X-Api-Token" in edit and TOKEN not in edit


def test_an_admin_reveals_the_values_with_an_audit_entry_and_no_store(app, admin):
    endpoint = add_endpoint("http://127.0.0.1:9/hook", {"X-Api-Token": TOKEN})
    response = admin.post(f"/webhooks/{endpoint.id}/headers/reveal", htmx=True)
    assert response.status_code == 200
    assert TOKEN in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert 'hx-history="false"' in response.get_data(as_text=True)
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "endpoint.headers_reveal")
    )
    assert entry.actor == "admin@example.com" and entry.target_id == str(endpoint.id)
    assert TOKEN not in json.dumps(entry.after)


def test_a_viewer_cannot_reveal_header_values(app, viewer):
    endpoint = add_endpoint("http://127.0.0.1:9/hook", {"X-Api-Token": TOKEN})
    response = viewer.post(f"/webhooks/{endpoint.id}/headers/reveal", htmx=True)
    assert response.status_code == 403
    assert TOKEN not in response.get_data(as_text=True)


def test_a_blank_value_on_edit_keeps_the_saved_one(app, admin):
    endpoint = add_endpoint("http://127.0.0.1:9/hook", {"X-Api-Token": TOKEN, "X-Old": "x"})
    form = {
        "url": endpoint.url,
        "event_types": ["transaction.approved"],
        "header_name": ["X-Api-Token", "X-New", ""],
        "header_value": ["", "fresh-value", ""],
    }
    assert admin.post(f"/webhooks/{endpoint.id}", form, htmx=True).status_code == 200
    db.session.refresh(endpoint)
    assert decrypt_header_values(endpoint.custom_headers) == {
        "X-Api-Token": TOKEN,
        "X-New": "fresh-value",
    }


def test_an_edit_that_changes_a_value_changes_what_is_sent(app):
    endpoint = add_endpoint("http://127.0.0.1:9/hook", {"X-Api-Token": TOKEN})
    update_endpoint(
        endpoint,
        EndpointInput(endpoint.url, ["transaction.approved"], custom_headers={"X-Api-Token": "v2"}),
        "test",
    )
    db.session.commit()
    assert decrypt_header_values(endpoint.custom_headers) == {"X-Api-Token": "v2"}


def test_reencrypt_rotates_header_values_to_the_newest_key(app, cli, environ):
    from cryptography.fernet import Fernet, InvalidToken

    endpoint = add_endpoint("http://127.0.0.1:9/hook", {"X-Api-Token": TOKEN})
    new_key = Fernet.generate_key().decode()
    from webhook_admin import create_app

    rotated_app = create_app(
        environ | {"WEBHOOK_ENCRYPTION_KEYS": f"{new_key} {environ['WEBHOOK_ENCRYPTION_KEYS']}"}
    )
    with rotated_app.app_context():
        result = rotated_app.test_cli_runner().invoke(args=["secrets", "reencrypt"])
        assert result.exit_code == 0, result.output
    db.session.expire_all()
    token = db.session.get(Endpoint, endpoint.id).custom_headers["X-Api-Token"]
    assert Fernet(new_key).decrypt(token.encode()).decode() == TOKEN
    with pytest.raises(InvalidToken):
        Fernet(environ["WEBHOOK_ENCRYPTION_KEYS"]).decrypt(token.encode())


def test_the_migration_encrypts_stored_values_and_masks_recorded_ones(app):
    """An endpoint and an attempt from before 0002, with a header value in clear."""
    db.session.remove()
    downgrade(revision="0001")
    try:
        db.session.execute(
            text(
                "INSERT INTO endpoints (id, url, description, all_category_events, "
                "custom_headers, secret_encrypted, enabled, consecutive_failures, created_at, "
                "updated_at) VALUES (41, 'http://127.0.0.1:9/h', '', false, :headers, 'x', "
                "true, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"headers": json.dumps({"X-Api-Token": TOKEN})},
        )
        db.session.execute(
            text(
                "INSERT INTO events (id, type, data, occurred_at, received_at, body_sha256, "
                "source, delivery_count) VALUES ('evt_m', 't.x', '{}', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP, '', 'api', 1)"
            )
        )
        db.session.execute(
            text(
                "INSERT INTO deliveries (id, event_id, endpoint_id, status, attempts_count, "
                "next_trigger, created_at) VALUES (51, 'evt_m', 41, 'succeeded', 1, "
                "'automatic', CURRENT_TIMESTAMP)"
            )
        )
        db.session.execute(
            text(
                "INSERT INTO attempts (delivery_id, endpoint_id, number, trigger, started_at, "
                "duration_ms, request_url, request_headers, request_body, succeeded) VALUES "
                "(51, 41, 1, 'automatic', CURRENT_TIMESTAMP, 1, 'http://127.0.0.1:9/h', "
                ":headers, '{}', true)"
            ),
            {"headers": json.dumps({"X-Api-Token": TOKEN, "webhook-id": "evt_m"})},
        )
        db.session.commit()
        db.session.remove()
    finally:
        upgrade()
    endpoint = db.session.get(Endpoint, 41)
    assert decrypt_header_values(endpoint.custom_headers) == {"X-Api-Token": TOKEN}
    attempt = db.session.scalar(select(Attempt).where(Attempt.endpoint_id == 41))
    assert attempt.request_headers == {"X-Api-Token": "•••", "webhook-id": "evt_m"}
    rows = db.session.execute(text("SELECT custom_headers FROM endpoints")).scalars().all()
    rows += db.session.execute(text("SELECT request_headers FROM attempts")).scalars().all()
    assert TOKEN not in json.dumps([str(row) for row in rows])


def test_database_errors_never_carry_the_values(app, caplog):
    """hide_parameters: an error names the statement, not a hash or header value in it."""
    db.session.add(User(email="dup@example.com", role="viewer", password_hash="scrypt:a$b$c"))
    db.session.commit()
    db.session.add(User(email="dup@example.com", role="viewer", password_hash="scrypt:SECRETHASH"))
    with caplog.at_level(logging.DEBUG), pytest.raises(IntegrityError) as failure:
        db.session.commit()
    db.session.rollback()
    assert "SECRETHASH" not in str(failure.value)
    assert "hidden due to hide_parameters" in str(failure.value)
    assert "SECRETHASH" not in caplog.text
