"""In Chromium: the event page's explain table, the endpoint page's "Explain an event" box
(htmx, no reload), and an expired delivery's badge, filter and confirmed manual retry."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from tests.browser.conftest import shoot
from tests.browser.test_operator_ux import serious_violations
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, Delivery, DeliveryStatus
from webhook_admin.services.endpoints import EndpointInput, create_endpoint, disable_endpoint


def add(url: str, **kwargs):
    endpoint, _ = create_endpoint(EndpointInput(url, **kwargs), "test")
    db.session.commit()
    return endpoint


def test_explain_on_the_event_page_and_the_endpoint_box(page, post_event):
    erp = add("http://127.0.0.1:9/erp", event_types=["transaction.approved"])
    refunds = add("http://127.0.0.1:9/refunds", event_types=["refund.created"])
    paused = add("http://127.0.0.1:9/paused", event_types=["transaction.approved"])
    disable_endpoint(paused, "ops@example.com", "maintenance")
    db.session.commit()
    assert post_event(event_id="evt_browser_why").status_code == 202

    page.goto(page.base + "/events/evt_browser_why")
    table = page.locator("#explain table")
    expect(
        table.locator(f'tr[data-endpoint="{erp.id}"]').get_by_role("link", name="Delivery")
    ).to_be_visible()
    expect(table.locator(f'tr[data-endpoint="{refunds.id}"]')).to_contain_text("Not subscribed")
    expect(table.locator(f'tr[data-endpoint="{paused.id}"]')).to_contain_text("by ops@example.com")
    assert serious_violations(page) == []
    shoot(page, "event-explain")

    page.goto(page.base + f"/webhooks/{refunds.id}")
    box = page.locator("#explain-panel")
    box.get_by_label("Event id").fill("evt_browser_why")
    box.get_by_role("button", name="Explain").click()
    expect(box.locator("#explain-result")).to_contain_text("not subscribed to transaction.approved")
    assert page.url.endswith(f"/webhooks/{refunds.id}")  # htmx: no navigation
    box.get_by_label("Event id").fill("evt_nobody_sent")
    box.get_by_role("button", name="Explain").click()
    expect(box.locator("#explain-result")).to_contain_text("No event with id")
    assert serious_violations(page) == []


def test_an_expired_delivery_is_badged_filtered_and_retried_after_a_confirm(page, post_event):
    add("http://127.0.0.1:9/late", event_types=["transaction.approved"])
    post_event(event_id="evt_browser_expired")
    post_event(event_id="evt_browser_failed")
    expired, failed = db.session.scalars(select(Delivery).order_by(Delivery.id))
    expired.status, failed.status = DeliveryStatus.EXPIRED, DeliveryStatus.FAILED
    db.session.commit()

    page.goto(page.base + "/deliveries")
    page.locator("#f-status").select_option("expired")  # htmx swaps the results
    row = page.locator(f"#delivery-{expired.id}")
    expect(row.locator(".badge-expired")).to_have_text("Expired")
    expect(page.locator(f"#delivery-{failed.id}")).to_have_count(0)
    assert serious_violations(page) == []
    shoot(page, "expired-delivery")

    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    row.get_by_role("button", name="Retry").click()
    expect(page.locator(f"#delivery-{expired.id} .badge")).not_to_have_text("Expired")
    assert "past its event type's deadline" in messages[0]
    db.session.expire_all()
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "delivery.retry"))
    assert entry.after["was_expired"] is True
