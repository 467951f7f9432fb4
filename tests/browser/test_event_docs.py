"""The event catalog docs in Chromium: reached from the catalog page, one section per type
with its field table and the request a receiver gets; a catalog edit with an invalid schema
is refused on the page, which lists the endpoints that receive the type."""

from __future__ import annotations

import json

from tests.browser.conftest import SCREENSHOTS, shoot
from webhook_admin.extensions import db
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


def shoot_element(locator, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_the_docs_are_reached_from_the_catalog_and_show_fields_and_the_request(page):
    page.goto(page.base + "/catalog")
    page.get_by_role("link", name="Documentation for receivers").click()
    page.wait_for_url("**/docs/events")
    assert page.get_by_role("heading", name="Event catalog: documentation").is_visible()
    for category in ("Transactions", "Refunds", "Terminals", "Settlements", "Merchants"):
        assert page.get_by_role("heading", name=category, exact=True).is_visible()
    page.get_by_role("navigation", name="Event types").get_by_role(
        "link", name="refund.created", exact=True
    ).click()
    page.wait_for_url("**/docs/events#event-refund-created")
    refund = page.locator("#event-refund-created")
    assert refund.is_visible()
    box = refund.bounding_box()
    assert box is not None and -5 <= box["y"] < 200, "the link scrolls to the type's section"
    table = refund.locator("table.field-table")
    row = table.locator("tr", has=page.locator("td", has_text="transaction_id")).first
    assert row.locator("td").nth(2).inner_text() == "Required"
    envelope = json.loads(refund.locator("pre.receiver-envelope").inner_text())
    assert envelope["type"] == "refund.created" and envelope["data"]["transaction_id"]
    headers = refund.locator("pre.receiver-headers").inner_text()
    assert "webhook-signature: v1," in headers
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(page.base + "/docs/events#event-transaction-approved")
    shoot_element(page.locator("#event-transaction-approved"), "event-docs-type")
    page.goto(page.base + "/docs/events")
    page.screenshot(path=str(SCREENSHOTS / "event-docs.png"))


def test_an_invalid_schema_is_refused_on_the_edit_page_which_lists_subscribers(page, app):
    create_endpoint(
        EndpointInput("http://127.0.0.1:9/erp", ["payout.failed"], description="ERP"), "t"
    )
    db.session.commit()
    page.goto(page.base + "/catalog")
    row = page.locator("tr", has=page.locator("td", has_text="payout.failed"))
    row.get_by_role("link", name="Edit").click()
    page.wait_for_url("**/edit")
    subscribers = page.locator("#subscribers")
    assert "http://127.0.0.1:9/erp" in subscribers.inner_text()
    schema = page.get_by_label("JSON Schema of data (Draft 2020-12)")
    schema.fill('{"type": "object", "properties": {"amount": {"minimum": "0"}}}')
    page.get_by_role("button", name="Save event type").click()
    error = page.locator(".field-error", has_text="not a valid JSON Schema")
    error.wait_for()
    assert "schema.properties.amount.minimum: '0' is not of type 'number'" in error.inner_text()
    page.set_viewport_size({"width": 1280, "height": 900})
    shoot(page, "catalog-edit-schema")
