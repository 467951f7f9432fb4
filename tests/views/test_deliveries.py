"""The delivery monitor, the attempts timeline, retries and bulk retries."""

from __future__ import annotations

from sqlalchemy import select

from tests.views.test_webhooks import queued_delivery_ids
from webhook_admin.clock import utcnow
from webhook_admin.delivery.maintenance_jobs import bulk_retry
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, AuditEntry, Delivery, Event
from webhook_admin.queues import MAINTENANCE, RETRY, get_queue


def make_delivery(endpoint, status="failed", event_type="transaction.approved", n=0) -> Delivery:
    event = Event(
        id=f"evt_{status}_{n}_{utcnow().timestamp()}",
        type=event_type,
        data={"amount": 5},
        occurred_at=utcnow(),
        body_sha256="0" * 64,
    )
    delivery = Delivery(
        event=event,
        endpoint_id=endpoint.id,
        status=status,
        attempts_count=1,
        last_status_code=500,
        last_attempt_at=utcnow(),
    )
    db.session.add_all([event, delivery])
    db.session.flush()
    db.session.add(
        Attempt(
            delivery_id=delivery.id,
            endpoint_id=endpoint.id,
            number=1,
            trigger="automatic",
            started_at=utcnow(),
            duration_ms=12,
            request_url=endpoint.url,
            request_headers={"webhook-signature": "v1,•••"},
            request_body='{"b":1,"a":[1,2]}',
            response_status=500,
            response_headers={"content-type": "text/html"},
            response_body="<script>alert(1)</script>",
            succeeded=False,
        )
    )
    db.session.commit()
    return delivery


def test_monitor_pages_by_keyset_with_load_more(viewer, endpoint):
    ids = [make_delivery(endpoint, n=i).id for i in range(55)]
    html = viewer.get("/deliveries").get_data(as_text=True)
    assert f'id="delivery-{ids[-1]}"' in html and f'id="delivery-{ids[4]}"' not in html
    assert f"cursor={ids[5]}" in html
    more = viewer.get(f"/deliveries?cursor={ids[5]}", htmx=True).get_data(as_text=True)
    assert [f'id="delivery-{i}"' in more for i in ids[:5]] == [True] * 5
    assert f'id="delivery-{ids[5]}"' not in more and "Load more" not in more


def test_monitor_filters_by_status_event_type_category_and_event_id(viewer, endpoint):
    failed = make_delivery(endpoint)
    ok = make_delivery(endpoint, status="succeeded", event_type="refund.created")
    rows = viewer.get("/deliveries?status=failed", htmx=True).get_data(as_text=True)
    assert f"delivery-{failed.id}" in rows and f"delivery-{ok.id}" not in rows
    rows = viewer.get("/deliveries?category=Refunds", htmx=True).get_data(as_text=True)
    assert f"delivery-{failed.id}" not in rows and f"delivery-{ok.id}" in rows
    rows = viewer.get("/deliveries?event_type=refund.created", htmx=True).get_data(as_text=True)
    assert f"delivery-{ok.id}" in rows and f"delivery-{failed.id}" not in rows
    rows = viewer.get(f"/deliveries?event_id={failed.event_id}&since=1h", htmx=True).get_data(
        as_text=True
    )
    assert f"delivery-{failed.id}" in rows and f"delivery-{ok.id}" not in rows


def test_in_flight_row_polls_and_final_row_answers_286(viewer, endpoint):
    live = make_delivery(endpoint, status="retrying")
    done = make_delivery(endpoint, status="succeeded")
    response = viewer.get(f"/deliveries/{live.id}/row", htmx=True)
    assert response.status_code == 200 and 'hx-trigger="every 2s"' in response.get_data(
        as_text=True
    )
    response = viewer.get(f"/deliveries/{done.id}/row", htmx=True)
    assert response.status_code == 286 and "hx-trigger" not in response.get_data(as_text=True)


def test_timeline_escapes_receiver_body_and_pretty_prints_json(viewer, endpoint):
    delivery = make_delivery(endpoint)
    html = viewer.get(f"/deliveries/{delivery.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{\n  &#34;b&#34;: 1," in html or '{\n  "b": 1,' in html


def test_timeline_fragment_stops_polling_when_final(viewer, endpoint):
    delivery = make_delivery(endpoint)
    assert viewer.get(f"/deliveries/{delivery.id}", htmx=True).status_code == 286


def test_retry_failed_delivery_makes_it_due_enqueues_and_audits(admin, endpoint):
    delivery = make_delivery(endpoint)
    response = admin.post(f"/deliveries/{delivery.id}/retry", htmx=True)
    assert response.status_code == 200 and 'id="timeline"' in response.get_data(as_text=True)
    db.session.refresh(delivery)
    assert (delivery.status, delivery.next_trigger) == ("retrying", "manual")
    assert queued_delivery_ids() == {delivery.id}
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.action == "delivery.retry"))


def test_retry_of_cancelled_delivery_is_refused(admin, endpoint):
    delivery = make_delivery(endpoint, status="cancelled")
    assert admin.post(f"/deliveries/{delivery.id}/retry", htmx=True).status_code == 409


def test_bulk_retry_shows_count_first_then_queues_a_job(admin, endpoint):
    for i in range(3):
        make_delivery(endpoint, n=i)
    make_delivery(endpoint, status="succeeded")
    confirm = admin.get(f"/deliveries/bulk-retry?endpoint_id={endpoint.id}&range=24h")
    assert "<strong>3</strong> failed deliveries would be retried" in confirm.get_data(as_text=True)
    assert get_queue(MAINTENANCE).count == 0
    response = admin.post(
        "/deliveries/bulk-retry", {"endpoint_id": endpoint.id, "range": "24h"}, htmx=True
    )
    assert response.status_code == 202
    assert get_queue(MAINTENANCE).count == 1
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "delivery.bulk_retry"))
    assert entry.after["failed_count"] == 3


def test_bulk_retry_job_retries_each_failed_delivery(app, endpoint):
    failed = {make_delivery(endpoint, n=i).id for i in range(3)}
    ok = make_delivery(endpoint, status="succeeded")
    assert bulk_retry({"endpoint_id": endpoint.id}, "admin@example.com") == 3
    statuses = dict(db.session.execute(select(Delivery.id, Delivery.status)).all())
    assert {statuses[i] for i in failed} == {"retrying"} and statuses[ok.id] == "succeeded"
    assert queued_delivery_ids(RETRY) == failed


def test_a_later_page_opened_whole_shows_its_rows_without_a_count(viewer, endpoint):
    """`/deliveries?cursor=N` as a whole page (a reload after "Load more", no JavaScript) is
    not counted again (issue 16: the bounded count goes with the first page): its rows, no
    count line, and a way back to the newest."""
    ids = [make_delivery(endpoint, n=i).id for i in range(3)]
    response = viewer.get(f"/deliveries?cursor={ids[-1]}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'id="delivery-{ids[0]}"' in html and f'id="delivery-{ids[-1]}"' not in html
    assert "match" not in html.split('id="delivery-results"')[1].split("<table")[0]
    assert "← Newest" in html
