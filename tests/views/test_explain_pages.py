"""Explain on the pages: the event page lists every endpoint with its answer; the endpoint
page's "Explain an event" box answers for that endpoint (htmx fragment and full page)."""

from __future__ import annotations

from webhook_admin.extensions import db
from webhook_admin.services.endpoints import EndpointInput, create_endpoint, disable_endpoint


def add(url: str, **kwargs):
    endpoint, _ = create_endpoint(EndpointInput(url, **kwargs), "test")
    db.session.commit()
    return endpoint


def test_event_page_says_why_each_endpoint_got_or_missed_it(viewer, endpoint, post_event):
    other = add("http://127.0.0.1:9/refunds", event_types=["refund.created"])
    shop = add("http://127.0.0.1:9/shop", event_types=["transaction.approved"], merchant_id="m-9")
    off = add("http://127.0.0.1:9/off", event_types=["transaction.approved"])
    disable_endpoint(off, "ops@example.com")
    db.session.commit()
    post_event(event_id="evt_why", merchant_id="m-1")
    html = viewer.get("/events/evt_why").get_data(as_text=True)
    assert f'data-endpoint="{endpoint.id}" data-outcome="pending"' in html
    assert "Delivery " in html
    assert f'data-endpoint="{other.id}" data-outcome="not_subscribed"' in html
    assert "not subscribed to transaction.approved" in html
    assert f'data-endpoint="{shop.id}" data-outcome="merchant_mismatch"' in html
    assert f'data-endpoint="{off.id}" data-outcome="disabled"' in html
    assert "by ops@example.com" in html


def test_endpoint_explain_box_answers_for_one_event(viewer, endpoint, post_event):
    post_event(event_id="evt_box")
    page = viewer.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    assert 'id="explain-event-id"' in page
    fragment = viewer.get(f"/webhooks/{endpoint.id}/explain?event_id=evt_box", htmx=True)
    text = fragment.get_data(as_text=True)
    assert "<html" not in text and "Pending" in text and "/deliveries/" in text
    missing = viewer.get(f"/webhooks/{endpoint.id}/explain?event_id=evt_none", htmx=True)
    assert "No event with id" in missing.get_data(as_text=True)
    full = viewer.get(f"/webhooks/{endpoint.id}/explain?event_id=evt_box").get_data(as_text=True)
    assert "<html" in full and "Explain an event" in full


def test_an_expired_delivery_has_its_badge_filter_and_retry_button(admin, endpoint, post_event):
    from sqlalchemy import select

    from webhook_admin.models import Delivery, DeliveryStatus

    post_event(event_id="evt_exp_page")
    delivery = db.session.scalar(select(Delivery))
    delivery.status = DeliveryStatus.EXPIRED
    db.session.commit()
    page = admin.get("/deliveries?status=expired").get_data(as_text=True)
    assert 'class="badge badge-expired">Expired' in page and "evt_exp_page" in page
    assert '<option value="expired" selected>Expired</option>' in page
    assert "past its event type's deadline" in page  # the retry asks first
    assert "evt_exp_page" not in admin.get("/deliveries?status=failed").get_data(as_text=True)
    events_page = admin.get("/events/evt_exp_page").get_data(as_text=True)
    assert 'data-outcome="expired"' in events_page
