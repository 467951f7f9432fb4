"""`flask catalog docs` (the static export) and `flask catalog schema` (edits)."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator
from sqlalchemy import select

from tests.conftest import valid_data
from webhook_admin.extensions import db
from webhook_admin.models import EventType
from webhook_admin.services.catalog import load_catalog_file

SEEDED = [t for c in load_catalog_file()["categories"] for t in c["event_types"]]


def test_docs_export_writes_markdown_and_one_valid_schema_file_per_type(app, cli, tmp_path):
    result = cli.invoke(args=["catalog", "docs", "--out", str(tmp_path / "site"), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)["files"]
    assert len(written) == 1 + len(SEEDED)
    page = (tmp_path / "site" / "events.md").read_text()
    assert page.startswith("# SoftPOS webhook events")
    for item in SEEDED:
        assert f"### `{item['name']}`" in page
        assert item["trigger_condition"] in page
        schema = json.loads(
            (tmp_path / "site" / "schemas" / f"{item['name']}.schema.json").read_text()
        )
        Draft202012Validator.check_schema(schema)
        assert schema["title"] == item["name"]
        assert schema["properties"] == item["schema"]["properties"]
        assert not list(Draft202012Validator(schema).iter_errors(item["example"]))
    assert "| `card.last4` | string | yes | Last four digits of the card number." in page
    assert "webhook-signature: v1," in page
    assert '{"id":"evt_refund_created_example","type":"refund.created"' in page


def test_docs_export_as_html_renders_the_same_sections(app, cli, tmp_path):
    result = cli.invoke(args=["catalog", "docs", "--out", str(tmp_path), "--format", "html"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "events.html").read_text()
    assert page.startswith("<!doctype html>")
    for item in SEEDED:
        assert f'id="event-{item["name"].replace(".", "-")}"' in page
        assert f'href="schemas/{item["name"]}.schema.json"' in page
    assert 'class="table field-table"' in page and "/docs/events" not in page


def test_docs_export_says_when_a_type_has_no_schema(app, cli, tmp_path):
    db.session.scalar(select(EventType).where(EventType.name == "payout.failed")).json_schema = None
    db.session.commit()
    assert cli.invoke(args=["catalog", "docs", "--out", str(tmp_path)]).exit_code == 0
    page = (tmp_path / "events.md").read_text()
    assert "This type has no schema: `data` may be any JSON object." in page
    stub = json.loads((tmp_path / "schemas" / "payout.failed.schema.json").read_text())
    assert stub["type"] == "object" and "properties" not in stub


def test_catalog_schema_sets_a_schema_and_refuses_an_invalid_one(app, cli, tmp_path, post_event):
    good = tmp_path / "good.json"
    schema = {"type": "object", "required": ["check"], "properties": {"check": {"enum": ["a"]}}}
    good.write_text(json.dumps(schema))
    example = tmp_path / "example.json"
    example.write_text(json.dumps({"check": "a"}))
    result = cli.invoke(
        args=[
            "catalog",
            "schema",
            "terminal.attestation_failed",
            str(good),
            "--example",
            str(example),
        ]
    )
    assert result.exit_code == 0, result.output
    response = post_event("terminal.attestation_failed", {"check": "b"})
    assert response.get_json()["violations"] == [
        {"path": "data.check", "reason": "'b' is not one of ['a']"}
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "object", "properties": {"check": {"enum": "a"}}}))
    result = cli.invoke(args=["catalog", "schema", "terminal.attestation_failed", str(bad)])
    assert result.exit_code == 1
    assert "not a valid JSON Schema: schema.properties.check.enum: 'a' is not of type 'array'" in (
        result.output
    )
    db.session.expire_all()
    kept = db.session.scalar(
        select(EventType.json_schema).where(EventType.name == "terminal.attestation_failed")
    )
    assert kept == schema


def test_catalog_schema_refuses_a_schema_the_stored_example_does_not_match(app, cli, tmp_path):
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"type": "object", "required": ["never_in_the_example"]}))
    result = cli.invoke(args=["catalog", "schema", "payout.paid", str(strict)])
    assert result.exit_code == 1
    assert "example: 'never_in_the_example' is a required property" in result.output
    assert valid_data("payout.paid") == db.session.scalar(
        select(EventType.example_payload).where(EventType.name == "payout.paid")
    )


def test_catalog_schema_shows_and_removes(app, cli):
    shown = cli.invoke(args=["catalog", "schema", "payout.paid", "--json"])
    assert json.loads(shown.output)["json_schema"]["required"][0] == "payout_id"
    removed = cli.invoke(args=["catalog", "schema", "payout.paid", "--remove"])
    assert removed.exit_code == 0 and "no schema: any JSON object is accepted" in removed.output
    assert cli.invoke(args=["catalog", "schema", "no.such"]).exit_code == 1


def test_events_emit_without_data_sends_the_types_example(app, cli, live_server):
    cli.invoke(args=["endpoints", "add", "https://a.example.com/h", "--event", "payout.paid"])
    result = cli.invoke(
        args=["events", "emit", "payout.paid", "--url", live_server, "--id", "evt_ex", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"id": "evt_ex", "deliveries": 1}
    db.session.rollback()
    from webhook_admin.models import Event

    assert db.session.get(Event, "evt_ex").data == valid_data("payout.paid")
