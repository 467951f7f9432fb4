"""Operator CLI: human output, --json for machines, errors on stderr with a non-zero exit."""

from __future__ import annotations

import json

from sqlalchemy import select

from tests.conftest import valid_data
from tests.support.receiver import Reply
from tests.support.work import run_queued_jobs
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, Endpoint, User


def invoke(cli, *args):
    return cli.invoke(args=list(args))


def add(cli, url, *extra):
    result = invoke(
        cli, "endpoints", "add", url, "--event", "transaction.approved", "--json", *extra
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_endpoints_add_json_prints_id_url_and_secret_once(app, cli):
    data = add(cli, "https://hooks.example.com/softpos", "--category", "Transactions")
    assert data["url"] == "https://hooks.example.com/softpos"
    assert data["secret"].startswith("whsec_")
    endpoint = db.session.get(Endpoint, data["id"])
    assert data["secret"] not in endpoint.secret_encrypted


def test_endpoints_add_rejects_unknown_event_types_on_stderr(app, cli):
    result = invoke(cli, "endpoints", "add", "https://x.example.com", "--event", "nope.nope")
    assert result.exit_code == 1
    assert "unknown event type(s): nope.nope" in result.stderr


def test_endpoints_add_rejects_a_url_that_breaks_the_destination_rules(app, cli):
    result = invoke(
        cli, "endpoints", "add", "ftp://x.example.com", "--event", "transaction.approved"
    )
    assert result.exit_code == 1
    assert "url:" in result.stderr


def test_endpoints_list_json_is_an_array_of_endpoints(app, cli):
    first = add(cli, "https://a.example.com/hook")
    second = add(cli, "https://b.example.com/hook")
    rows = json.loads(invoke(cli, "endpoints", "list", "--json").output)
    assert [r["id"] for r in rows] == [first["id"], second["id"]]
    assert all("secret" not in r for r in rows)


def test_disable_enable_delete_change_the_endpoint_and_are_audited(app, cli):
    endpoint_id = str(add(cli, "https://a.example.com/hook")["id"])
    assert invoke(cli, "endpoints", "disable", endpoint_id).exit_code == 0
    assert db.session.get(Endpoint, int(endpoint_id)).enabled is False
    assert invoke(cli, "endpoints", "enable", endpoint_id).exit_code == 0
    assert invoke(cli, "endpoints", "delete", endpoint_id).exit_code == 0
    db.session.expire_all()
    assert db.session.get(Endpoint, int(endpoint_id)).deleted_at is not None
    actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["endpoint.create", "endpoint.disable", "endpoint.enable", "endpoint.delete"]


def test_show_of_a_missing_endpoint_fails_with_a_message(app, cli):
    result = invoke(cli, "endpoints", "show", "999")
    assert result.exit_code == 1
    assert "no endpoint with id 999" in result.stderr


def test_deliveries_list_json_has_the_documented_fields(app, cli, post_event, receiver):
    receiver.responder = lambda request: Reply(500)
    endpoint = add(cli, receiver.url)
    post_event(event_id="evt_cli")
    run_queued_jobs(app)
    rows = json.loads(invoke(cli, "deliveries", "list", "--json", "--status", "failed").output)
    assert len(rows) == 1
    row = rows[0]
    assert {k: row[k] for k in ("event_id", "endpoint_id", "status", "attempts")} == {
        "event_id": "evt_cli",
        "endpoint_id": endpoint["id"],
        "status": "failed",
        "attempts": 4,
    }


def test_deliveries_list_filters_by_endpoint(app, cli, post_event):
    first = add(cli, "https://a.example.com/hook")
    add(cli, "https://b.example.com/hook")
    post_event()
    rows = json.loads(
        invoke(cli, "deliveries", "list", "--json", "--endpoint", str(first["id"])).output
    )
    assert [r["endpoint_id"] for r in rows] == [first["id"]]


def test_retry_of_a_missing_delivery_fails(app, cli):
    result = invoke(cli, "deliveries", "retry", "12345")
    assert result.exit_code == 1 and "no delivery with id 12345" in result.stderr


def test_catalog_seed_is_idempotent(app, cli):
    result = invoke(cli, "catalog", "seed", "--json")
    assert json.loads(result.output) == {"categories": 0, "event_types": 0}


def test_catalog_list_json_includes_the_test_event(app, cli):
    data = json.loads(invoke(cli, "catalog", "list", "--json").output)
    names = {t["name"] for c in data for t in c["event_types"]}
    assert {"webhook.test", "transaction.approved", "terminal.attestation_failed"} <= names


def test_users_create_hashes_the_password_with_scrypt(app, cli):
    result = invoke(
        cli,
        "users",
        "create",
        "Ops@Example.com",
        "--role",
        "admin",
        "--password",
        "correct horse battery",
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "ops@example.com"))
    assert user.role == "admin"
    assert user.password_hash.startswith("scrypt:")


def test_users_create_rejects_a_short_password(app, cli):
    result = invoke(cli, "users", "create", "a@example.com", "--password", "short")
    assert result.exit_code == 1 and "at least 12 characters" in result.stderr


def test_events_emit_fails_clearly_when_the_app_is_not_running(app, cli):
    result = invoke(cli, "events", "emit", "webhook.test", "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1 and "could not reach http://127.0.0.1:9" in result.stderr


def test_events_emit_posts_to_the_app_url_of_the_environment(app, cli, monkeypatch):
    """var/dev.env sets WEBHOOK_APP_URL to make run's port (PORT=5077 make run, say)."""
    monkeypatch.setenv("WEBHOOK_APP_URL", "http://127.0.0.1:9")
    result = invoke(cli, "events", "emit", "webhook.test")
    assert result.exit_code == 1 and "could not reach http://127.0.0.1:9" in result.stderr


def test_events_emit_rejects_bad_json_data(app, cli):
    result = invoke(cli, "events", "emit", "webhook.test", "--data", "{oops")
    assert result.exit_code == 1 and "--data is not valid JSON" in result.stderr


def test_events_emit_posts_a_signed_event_to_the_running_app(app, cli, live_server):
    endpoint = add(cli, "https://a.example.com/hook")
    result = invoke(
        cli,
        "events",
        "emit",
        "transaction.approved",
        "--data",
        json.dumps(valid_data(amount=5)),
        "--url",
        live_server,
        "--id",
        "evt_emitted",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"id": "evt_emitted", "deliveries": 1}
    db.session.rollback()
    from webhook_admin.models import Delivery, Event

    assert db.session.get(Event, "evt_emitted").data == valid_data(amount=5)
    assert db.session.scalar(select(Delivery.endpoint_id)) == endpoint["id"]


def test_catalog_deadline_shows_sets_and_clears(app, cli):
    shown = json.loads(invoke(cli, "catalog", "deadline", "transaction.approved", "--json").output)
    assert shown == {"event_type": "transaction.approved", "expires_after_seconds": 3600}
    invoke(cli, "catalog", "deadline", "refund.created", "900")
    assert "refund.created: 900 s" in invoke(cli, "catalog", "deadline", "refund.created").output
    invoke(cli, "catalog", "deadline", "refund.created", "none")
    assert "no deadline" in invoke(cli, "catalog", "deadline", "refund.created").output
    bad = cli.invoke(args=["catalog", "deadline", "refund.created", "10"])
    assert bad.exit_code != 0 and "60 to 2592000" in bad.output
    assert cli.invoke(args=["catalog", "deadline", "no.such", "600"]).exit_code != 0
