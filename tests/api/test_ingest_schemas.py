"""Ingest enforces each event type's JSON Schema (Draft 2020-12) on `data`: every violation
(up to 20) with its path and reason, a 400, and nothing stored."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.conftest import signed_headers, valid_data
from webhook_admin.extensions import db
from webhook_admin.models import Delivery, Event, EventType
from webhook_admin.services import event_schemas
from webhook_admin.services.catalog import load_catalog_file
from webhook_admin.services.catalog_admin import add_event_type, update_event_type
from webhook_admin.services.endpoints import EndpointInput, create_endpoint

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SEEDED = [t for c in load_catalog_file()["categories"] for t in c["event_types"]]


def stored() -> tuple[int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Event)),
        db.session.scalar(select(func.count()).select_from(Delivery)),
    )


def subscribe_everything():
    create_endpoint(EndpointInput("http://127.0.0.1:9/hook", [t["name"] for t in SEEDED]), "t")
    db.session.commit()


@pytest.mark.parametrize("item", SEEDED, ids=[t["name"] for t in SEEDED])
def test_every_seeded_example_validates_against_its_own_schema(item):
    assert event_schemas.schema_problems(item["schema"]) == []
    assert event_schemas.example_violations(item["schema"], item["example"]) == []
    assert item["trigger_condition"].strip(), "every seeded type says when it fires"


def test_valid_data_of_several_types_is_accepted_and_fanned_out(app, post_event):
    subscribe_everything()
    for name in ("transaction.approved", "refund.created", "terminal.activated", "payout.paid"):
        response = post_event(name, valid_data(name), event_id=f"evt_ok_{name}")
        assert response.status_code == 202, response.get_json()
        assert response.get_json()["deliveries"] == 1
    assert stored() == (4, 4)


@pytest.mark.parametrize(
    ("event_type", "data", "violations"),
    [
        (
            "transaction.approved",
            valid_data(amount=-5),
            [("data.amount", "-5 is less than the minimum of 0")],
        ),
        (
            "transaction.approved",
            valid_data(currency="eur", card={"brand": "visa", "last4": "42"}),
            [
                ("data.card.last4", "'42' does not match '^[0-9]{4}$'"),
                ("data.currency", "'eur' does not match '^[A-Z]{3}$'"),
            ],
        ),
        (
            "refund.created",
            {
                k: v
                for k, v in valid_data("refund.created", amount="5.00").items()
                if k != "transaction_id"
            },
            [
                ("data", "'transaction_id' is a required property"),
                ("data.amount", "'5.00' is not of type 'integer'"),
            ],
        ),
        (
            "terminal.deactivated",
            valid_data("terminal.deactivated", reason="dropped"),
            [
                (
                    "data.reason",
                    "'dropped' is not one of "
                    "['merchant_request', 'support', 'lost_or_stolen', 'inactivity']",
                )
            ],
        ),
        (
            "merchant.updated",
            valid_data("merchant.updated", changed=["address", 7]),
            [
                ("data.changed[1]", "7 is not of type 'string'"),
                (
                    "data.changed[1]",
                    "7 is not one of ['legal_name', 'address', 'bank_account', 'mcc', 'contact']",
                ),
            ],
        ),
    ],
    ids=["minimum", "two-patterns", "required-and-type", "enum", "array-item"],
)
def test_invalid_data_is_refused_with_every_violation_and_its_path(
    app, post_event, event_type, data, violations
):
    subscribe_everything()
    response = post_event(event_type, data, event_id="evt_bad")
    assert response.status_code == 400
    body = response.get_json()
    assert [(v["path"], v["reason"]) for v in body["violations"]] == violations
    for path, reason in violations:
        assert f"{path}: {reason}" in body["error"]
    assert f"does not match the schema of '{event_type}'" in body["error"]
    assert stored() == (0, 0)


def test_at_most_20_violations_are_listed_and_the_answer_says_there_were_more(app, post_event):
    data = valid_data("merchant.updated", changed=list(range(30)), updated_at=5)
    response = post_event("merchant.updated", data)
    assert response.status_code == 400
    body = response.get_json()
    assert len(body["violations"]) == 20
    assert "20+ violations, the first 20 shown" in body["error"]
    assert stored() == (0, 0)


def test_sensitive_and_long_values_are_not_echoed_in_violations(app, post_event):
    data = valid_data(
        card={"brand": "visa", "last4": "4242", "expiry": 1229},
        customer={"email": ["jane@example.com"]},
        reference="r" * 200,
    )
    body = post_event(data=data).get_json()
    reasons = {v["path"]: v["reason"] for v in body["violations"]}
    assert reasons == {
        "data.card.expiry": "the value (not shown: marked pan) is not of type 'string'",
        "data.customer.email": "the value (not shown: marked pii) is not of type 'string'",
        "data.reference": "the string (200 characters) is too long",
    }
    assert "1229" not in body["error"] and "jane@" not in body["error"]


def test_a_type_without_a_schema_accepts_any_object(app, post_event):
    add_event_type("loyalty.points_earned", "Merchants", "Points.", {}, "t")
    db.session.commit()
    assert (
        db.session.scalar(
            select(EventType.json_schema).where(EventType.name == "loyalty.points_earned")
        )
        is None
    )
    response = post_event("loyalty.points_earned", {"anything": [1, {"x": None}]})
    assert response.status_code == 202, response.get_json()


def test_an_edited_schema_applies_to_the_next_event_without_a_restart(app, post_event):
    approved = db.session.scalar(select(EventType).where(EventType.name == "transaction.approved"))
    assert post_event(data=valid_data(amount=10)).status_code == 202
    schema = json.loads(json.dumps(approved.json_schema))
    schema["properties"]["amount"]["minimum"] = 100
    update_event_type(
        approved,
        approved.category.name,
        approved.description,
        approved.example_payload,
        False,
        "t",
        json_schema=schema,
    )
    db.session.commit()
    refused = post_event(data=valid_data(amount=10))
    assert refused.status_code == 400
    assert refused.get_json()["violations"] == [
        {"path": "data.amount", "reason": "10 is less than the minimum of 100"}
    ]


def test_a_replayed_webhook_id_keeps_its_first_answer_after_its_data_became_invalid(
    app, post_event
):
    """The idempotency rule outranks the schema: the same id and body get the same answer."""
    first = post_event(data=valid_data(), event_id="evt_same")
    approved = db.session.scalar(select(EventType).where(EventType.name == "transaction.approved"))
    schema = json.loads(json.dumps(approved.json_schema))
    schema["required"].append("loyalty_id")
    approved.json_schema = schema
    db.session.commit()
    again = post_event(data=valid_data(), event_id="evt_same")
    assert (first.status_code, again.status_code) == (202, 200)


def test_the_ingest_answer_for_a_schema_violation_is_json_with_a_list(app, client):
    body = json.dumps({"type": "transaction.approved", "data": {}}).encode()
    response = client.post("/api/v1/events", data=body, headers=signed_headers(body))
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert {v["path"] for v in response.get_json()["violations"]} == {"data"}


# --- properties -----------------------------------------------------------------------

# Integers below 13 digits: longer ones meet the 64-bit limit or the PAN guard first.
SMALL_INTEGERS = st.integers(-(10**12), 10**12)
# Text json_limits accepts (no NUL, no lone surrogates): its own refusals come first.
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8)
NOT_AN_INTEGER = st.one_of(
    TEXT,
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)),
    st.booleans(),
    st.none(),
    st.lists(SMALL_INTEGERS, max_size=2),
)
NEGATIVE = st.integers(max_value=-1, min_value=-(10**12))
NOT_A_CURRENCY = TEXT.filter(
    lambda t: not (len(t) == 3 and t.isascii() and t.isupper() and t.isalpha())
)


@PROPERTY
@given(
    field=st.sampled_from(["amount", "currency", "transaction_id"]),
    data=st.data(),
    event_type=st.sampled_from(["transaction.approved", "refund.created", "transaction.voided"]),
)
def test_generated_invalid_values_are_always_refused_with_their_path(
    app, post_event, field, data, event_type
):
    bad = {
        "amount": st.one_of(NOT_AN_INTEGER, NEGATIVE),
        "currency": st.one_of(NOT_A_CURRENCY, SMALL_INTEGERS),
        "transaction_id": st.one_of(TEXT, SMALL_INTEGERS),
    }[field]
    value = data.draw(bad.filter(lambda v: field != "transaction_id" or not _txn_like(v)))
    response = post_event(event_type, valid_data(event_type, **{field: value}))
    assert response.status_code == 400, value
    assert f"data.{field}" in {v["path"] for v in response.get_json()["violations"]}
    assert stored() == (0, 0)


def _txn_like(value) -> bool:
    rest = value[4:] if isinstance(value, str) and value.startswith("txn_") else ""
    return (
        0 < len(rest) <= 40
        and rest.isascii()
        and rest.replace("_", "a").replace("-", "a").isalnum()
    )


@PROPERTY
@given(
    item=st.sampled_from(SEEDED), amount=st.integers(0, 10**9), last4=st.from_regex(r"\A[0-9]{4}\Z")
)
def test_valid_examples_are_always_accepted(app, post_event, item, amount, last4):
    data = dict(item["example"])
    if "amount" in data:
        data["amount"] = amount
    if "card" in data:
        data["card"] = {**data["card"], "last4": last4}
    response = post_event(item["name"], data)
    assert response.status_code == 202, response.get_json()
