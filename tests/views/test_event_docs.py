"""/docs/events for receivers' developers, and catalog edits that keep schemas and examples
honest (the UI form; the API and CLI are in tests/management and tests/test_cli.py)."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

from sqlalchemy import select
from standardwebhooks import Webhook

from tests.conftest import valid_data
from webhook_admin.extensions import db
from webhook_admin.models import EventType
from webhook_admin.services.catalog_admin import add_event_type
from webhook_admin.services.catalog_docs import EXAMPLE_SECRET
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


def event_type(name: str) -> EventType:
    return db.session.scalar(select(EventType).where(EventType.name == name))


def section(page: str, name: str) -> str:
    """The <article> of one event type."""
    anchor = "event-" + name.replace(".", "-")
    match = re.search(rf'<article class="card event-doc" id="{anchor}".*?</article>', page, re.S)
    assert match, f"no section for {name}"
    return match.group(0)


def rows(article: str) -> dict[str, list[str]]:
    """Field table rows: name -> [type, required, description, example] (text only)."""
    table = re.search(r'<table class="table field-table">.*?</table>', article, re.S).group(0)
    found = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]:
        cells = [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        found[cells[0]] = cells[1:]
    return found


def test_any_logged_in_role_reads_the_docs_and_anonymous_is_sent_to_login(app, viewer, client):
    assert viewer.get("/docs/events").status_code == 200
    assert client.get("/docs/events").status_code == 302


def test_each_type_shows_when_it_fires_and_a_field_table_from_its_schema(viewer):
    page = viewer.get("/docs/events").get_data(as_text=True)
    for category in ("Transactions", "Refunds", "Terminals", "Settlements", "Merchants"):
        assert f">{category}</h2>" in page
    approved = section(page, "transaction.approved")
    assert event_type("transaction.approved").trigger_condition in html.unescape(approved)
    table = rows(approved)
    assert table["amount"][:2] == ["integer", "Required"]
    assert "minor units" in table["amount"][2] and "At least 0." in table["amount"][2]
    assert table["amount"][3] == "2599"
    assert table["currency"][3] == '"EUR"' and "Pattern `^[A-Z]{3}$`." in table["currency"][2]
    assert table["card.brand"][:2] == ["string", "Required"]
    assert 'One of: "visa", "mastercard"' in table["card.brand"][2]
    assert table["card.last4"][3] == '"4242"'
    assert table["tip_amount"][1] == "Optional"
    assert "stored encrypted" in table["card.number"][2]
    refund = rows(section(page, "refund.created"))
    assert refund["transaction_id"][1] == "Required"
    assert "the payment they act on" in refund["transaction_id"][2]
    assert rows(section(page, "merchant.updated"))["changed"][0] == "array of string"


def test_the_receiver_example_is_a_request_the_standard_library_verifies(viewer):
    """The headers and envelope shown are what a receiver gets, signed with the published
    example secret: a developer can check their verification code against them."""
    article = section(viewer.get("/docs/events").get_data(as_text=True), "refund.failed")
    headers_text = re.search(r'<pre class="code receiver-headers"[^>]*>(.*?)</pre>', article, re.S)
    lines = html.unescape(headers_text.group(1)).strip().splitlines()
    assert lines[0] == "POST /your/webhook/path HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert set(headers) == {
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    envelope = json.loads(
        html.unescape(
            re.search(r'<pre class="code receiver-envelope"[^>]*>(.*?)</pre>', article, re.S).group(
                1
            )
        )
    )
    assert envelope["type"] == "refund.failed" and envelope["id"] == headers["webhook-id"]
    assert envelope["data"] == valid_data("refund.failed")
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    # The library's verify() refuses a timestamp over 5 minutes old (the example's is
    # fixed): sign the same id, time and bytes with it and compare.
    signed_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    expected = Webhook(EXAMPLE_SECRET).sign(headers["webhook-id"], signed_at, body.decode())
    assert headers["webhook-signature"] == expected
    assert EXAMPLE_SECRET in article


def test_a_type_without_a_schema_says_it_accepts_any_object(admin, viewer):
    add_event_type("loyalty.points_earned", "Merchants", "Points.", {"points": 3}, "t")
    db.session.commit()
    article = section(viewer.get("/docs/events").get_data(as_text=True), "loyalty.points_earned")
    assert "This type has no schema: <code>data</code> may be any JSON object" in article
    assert "Not documented yet." in article
    catalog = viewer.get("/catalog").get_data(as_text=True)
    assert "No schema: accepts any JSON object." in catalog
    assert catalog.count("No schema: accepts any JSON object.") == 1


def test_archived_and_deprecated_types_are_marked(viewer):
    declined = event_type("transaction.declined")
    declined.archived = True
    approved = event_type("transaction.approved")
    approved.json_schema = {**approved.json_schema, "deprecated": True}
    db.session.commit()
    page = viewer.get("/docs/events").get_data(as_text=True)
    assert "Archived: SoftPOS no longer sends this event type" in section(
        page, "transaction.declined"
    )
    assert "Deprecated" not in section(page, "transaction.declined")
    assert "Deprecated: still sent" in section(page, "transaction.approved")
    assert "Archived" not in section(page, "transaction.approved")


def test_the_catalog_page_links_every_type_to_its_docs(viewer):
    catalog = viewer.get("/catalog").get_data(as_text=True)
    assert 'href="/docs/events"' in catalog
    assert 'href="/docs/events#event-refund-created"' in catalog


# --- edits through the UI form ---------------------------------------------------------


def edit_form(name: str, **changes) -> dict:
    known = event_type(name)
    form = {
        "category": known.category.name,
        "description": known.description,
        "trigger_condition": known.trigger_condition,
        "example_payload": json.dumps(known.example_payload),
        "json_schema": json.dumps(known.json_schema),
    }
    return form | changes


def test_the_edit_form_refuses_a_schema_that_is_not_json_schema(admin):
    known = event_type("payout.paid")
    before = known.json_schema
    bad = {"type": "object", "properties": {"amount": {"type": "money"}}}
    response = admin.post(
        f"/catalog/event-types/{known.id}/edit",
        edit_form("payout.paid", json_schema=json.dumps(bad)),
    )
    assert response.status_code == 422
    text = html.unescape(response.get_data(as_text=True))
    assert "not a valid JSON Schema: schema.properties.amount.type:" in text
    db.session.expire_all()
    assert event_type("payout.paid").json_schema == before


def test_the_edit_form_refuses_an_example_that_does_not_match_the_schema(admin):
    known = event_type("payout.paid")
    example = json.dumps(valid_data("payout.paid", currency="euro"))
    response = admin.post(
        f"/catalog/event-types/{known.id}/edit", edit_form("payout.paid", example_payload=example)
    )
    assert response.status_code == 422
    text = html.unescape(response.get_data(as_text=True))
    assert "the example does not match the schema: example.currency: 'euro' does not match" in text
    db.session.expire_all()
    assert event_type("payout.paid").example_payload["currency"] == "EUR"


def test_the_edit_form_saves_a_new_schema_and_trigger_and_ingest_enforces_it(admin, post_event):
    known = event_type("payout.paid")
    schema = json.loads(json.dumps(known.json_schema))
    schema["required"].append("bank_reference")
    schema["properties"]["bank_reference"] = {"type": "string", "minLength": 4}
    example = valid_data("payout.paid", bank_reference="REF-991")
    response = admin.post(
        f"/catalog/event-types/{known.id}/edit",
        edit_form(
            "payout.paid",
            json_schema=json.dumps(schema),
            example_payload=json.dumps(example),
            trigger_condition="Fires when the bank confirms.",
        ),
    )
    assert response.status_code == 303
    db.session.expire_all()
    saved = event_type("payout.paid")
    assert saved.trigger_condition == "Fires when the bank confirms."
    refused = post_event("payout.paid", valid_data("payout.paid"))
    assert refused.status_code == 400
    assert refused.get_json()["violations"] == [
        {"path": "data", "reason": "'bank_reference' is a required property"}
    ]
    assert post_event("payout.paid", example).status_code == 202


def test_an_empty_schema_field_removes_the_schema(admin, post_event):
    known = event_type("payout.failed")
    response = admin.post(
        f"/catalog/event-types/{known.id}/edit",
        edit_form("payout.failed", json_schema="", example_payload='{"anything": 1}'),
    )
    assert response.status_code == 303
    assert post_event("payout.failed", {"anything": [1]}).status_code == 202


def test_the_edit_view_lists_the_endpoints_that_receive_the_type(admin):
    by_name, _ = create_endpoint(
        EndpointInput("http://127.0.0.1:9/a", ["refund.failed"], description="ERP"), "t"
    )
    whole, _ = create_endpoint(
        EndpointInput("http://127.0.0.1:9/b", [], "Refunds", all_category_events=True), "t"
    )
    create_endpoint(EndpointInput("http://127.0.0.1:9/c", ["refund.created"]), "t")
    db.session.commit()
    page = admin.get(f"/catalog/event-types/{event_type('refund.failed').id}/edit")
    text = page.get_data(as_text=True)
    listed = re.search(r'<section class="card" id="subscribers">.*?</section>', text, re.S).group(0)
    assert "http://127.0.0.1:9/a" in listed and "by name" in listed
    assert "http://127.0.0.1:9/b" in listed and "whole category Refunds" in listed
    assert "http://127.0.0.1:9/c" not in listed
    assert f"/webhooks/{by_name.id}" in listed and f"/webhooks/{whole.id}" in listed


def test_a_viewer_cannot_edit_the_catalog(viewer):
    known = event_type("payout.paid")
    response = viewer.post(f"/catalog/event-types/{known.id}/edit", edit_form("payout.paid"))
    assert response.status_code == 403


def test_field_constraints_read_as_words_with_the_right_plural():
    from webhook_admin.services.catalog_docs import _constraints

    assert _constraints({"minLength": 1, "maxLength": 200}) == [
        "At least 1 character.",
        "At most 200 characters.",
    ]
    assert _constraints({"minItems": 1, "minimum": 1}) == ["At least 1.", "At least 1 item."]


def test_the_published_example_is_the_body_the_worker_would_send_for_that_event(app):
    """The docs' example and the worker's body come from one encoder: the same event gives the
    same bytes, so a receiver's developer can test their parser against the page."""
    from webhook_admin.delivery.envelope import envelope_bytes
    from webhook_admin.models import Event
    from webhook_admin.services.catalog_docs import EXAMPLE_TIMESTAMP, receiver_example

    for name in ("transaction.approved", "terminal.activated"):
        kind = event_type(name)
        example = receiver_example(kind)
        event = Event(
            id=example.headers["webhook-id"],
            type=name,
            occurred_at=datetime.fromtimestamp(EXAMPLE_TIMESTAMP, UTC).replace(tzinfo=None),
            data=kind.example_payload,
        )
        assert envelope_bytes(event) == example.body.encode()
