"""Operator experience (#21) in a real browser: errors that show, health badges and order,
replay after a disable, the delivery filter bar at 1280 and 1920 px, and axe-core on every
page for admin and viewer (0 serious or critical violations)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, shoot
from webhook_admin.clock import utcnow
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, Event
from webhook_admin.services.endpoints import EndpointInput, create_endpoint
from webhook_admin.services.users import create_user

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
VIEWER_EMAIL = "viewer@acme.example"
LONG_URL = "http://127.0.0.1:9/" + "nobody-listens-" * 60 + "end"


def log_in(browser, base: str, email: str, width: int = 1280):
    """A logged-in tab that records CSP violations and page errors in `tab.problems`."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda m: "Content Security Policy" in m.text and tab.problems.append(m.text))
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    tab.set_default_timeout(15_000)
    tab.goto(base + "/login")
    tab.get_by_label("Email").fill(email)
    tab.get_by_label("Password").fill(ADMIN_PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url("**/webhooks")
    return tab


def endpoint(url: str, description: str = "", **health):
    created, _ = create_endpoint(
        EndpointInput(url, ["transaction.approved"], "Transactions", description=description), "t"
    )
    for name, value in health.items():
        setattr(created, name, value)
    db.session.commit()
    return created


def delivery(target, n: int, status: str, code: int | None, error: str | None = None):
    now = utcnow()
    event = Event(
        id=f"evt_seed_{n:03d}",
        type="transaction.approved",
        data={"amount": n},
        merchant_id=f"m-{n % 3}",
        occurred_at=now,
        body_sha256="0" * 64,
    )
    row = Delivery(
        event=event,
        endpoint_id=target.id,
        status=status,
        attempts_count=1,
        last_status_code=code,
        last_error_class=error,
        last_attempt_at=now,
    )
    db.session.add_all([event, row])
    db.session.flush()
    db.session.add(
        Attempt(
            delivery_id=row.id,
            endpoint_id=target.id,
            number=1,
            trigger="automatic",
            started_at=now - timedelta(minutes=n),
            duration_ms=40 + n,
            request_url=target.url,
            request_headers={"webhook-id": event.id},
            request_body='{"amount": 1}',
            response_status=code,
            response_headers={"content-type": "text/plain"},
            response_body="ok" if code == 200 else "boom",
            succeeded=code == 200,
        )
    )
    return row


@pytest.fixture
def seeded(app, admin_user):
    """Endpoints in every health state, deliveries of every kind, a viewer."""
    create_user(VIEWER_EMAIL, "viewer", ADMIN_PASSWORD, "test")
    now = utcnow()
    healthy = endpoint("http://127.0.0.1:9/erp", "ERP integration")
    failing = endpoint(
        "http://127.0.0.1:9/pos", "POS hooks", failing_since=now - timedelta(minutes=12)
    )
    endpoint(LONG_URL, enabled=False, disabled_reason="gone", disabled_by="system", disabled_at=now)
    endpoint(
        "http://127.0.0.1:9/ledger",
        "Ledger",
        enabled=False,
        disabled_reason="auto",
        disabled_by="system",
        disabled_note="every attempt failed for more than 120 hours",
        disabled_at=now,
    )
    for n in range(12):
        target = failing if n % 2 else healthy
        if n % 4 == 1:
            delivery(target, n, "failed", 500)
        elif n % 4 == 3:
            delivery(target, n, "retrying", None, "timeout")
        else:
            delivery(target, n, "succeeded", 200)
    db.session.commit()
    return {"healthy": healthy, "failing": failing}


def serious_violations(tab) -> list[str]:
    tab.evaluate(AXE)  # injected by the test through the DevTools protocol, not served
    result = tab.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).slice(0, 3).join(' | '))"
    )
    return result


def test_axe_finds_no_serious_violations_on_any_page_for_admin_and_viewer(
    browser, live_server, seeded
):
    healthy = seeded["healthy"]
    first = db.session.get(Delivery, 1)
    pages = [
        "/webhooks",
        f"/webhooks/{healthy.id}",
        f"/webhooks/{healthy.id}/replay",
        "/deliveries",
        f"/deliveries/{first.id}",
        "/events",
        f"/events/{first.event_id}",
        "/catalog",
        "/audit",
        "/system",
        "/account/mfa",
        "/account/password",
        "/account/tokens",
    ]
    admin_only = [
        "/webhooks/new",
        f"/webhooks/{healthy.id}/edit",
        f"/webhooks/{healthy.id}/disable",
        f"/webhooks/{healthy.id}/delete",
        f"/deliveries/bulk-retry?endpoint_id={healthy.id}",
        f"/webhooks/resend?event_id={first.event_id}",
        "/users",
    ]
    found: dict[str, list[str]] = {}
    for email, paths in ((ADMIN_EMAIL, pages + admin_only), (VIEWER_EMAIL, pages)):
        tab = log_in(browser, live_server, email)
        for path in paths:
            response = tab.goto(live_server + path)
            assert response.status == 200, (email, path, response.status)
            problems = serious_violations(tab)
            if problems:
                found[f"{email} {path}"] = problems
        assert not tab.problems, tab.problems
        tab.context.close()
    assert not found, "\n".join(f"{page}: {problems}" for page, problems in found.items())


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_delivery_filter_bar_is_an_aligned_grid_at_1280_and_1920(
    browser, live_server, seeded, width
):
    tab = log_in(browser, live_server, ADMIN_EMAIL, width)
    tab.goto(live_server + "/deliveries")
    bar = tab.locator("form.filter-grid")
    form = bar.bounding_box()
    assert form["x"] + form["width"] <= width  # no horizontal overflow
    cells = bar.locator(".filter:has(label)")
    tops = set()
    for i in range(cells.count()):
        label = cells.nth(i).locator("label").bounding_box()
        control = cells.nth(i).locator("select, input").bounding_box()
        # The label sits right above its own control, left edges aligned.
        assert abs(label["x"] - control["x"]) <= 1
        assert label["y"] + label["height"] <= control["y"] + 1
        assert control["y"] - (label["y"] + label["height"]) < 12
        # Fixed widths: the longest endpoint URL (about 900 characters) does not stretch it.
        assert control["width"] <= 2 * form["width"] / 5
        assert control["x"] + control["width"] <= form["x"] + form["width"] + 1
        tops.add(round(control["y"]))
    assert len(tops) <= (2 if width >= 1920 else 3)  # whole rows, not a ragged wrap
    endpoint_select = bar.get_by_label("Endpoint").bounding_box()
    assert endpoint_select["width"] < 600
    expect(tab.get_by_text(re.compile(r"^12 deliveries match"))).to_be_visible()
    bar.get_by_label("HTTP status").select_option("5xx")
    expect(tab.get_by_text("3 deliveries match.")).to_be_visible()
    expect(tab.locator("#delivery-rows tr")).to_have_count(3)
    shoot(tab, f"deliveries-filtered-{width}")
    tab.get_by_role("link", name="Clear filters").click()
    expect(tab.get_by_text("12 deliveries match.")).to_be_visible()
    tab.goto(live_server + "/webhooks")
    # The endpoint table fits the window: no horizontal scrolling at 1280 either.
    assert tab.evaluate("document.documentElement.scrollWidth") <= width
    shoot(tab, f"webhooks-{width}")
    tab.goto(live_server + f"/webhooks/{seeded['failing'].id}")
    shoot(tab, f"endpoint-{width}")
    assert not tab.problems, tab.problems
    tab.context.close()


def test_badges_name_each_state_and_failing_endpoints_come_first(browser, live_server, seeded):
    tab = log_in(browser, live_server, VIEWER_EMAIL)
    rows = tab.locator("#endpoint-rows tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0).get_by_text("Failing for 12 min")).to_be_visible()
    expect(rows.nth(3).get_by_text("Healthy", exact=True)).to_be_visible()
    second_two = rows.nth(1).inner_text() + rows.nth(2).inner_text()
    assert "Auto-disabled" in second_two and "Disabled: 410" in second_two
    banner = tab.get_by_role("status").filter(has_text="disabled by the system")
    expect(banner).to_contain_text("2 endpoints disabled by the system")
    expect(rows.nth(3).get_by_text(re.compile(r"\d+ % of \d+"))).to_be_visible()
    # A URL too long for its cell ends in an ellipsis, the whole URL in its tooltip.
    long_cell = tab.locator(f'[title="{LONG_URL}"]').first
    box = long_cell.bounding_box()
    assert box["width"] < 500 and long_cell.evaluate("e => e.scrollWidth > e.clientWidth")
    tab.context.close()


def test_a_refused_action_and_an_expired_session_both_show(browser, live_server, seeded):
    tab = log_in(browser, live_server, ADMIN_EMAIL)
    ledger = tab.locator("#endpoint-rows tr", has_text="Ledger")
    ledger.get_by_role("button", name="Send test event").click()
    alert = tab.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("409")
    expect(alert).to_contain_text("Enable the webhook before sending a test event")
    # Next to the action: just above the table the button is in, in view.
    table_top = tab.locator("table.table").first.bounding_box()["y"]
    box = alert.bounding_box()
    assert 0 <= table_top - (box["y"] + box["height"]) < 40
    alert.get_by_role("button", name="Dismiss").click()
    expect(alert).to_be_hidden()

    tab.context.clear_cookies()  # the session expired
    erp = tab.locator("#endpoint-rows tr", has_text="ERP integration")
    erp.get_by_role("button", name="Send test event").click()
    tab.wait_for_url(re.compile(r"/login\?next=/webhooks"))
    tab.get_by_label("Email").fill(ADMIN_EMAIL)
    tab.get_by_label("Password").fill(ADMIN_PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(re.compile(r"/webhooks$"))
    expect(tab.get_by_role("heading", name="Webhook Management")).to_be_visible()
    assert not tab.problems, tab.problems
    tab.context.close()


def test_events_missed_while_disabled_are_replayed_to_the_receiver(
    page, worker, scripted_receiver, post_event
):
    created = endpoint(scripted_receiver.url, "Warehouse")
    page.reload()
    row = page.locator("#endpoint-rows tr", has_text="Warehouse")
    row.get_by_role("button", name="Disable").click()
    page.get_by_label("Reason (optional)").fill("receiver moving")
    page.get_by_role("button", name="Disable webhook").click()
    expect(row.get_by_text("Disabled", exact=True)).to_be_visible()
    for n in range(3):
        assert post_event("transaction.approved", event_id=f"evt_missed_{n}").status_code == 202
    row.get_by_role("button", name="Enable").click()
    row.get_by_role("link", name=re.compile(r"^Replay events since")).click()
    expect(page.locator(".replay-count")).to_have_text("3")
    shoot(page, "replay")
    page.get_by_role("button", name="Replay 3 events").click()
    expect(page.get_by_text("in the background")).to_be_visible()
    deadline = utcnow() + timedelta(seconds=20)
    while len(scripted_receiver.requests) < 3 and utcnow() < deadline:
        page.wait_for_timeout(200)
    ids = sorted(r.headers["webhook-id"] for r in scripted_receiver.requests)
    assert ids == ["evt_missed_0", "evt_missed_1", "evt_missed_2"]
    page.goto(page.base + f"/audit?target=endpoint:{created.id}")
    expect(page.locator("#audit-rows").get_by_text("endpoint.replay", exact=True)).to_be_visible()


def test_rotation_with_a_chosen_overlap_says_until_when_the_old_secret_signs(page, seeded):
    page.goto(page.base + f"/webhooks/{seeded['healthy'].id}")
    # The chart: full width of its card, 24 keyboard-reachable bars linking to their hour.
    chart = page.locator("svg.chart")
    card = page.locator("section.card", has=chart).bounding_box()
    assert chart.bounding_box()["width"] > 0.9 * card["width"]
    bars = chart.locator("a.bar-link")
    expect(bars).to_have_count(24)
    expect(chart.locator("text.tick", has_text=":00")).to_have_count(8)  # every third hour
    expect(chart.locator(".p95-dot").first).to_be_attached()
    bars.last.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/deliveries\?.*hour=\d{4}-\d\d-\d\dT\d\d"))
    expect(page.get_by_text(re.compile(r"^6 deliveries match"))).to_be_visible()
    page.go_back()
    page.get_by_label("Old secret keeps signing").select_option("7d")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate").click()
    expect(page.locator("#secret-value")).to_have_text(re.compile(r"^whsec_"))
    until = (utcnow() + timedelta(days=7)).strftime("%Y-%m-%d")
    expect(page.get_by_text(re.compile(f"Previous secret valid until {until}"))).to_be_visible()


def test_the_test_panel_sends_a_chosen_type_with_an_edited_payload_and_shows_the_attempt(
    page, worker, scripted_receiver
):
    created = endpoint(scripted_receiver.url, "Warehouse")
    page.goto(page.base + f"/webhooks/{created.id}")
    panel = page.locator("#test-panel")
    panel.get_by_label("Event type").select_option("transaction.approved")
    editor = panel.get_by_label("Payload data (JSON object)")
    expect(editor).to_have_value(re.compile(r'"transaction_id": "txn_'))
    editor.fill('{"amount": 4200, "currency": "EUR"}')
    panel.get_by_role("button", name="Send test event").click()
    result = panel.locator("#test-result")
    expect(result.get_by_text("Succeeded")).to_be_visible(timeout=20_000)
    expect(result.get_by_text("attempt 1: 200")).to_be_visible()
    body = json.loads(scripted_receiver.requests[0].body)
    assert body["type"] == "transaction.approved" and body["data"]["amount"] == 4200
    shoot(page, "test-panel")


def test_a_declined_role_change_keeps_the_saved_role_on_screen(browser, live_server, seeded):
    tab = log_in(browser, live_server, ADMIN_EMAIL)
    tab.goto(live_server + "/users")
    role = tab.get_by_label(f"Role of {VIEWER_EMAIL}")
    tab.once("dialog", lambda dialog: dialog.dismiss())
    role.select_option("admin")
    expect(role).to_have_value("viewer")
    tab.reload()
    expect(tab.get_by_label(f"Role of {VIEWER_EMAIL}")).to_have_value("viewer")
    # Accepted, the change is saved and the row shows it.
    tab.once("dialog", lambda dialog: dialog.accept())
    tab.get_by_label(f"Role of {VIEWER_EMAIL}").select_option("admin")
    tab.wait_for_load_state("networkidle")
    tab.reload()
    expect(tab.get_by_label(f"Role of {VIEWER_EMAIL}")).to_have_value("admin")
    assert tab.problems == []
    tab.context.close()


def test_catalog_errors_show_at_the_top_with_focus_on_the_first_bad_field(
    browser, live_server, seeded
):
    tab = log_in(browser, live_server, ADMIN_EMAIL)
    tab.goto(live_server + "/catalog")
    tab.locator("#type-name").fill("not a valid name!")
    tab.locator("#type-example").fill("{not json")
    tab.get_by_role("button", name="Add event type").click()
    summary = tab.get_by_role("alert").filter(has_text="Not saved")
    expect(summary).to_be_visible()
    errors = tab.locator(".field-error")
    expect(errors.first).to_be_visible()
    # In the first screen of the page, right under the summary, not at the end of the catalog.
    assert errors.first.bounding_box()["y"] < 900
    assert tab.evaluate("document.activeElement.id") == "type-name"
    assert tab.problems == []
    tab.context.close()
