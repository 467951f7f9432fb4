"""The operator's day in a real browser: add, disable, enable, test, fail, retry, delete."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import shoot


def add_webhook(page, url: str) -> None:
    page.get_by_role("button", name="Add webhook").click()
    form = page.locator("#add-panel form")
    form.get_by_label("Webhook URL").fill(url)
    form.get_by_label("Description").fill("ERP integration")
    form.get_by_label("Category").select_option("Transactions")
    form.get_by_label("All Transactions events").check()
    form.get_by_role("button", name="Create webhook").click()


def test_add_with_validation_error_then_disable_enable_and_delete(page, scripted_receiver):
    add_webhook(page, "ftp://not-a-webhook")
    expect(page.locator("#url-error")).to_be_visible()
    expect(page.get_by_role("group", name="Events")).to_be_visible()
    shoot(page, "add-webhook-error")

    page.locator("#add-panel form").get_by_label("Webhook URL").fill(scripted_receiver.url)
    page.get_by_role("button", name="Create webhook").click()
    expect(page.get_by_text("Signing secret")).to_be_visible()
    expect(page.locator(".secret-once code[id^=new-secret]")).to_have_text(re.compile(r"^whsec_"))
    row = page.locator("#endpoint-rows tr", has_text=scripted_receiver.url)
    expect(row).to_have_count(1)
    shoot(page, "webhooks")

    row.get_by_role("button", name="Disable").click()
    confirm = page.locator("#endpoint-rows tr.editing")
    expect(confirm.get_by_text("New events will not be queued")).to_be_visible()
    confirm.get_by_label("Reason (optional)").fill("receiver maintenance")
    confirm.get_by_role("button", name="Disable webhook").click()
    expect(row.get_by_text("Disabled", exact=True)).to_be_visible()
    expect(row.get_by_text("receiver maintenance")).to_be_visible()
    row.get_by_role("button", name="Enable").click()
    expect(row.get_by_text("Healthy", exact=True)).to_be_visible()
    expect(row.get_by_role("link", name="Retry what failed while it was down")).to_be_visible()

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    page.reload()
    expect(page.get_by_text(scripted_receiver.url)).to_have_count(0)


def test_test_event_appears_live_then_failure_is_retried(page, worker, scripted_receiver):
    add_webhook(page, scripted_receiver.url)
    row = page.locator("#endpoint-rows tr", has_text=scripted_receiver.url)
    row.get_by_role("button", name="Send test event").click()
    notice = page.locator("#notice")
    expect(notice.get_by_text("Succeeded")).to_be_visible(timeout=20_000)  # no reload
    assert scripted_receiver.requests[0].headers["webhook-id"].startswith("evt_test_")

    scripted_receiver.reply.status = 500
    row.get_by_role("button", name="Send test event").click()
    expect(notice.get_by_text("Failed")).to_be_visible(timeout=20_000)
    notice.get_by_role("link", name="View attempts").click()
    expect(page.locator(".attempt")).to_have_count(4)  # first try and 3 automatic retries
    expect(page.get_by_text("<h1>boom</h1>").first).to_be_attached()

    scripted_receiver.reply.status = 200
    page.get_by_role("button", name="Retry").click()
    timeline = page.locator("#timeline")
    expect(timeline.get_by_text("Succeeded").first).to_be_visible(timeout=20_000)
    expect(timeline.locator(".attempt").first.get_by_text("manual")).to_be_visible()
    shoot(page, "delivery-timeline")

    page.get_by_role("link", name="Deliveries", exact=True).click()
    expect(page.locator("#delivery-rows tr")).to_have_count(2)
    shoot(page, "deliveries")
    page.get_by_role("link", name="Webhooks", exact=True).click()
    page.get_by_role("link", name="ERP integration").click()  # the URL is under it
    expect(page.locator("svg.chart")).to_be_visible()
    shoot(page, "endpoint")
    for name, title in (("Events", "Events"), ("Catalog", "Event catalog"), ("Audit", "Audit log")):
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
        shoot(page, name.lower())
