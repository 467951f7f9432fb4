"""Card and personal data in a real browser: masked on the event page, revealed by an admin
(audited, never cached, gone again after Hide and after going back), never for a viewer."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import shoot
from tests.conftest import valid_data
from webhook_admin.extensions import db
from webhook_admin.services.users import create_user

PAN, NAME = "4111 1111 1111 1111", "Jane Q. Cardholder"
DATA = valid_data(card={"brand": "visa", "last4": "1111", "number": PAN, "cardholder_name": NAME})


def test_event_page_masks_and_an_admin_reveals_audited(page, post_event):
    assert post_event(data=DATA, event_id="evt_browser_pii").status_code == 202
    page.goto(page.base + "/events/evt_browser_pii")
    payload = page.locator("#payload-panel")
    expect(payload).to_contain_text("411111••••••1111")
    expect(payload).not_to_contain_text(PAN)
    expect(payload).not_to_contain_text(NAME)
    with page.expect_response("**/events/evt_browser_pii/reveal") as answer:
        page.get_by_role("button", name="Reveal card and personal data").click()
    assert answer.value.headers["cache-control"] == "no-store"
    expect(payload).to_contain_text(PAN)
    expect(payload).to_contain_text(NAME)
    shoot(page, "event-reveal")
    page.get_by_role("button", name="Hide").click()
    expect(payload).not_to_contain_text(NAME)

    page.get_by_role("button", name="Reveal card and personal data").click()
    expect(payload).to_contain_text(NAME)
    page.goto(page.base + "/audit")
    expect(page.locator("body")).to_contain_text("event.sensitive_reveal")
    page.go_back()
    expect(page.locator("#payload-panel")).to_contain_text("411111••••••1111")
    assert NAME not in page.content() and PAN not in page.content()


def test_a_viewer_sees_masked_values_and_no_reveal(browser, live_server, app, post_event):
    create_user("viewer@acme.example", "viewer", "correct horse battery staple", "test")
    db.session.commit()
    assert post_event(data=DATA, event_id="evt_browser_viewer").status_code == 202
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.goto(live_server + "/login")
    tab.get_by_label("Email").fill("viewer@acme.example")
    tab.get_by_label("Password").fill("correct horse battery staple")
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url("**/webhooks")
    tab.goto(live_server + "/events/evt_browser_viewer")
    expect(tab.locator("#payload-panel")).to_contain_text("411111••••••1111")
    expect(tab.get_by_role("button", name="Reveal card and personal data")).to_have_count(0)
    assert NAME not in tab.content()
    context.close()
