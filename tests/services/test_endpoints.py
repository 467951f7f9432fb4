"""Endpoint rules: validation messages name the field; archived types; custom headers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from webhook_admin.extensions import db
from webhook_admin.models import EventType
from webhook_admin.services.endpoints import (
    EndpointInput,
    ValidationError,
    create_endpoint,
    update_endpoint,
)


def archive(name: str) -> None:
    db.session.scalar(select(EventType).where(EventType.name == name)).archived = True


def errors_for(data: EndpointInput) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        create_endpoint(data, "test")
    return caught.value.errors


def test_an_endpoint_keeps_an_archived_event_type_on_edit(app):
    endpoint, _ = create_endpoint(EndpointInput("https://a.example.com/h", ["refund.failed"]), "t")
    archive("refund.failed")
    update_endpoint(endpoint, EndpointInput("https://b.example.com/h", ["refund.failed"]), "t")
    assert endpoint.url == "https://b.example.com/h"


def test_an_archived_event_type_cannot_be_added(app):
    archive("refund.created")
    errors = errors_for(EndpointInput("https://a.example.com/h", ["refund.created"]))
    assert errors == {"event_types": "archived event type(s): refund.created"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"webhook-signature": "x"}, "set by the sender"),
        ({"Content-Type": "text/plain"}, "set by the sender"),
        ({"bad header": "x"}, "not a valid header name"),
        ({"X-Ok": "a\r\nInjected: 1"}, "one line"),
    ],
)
def test_custom_headers_may_not_override_ours_or_inject_lines(app, headers, message):
    data = EndpointInput(
        "https://a.example.com/h", ["transaction.approved"], custom_headers=headers
    )
    assert message in errors_for(data)["custom_headers"]


def test_all_problems_are_reported_at_once(app):
    errors = errors_for(EndpointInput("ftp://x", [], category="Nope", timeout_seconds=500))
    assert set(errors) == {"url", "category", "event_types", "timeout_seconds"}


def test_all_category_events_needs_a_category(app):
    errors = errors_for(EndpointInput("https://a.example.com/h", [], all_category_events=True))
    assert errors["category"] == "choose a category to subscribe to all of its events"
