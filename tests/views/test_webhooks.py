"""Webhook Management: add, edit, delete, enable, disable, test events, secrets, filters."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from webhook_admin.clock import utcnow
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, AuditEntry, Delivery, Endpoint, Event
from webhook_admin.queues import FRESH, delivery_id_of, get_queue
from webhook_admin.services.endpoint_secrets import decrypt_header_values

GOOD_FORM = {
    "url": "http://127.0.0.1:8123/hook",
    "description": "Warehouse",
    "category": "Refunds",
    "event_types": ["refund.created", "refund.failed"],
    "header_name": ["X-Team", ""],
    "header_value": ["payments", ""],
}


def audit_actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_add_webhook_returns_secret_once_and_the_new_row(admin):
    response = admin.post("/webhooks", GOOD_FORM, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    endpoint = db.session.scalar(select(Endpoint))
    assert decrypt_header_values(endpoint.custom_headers) == {"X-Team": "payments"}
    assert "whsec_" in html and 'hx-swap-oob="afterbegin:#endpoint-rows"' in html
    assert response.headers["Cache-Control"] == "no-store"
    assert 'hx-history="false"' in html
    assert "endpoint.create" in audit_actions()


def test_secret_never_appears_on_later_pages(admin):
    html = admin.post("/webhooks", GOOD_FORM, htmx=True).get_data(as_text=True)
    secret = html.split('<code id="new-secret-')[1].split(">")[1].split("<")[0]
    assert secret.startswith("whsec_")
    endpoint = db.session.scalar(select(Endpoint))
    for path in ("/webhooks", f"/webhooks/{endpoint.id}", "/audit", "/events", "/deliveries"):
        assert secret not in admin.get(path).get_data(as_text=True)


def test_invalid_url_answers_422_with_the_message_next_to_the_field(admin):
    response = admin.post("/webhooks", GOOD_FORM | {"url": "ftp://example.com/x"}, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="url-error"' in html and "<html" not in html
    assert db.session.scalar(select(Endpoint)) is None


def test_missing_events_answers_422_on_events_field(admin):
    response = admin.post("/webhooks", GOOD_FORM | {"event_types": []}, htmx=True)
    assert response.status_code == 422
    assert 'id="event_types-error"' in response.get_data(as_text=True)


def test_all_category_events_checkbox_subscribes_to_the_category(admin):
    form = GOOD_FORM | {"event_types": [], "all_events": "Refunds"}
    assert admin.post("/webhooks", form, htmx=True).status_code == 201
    assert db.session.scalar(select(Endpoint)).all_category_events


def test_plain_form_post_renders_full_page_with_secret(admin):
    response = admin.post("/webhooks", GOOD_FORM)
    assert response.status_code == 201
    assert "<html" in response.get_data(as_text=True)


def test_edit_form_and_update_swap_only_the_row(admin, endpoint):
    form = admin.get(f"/webhooks/{endpoint.id}/edit", htmx=True).get_data(as_text=True)
    assert form.startswith(f'<tr id="endpoint-{endpoint.id}"')
    data = GOOD_FORM | {"url": "http://127.0.0.1:9/new"}
    response = admin.post(f"/webhooks/{endpoint.id}", data, htmx=True)
    assert response.get_data(as_text=True).lstrip().startswith(f'<tr id="endpoint-{endpoint.id}"')
    db.session.refresh(endpoint)
    assert endpoint.url == "http://127.0.0.1:9/new"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "endpoint.update"))
    assert entry.before["url"] == "http://127.0.0.1:9/hook"


def test_edit_validation_error_answers_422(admin, endpoint):
    response = admin.post(f"/webhooks/{endpoint.id}", GOOD_FORM | {"url": ""}, htmx=True)
    assert response.status_code == 422
    assert 'id="url-error"' in response.get_data(as_text=True)


def test_delete_removes_row_and_cancels_waiting_deliveries(admin, endpoint, post_event):
    post_event("transaction.approved")
    response = admin.post(f"/webhooks/{endpoint.id}/delete", htmx=True)
    assert response.status_code == 200 and response.get_data(as_text=True) == ""
    assert db.session.scalar(select(Delivery.status)) == "cancelled"
    assert f"endpoint-{endpoint.id}" not in admin.get("/webhooks").get_data(as_text=True)


def test_delete_without_js_shows_confirmation_page_first(admin, endpoint):
    html = admin.get(f"/webhooks/{endpoint.id}/delete").get_data(as_text=True)
    assert "Delete webhook?" in html
    db.session.refresh(endpoint)
    assert endpoint.deleted_at is None


def test_disable_then_enable_swaps_row_and_enqueues_held_deliveries(admin, endpoint):
    html = admin.post(f"/webhooks/{endpoint.id}/disable", htmx=True).get_data(as_text=True)
    assert "Disabled" in html and "by admin@example.com" in html
    held = _held_delivery(endpoint)
    assert queued_delivery_ids() == set()
    html = admin.post(f"/webhooks/{endpoint.id}/enable", htmx=True).get_data(as_text=True)
    assert "Healthy" in html and "Retry what failed while it was down" in html
    assert "Replay events since" in html
    assert queued_delivery_ids() == {held}


def queued_delivery_ids(kind: str = FRESH) -> set[int]:
    """Delivery ids of the jobs waiting in one of the app's RQ queues."""
    return {delivery_id_of(job_id) for job_id in get_queue(kind).job_ids}


def _held_delivery(endpoint) -> int:
    """A delivery that was waiting when the endpoint was disabled."""
    event = Event(
        id="evt_held",
        type="transaction.approved",
        data={},
        occurred_at=utcnow(),
        body_sha256="0" * 64,
    )
    db.session.add(event)
    delivery = Delivery(
        event=event, endpoint_id=endpoint.id, status="pending", next_attempt_at=utcnow()
    )
    db.session.add(delivery)
    db.session.commit()
    return delivery.id


def test_send_test_event_creates_test_event_and_delivery(admin, endpoint):
    response = admin.post(f"/webhooks/{endpoint.id}/test", htmx=True)
    assert response.status_code == 200
    event = db.session.scalar(select(Event))
    delivery = db.session.scalar(select(Delivery))
    assert (event.type, event.source) == ("webhook.test", "test")
    assert (delivery.endpoint_id, delivery.next_trigger) == (endpoint.id, "test")
    assert queued_delivery_ids() == {delivery.id}
    assert f"/deliveries/{delivery.id}/status" in response.get_data(as_text=True)


def test_send_test_event_to_disabled_endpoint_is_refused(admin, endpoint):
    admin.post(f"/webhooks/{endpoint.id}/disable", htmx=True)
    response = admin.post(f"/webhooks/{endpoint.id}/test", htmx=True)
    assert response.status_code == 409
    assert db.session.scalar(select(Event)) is None


def test_reveal_secret_is_not_cached_and_audited(admin, endpoint):
    response = admin.post(f"/webhooks/{endpoint.id}/secret/reveal", htmx=True)
    html = response.get_data(as_text=True)
    assert endpoint.test_secret in html
    assert response.headers["Cache-Control"] == "no-store"
    assert 'hx-history="false"' in html
    assert "endpoint.secret_reveal" in audit_actions()


def test_rotate_secret_shows_new_secret_and_audits(admin, endpoint):
    html = admin.post(f"/webhooks/{endpoint.id}/secret/rotate", htmx=True).get_data(as_text=True)
    assert "whsec_" in html and endpoint.test_secret not in html
    assert "endpoint.secret_rotate" in audit_actions()
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "endpoint.secret_rotate")
    )
    assert "whsec_" not in str(entry.after)


def test_filters_by_text_category_and_status(admin, endpoint):
    admin.post("/webhooks", GOOD_FORM, htmx=True)
    rows = admin.get("/webhooks?q=Warehouse", htmx=True).get_data(as_text=True)
    assert "8123" in rows and "127.0.0.1:9/hook" not in rows
    rows = admin.get("/webhooks?category=Transactions", htmx=True).get_data(as_text=True)
    assert "8123" not in rows and "127.0.0.1:9/hook" in rows
    admin.post(f"/webhooks/{endpoint.id}/disable", htmx=True)
    rows = admin.get("/webhooks?status=disabled", htmx=True).get_data(as_text=True)
    assert "8123" not in rows and "127.0.0.1:9/hook" in rows


def test_success_rate_over_24h_from_attempts(admin, endpoint, post_event):
    post_event("transaction.approved")
    delivery = db.session.scalar(select(Delivery))
    now = utcnow()
    for number, ok in ((1, True), (2, True), (3, True), (4, False)):
        db.session.add(
            Attempt(
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                number=number,
                trigger="automatic",
                started_at=now,
                request_url=endpoint.url,
                succeeded=ok,
            )
        )
    db.session.add(
        Attempt(
            delivery_id=delivery.id,
            endpoint_id=endpoint.id,
            number=5,
            trigger="automatic",
            started_at=now - timedelta(hours=30),
            request_url=endpoint.url,
            succeeded=False,
        )
    )
    db.session.commit()
    assert "75 % of 4" in admin.get("/webhooks").get_data(as_text=True)


def test_auto_disabled_banner_and_failing_warning(admin, endpoint):
    endpoint.enabled, endpoint.disabled_reason = False, "auto"
    endpoint.failing_since = utcnow() - timedelta(days=5)
    db.session.commit()
    html = admin.get("/webhooks").get_data(as_text=True)
    assert "1 endpoint disabled by the system" in html and "Auto-disabled" in html
