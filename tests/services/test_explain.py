"""Explain and fan-out agree: for generated endpoints and events, explain says "would
deliver" exactly when ingest's fan-out creates a delivery (on SQLite and on PostgreSQL,
whichever TEST_DATABASE_URL names); and each reason an operator reads, by example."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from tests.conftest import valid_data
from webhook_admin import clock
from webhook_admin.extensions import db
from webhook_admin.models import Category, Delivery, Endpoint, Event, EventType
from webhook_admin.services import explain as ex
from webhook_admin.services import fanout
from webhook_admin.services.endpoints import (
    EndpointInput,
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
)
from webhook_admin.services.ingest import IngestError, ingest_event

TYPES = ["transaction.approved", "transaction.declined", "refund.created", "transaction.old"]
MERCHANTS = [None, "m-1", "m-2"]

endpoint_configs = st.fixed_dictionaries(
    {
        "by_category": st.booleans(),
        "types": st.lists(st.sampled_from(TYPES[:3]), min_size=1, max_size=3, unique=True),
        "merchant": st.sampled_from(MERCHANTS),
        "state": st.sampled_from(["live", "live", "disabled", "deleted"]),
    }
)


def data_for(event_type: str) -> dict:
    """Data valid under the seeded type's schema; {} for a type made by the test (no schema)."""
    try:
        return valid_data(event_type)
    except LookupError:
        return {}


@pytest.fixture
def archived_type(app):
    category = db.session.scalar(select(Category).where(Category.name == "Transactions"))
    db.session.add(EventType(name="transaction.old", category=category, archived=True))
    db.session.commit()


def make_endpoint(config: dict) -> Endpoint:
    if config["by_category"]:
        data = EndpointInput(
            "http://127.0.0.1:9/c", category="Transactions", all_category_events=True
        )
    else:
        data = EndpointInput("http://127.0.0.1:9/t", list(config["types"]))
    data.merchant_id = config["merchant"]
    endpoint, _ = create_endpoint(data, "test")
    if config["state"] == "disabled":
        disable_endpoint(endpoint, "ops@example.com", "maintenance")
    elif config["state"] == "deleted":
        delete_endpoint(endpoint, "ops@example.com")
    return endpoint


def reset_rows() -> None:
    for model in (Delivery, Event):
        db.session.execute(delete(model))
    db.session.execute(delete(fanout.endpoint_event_types))
    db.session.execute(delete(Endpoint))
    db.session.commit()


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    configs=st.lists(endpoint_configs, min_size=1, max_size=5),
    late=st.one_of(st.none(), endpoint_configs),
    event_type=st.sampled_from(TYPES),
    merchant=st.sampled_from(MERCHANTS),
)
def test_explain_would_deliver_exactly_when_fanout_creates_a_delivery(
    app, archived_type, configs, late, event_type, merchant
):
    reset_rows()
    for config in configs:
        make_endpoint(config)
    db.session.commit()
    # Asked before the event exists (the hypothetical answer)...
    before = {
        a.endpoint_id: a.would_deliver for a in ex.explain(ex.EventFacts(event_type, merchant))
    }
    body = json.dumps(
        {"type": event_type, "data": data_for(event_type), "merchant_id": merchant}
    ).encode()
    event_id = f"evt_{uuid.uuid4().hex}"
    try:
        ingest_event(event_id, body)
    except IngestError:
        assert event_type == "transaction.old"  # archived: refused, nobody gets it
        assert not any(before.values())
        return
    db.session.commit()
    delivered_to = set(
        db.session.scalars(select(Delivery.endpoint_id).where(Delivery.event_id == event_id))
    )
    assert {i for i, would in before.items() if would} == delivered_to
    if late is not None:  # created after the event: no delivery, and explain says why
        clock.advance(2)
        late_endpoint = make_endpoint(late | {"state": "live"})
        db.session.commit()
    # ...and after, about the stored event: the same answer, with the delivery's outcome.
    answers = ex.explain_event(db.session.get(Event, event_id))
    assert {a.endpoint_id for a in answers if a.would_deliver} == delivered_to
    for answer in answers:
        assert (answer.delivery_id is not None) == (answer.endpoint_id in delivered_to)
        assert answer.would_deliver == (not answer.reasons)
    if late is not None:
        late_answer = next(a for a in answers if a.endpoint_id == late_endpoint.id)
        assert fanout.CREATED_AFTER_EVENT in late_answer.reasons


def test_each_reason_is_named_in_words(app, post_event, archived_type):
    def add(**kwargs):
        endpoint, _ = create_endpoint(EndpointInput("http://127.0.0.1:9/x", **kwargs), "test")
        db.session.commit()
        return endpoint

    subscribed = add(event_types=["transaction.approved"])
    other_type = add(event_types=["refund.created"])
    other_merchant = add(event_types=["transaction.approved"], merchant_id="m-2")
    disabled = add(event_types=["transaction.approved"])
    deleted = add(event_types=["transaction.approved"])
    disable_endpoint(disabled, "ops@example.com", "maintenance")
    delete_endpoint(deleted, "ops@example.com")
    db.session.commit()
    response = post_event(merchant_id="m-1", event_id="evt_explain_1")
    assert response.status_code == 202
    clock.advance(5)
    late = add(category="Transactions", all_category_events=True)
    answers = {a.endpoint_id: a for a in ex.explain_event(db.session.get(Event, "evt_explain_1"))}

    assert answers[subscribed.id].outcome == ex.PENDING
    assert answers[subscribed.id].delivery_id is not None
    assert answers[other_type.id].outcome == fanout.NOT_SUBSCRIBED
    assert "not subscribed to transaction.approved" in answers[other_type.id].detail
    assert answers[other_merchant.id].outcome == fanout.MERCHANT_MISMATCH
    assert "'m-2' does not match the event's 'm-1'" in answers[other_merchant.id].detail
    assert answers[disabled.id].outcome == fanout.DISABLED
    assert "by ops@example.com" in answers[disabled.id].detail
    assert answers[deleted.id].outcome == fanout.DELETED
    assert answers[late.id].outcome == fanout.CREATED_AFTER_EVENT
    assert "subscribed to the category but created" in answers[late.id].detail

    # The delivery is history: it stays the answer once the endpoint is disabled after it.
    disable_endpoint(subscribed, "ops@example.com")
    answer = ex.explain_for_endpoint(db.session.get(Event, "evt_explain_1"), subscribed.id)
    assert answer.outcome == ex.PENDING and answer.reasons == [fanout.DISABLED]

    # A type archived since the event: named for every endpoint without a delivery.
    archived = ex.explain(ex.EventFacts("transaction.old", None))
    assert {a.outcome for a in archived} == {ex.TYPE_ARCHIVED}
    assert ex.explain(ex.EventFacts("no.such", None))[0].outcome == ex.UNKNOWN_TYPE
