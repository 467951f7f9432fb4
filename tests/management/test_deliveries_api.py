"""/api/v1/deliveries, /api/v1/events and recover: lists, filters, retry, windows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.conftest import valid_data
from webhook_admin.clock import utcnow
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, Delivery, DeliveryStatus

from .test_endpoints_api import assert_problem


@pytest.fixture
def failed_deliveries(post_event, endpoint):
    """Three events to the endpoint, their deliveries made failed an hour apart."""
    ids = []
    for i in range(3):
        response = post_event(data=valid_data(amount=i))
        assert response.status_code == 202
    rows = list(db.session.scalars(select(Delivery).order_by(Delivery.id)))
    now = utcnow()
    for i, delivery in enumerate(rows):
        db.session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(status=DeliveryStatus.FAILED, created_at=now - timedelta(hours=3 - i))
        )
        ids.append(delivery.id)
    db.session.commit()
    return ids


def test_list_deliveries_filters_and_pages(read_api, failed_deliveries, endpoint):
    body = read_api.get(f"/api/v1/deliveries?endpoint_id={endpoint.id}&limit=2").get_json()
    assert [d["id"] for d in body["data"]] == failed_deliveries[::-1][:2]
    rest = read_api.get(f"/api/v1/deliveries?limit=2&after={body['next']}").get_json()
    assert [d["id"] for d in rest["data"]] == [failed_deliveries[0]] and rest["next"] is None
    since = (utcnow() - timedelta(hours=2, minutes=30)).isoformat() + "Z"
    recent = read_api.get("/api/v1/deliveries", query_string={"since": since}).get_json()
    assert len(recent["data"]) == 2
    until = (utcnow() - timedelta(hours=2, minutes=30)).isoformat() + "+00:00"
    old = read_api.get("/api/v1/deliveries", query_string={"until": until}).get_json()
    assert [d["id"] for d in old["data"]] == [failed_deliveries[0]]
    assert read_api.get("/api/v1/deliveries?status=succeeded").get_json()["data"] == []
    typed = read_api.get("/api/v1/deliveries?event_type=transaction.approved").get_json()
    assert len(typed["data"]) == 3
    event_id = typed["data"][0]["event_id"]
    assert len(read_api.get(f"/api/v1/deliveries?event_id={event_id}").get_json()["data"]) == 1


def test_list_deliveries_by_merchant_and_category(read_api, post_event, add_endpoint):
    add_endpoint("http://127.0.0.1:9/hook", ("transaction.approved", "refund.created"))
    for event_type, merchant in [
        ("transaction.approved", "m_1"),
        ("refund.created", "m_1"),
        ("refund.created", "m_2"),
        ("transaction.approved", None),
    ]:
        extra = {"merchant_id": merchant} if merchant else {}
        assert post_event(event_type, **extra).status_code == 202

    def types(query: str) -> list[str]:
        rows = read_api.get(f"/api/v1/deliveries?{query}").get_json()["data"]
        return sorted(d["event_type"] for d in rows)

    assert types("merchant_id=m_1") == ["refund.created", "transaction.approved"]
    assert types("category=Refunds") == ["refund.created", "refund.created"]
    assert types("category=Refunds&merchant_id=m_2") == ["refund.created"]
    assert types("category=Terminals") == [] and types("merchant_id=m_9") == []


@pytest.mark.parametrize(
    "query", ["status=lost", "since=yesterday", "endpoint_id=0", "limit=500", "after=x"]
)
def test_list_deliveries_refuses_bad_filters(read_api, query):
    assert_problem(read_api.get(f"/api/v1/deliveries?{query}"), 422)


def test_list_refuses_a_nul_in_a_filter(read_api):
    assert_problem(read_api.get("/api/v1/deliveries?event_id=a%00b"), 422)


def test_one_delivery_has_its_attempts(read_api, failed_deliveries):
    body = read_api.get(f"/api/v1/deliveries/{failed_deliveries[0]}").get_json()
    assert body["id"] == failed_deliveries[0] and body["attempts"] == []
    assert_problem(read_api.get("/api/v1/deliveries/424242"), 404)


def test_retry_queues_a_manual_attempt_and_audits(admin_api, failed_deliveries):
    delivery_id = failed_deliveries[0]
    response = admin_api.post(f"/api/v1/deliveries/{delivery_id}/retry")
    assert response.status_code == 202 and response.get_json()["status"] == "retrying"
    [entry] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "delivery.retry"))
    assert entry.target_id == str(delivery_id) and "via token 'ci'" in entry.actor


def test_retry_of_a_delivery_in_flight_is_409(admin_api, failed_deliveries):
    delivery_id = failed_deliveries[0]
    db.session.execute(
        update(Delivery).where(Delivery.id == delivery_id).values(status="in_flight")
    )
    db.session.commit()
    assert_problem(admin_api.post(f"/api/v1/deliveries/{delivery_id}/retry"), 409)


def test_retry_needs_the_admin_scope(read_api, failed_deliveries):
    assert_problem(read_api.post(f"/api/v1/deliveries/{failed_deliveries[0]}/retry"), 403)


def test_recover_dry_run_counts_the_window(admin_api, failed_deliveries, endpoint):
    since = (utcnow() - timedelta(hours=2, minutes=30)).isoformat()
    response = admin_api.post(
        f"/api/v1/endpoints/{endpoint.id}/recover", json={"since": since, "dry_run": True}
    )
    assert response.status_code == 200
    assert response.get_json() == {"count": 2, "dry_run": True, "job_id": None}
    assert (
        db.session.scalar(select(Delivery.status).where(Delivery.id == failed_deliveries[2]))
        == DeliveryStatus.FAILED
    )


def test_recover_queues_a_background_job_and_it_resends_the_window(
    admin_api, failed_deliveries, endpoint, app
):
    from rq import SimpleWorker

    from webhook_admin.queues import MAINTENANCE, get_queue, get_redis

    since = (utcnow() - timedelta(hours=2, minutes=30)).isoformat()
    until = (utcnow() - timedelta(minutes=90)).isoformat()
    response = admin_api.post(
        f"/api/v1/endpoints/{endpoint.id}/recover", json={"since": since, "until": until}
    )
    assert response.status_code == 202
    assert response.get_json()["count"] == 1 and response.get_json()["job_id"]
    SimpleWorker([get_queue(MAINTENANCE)], connection=get_redis()).work(burst=True)
    db.session.expire_all()
    statuses = [db.session.get(Delivery, i).status for i in failed_deliveries]
    assert statuses == ["failed", "retrying", "failed"]
    actions = set(db.session.scalars(select(AuditEntry.action)))
    assert {"delivery.bulk_retry", "delivery.bulk_retry_done"} <= actions


def test_recover_refuses_a_window_that_ends_before_it_starts(admin_api, endpoint):
    now = utcnow()
    body = {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()}
    assert_problem(admin_api.post(f"/api/v1/endpoints/{endpoint.id}/recover", json=body), 422)


def test_recover_refuses_an_unknown_field(admin_api, endpoint):
    body = {"since": utcnow().isoformat(), "dryrun": True}
    assert_problem(admin_api.post(f"/api/v1/endpoints/{endpoint.id}/recover", json=body), 422)


def test_events_list_pages_and_one_event_has_its_deliveries(read_api, failed_deliveries):
    first = read_api.get("/api/v1/events?limit=2").get_json()
    assert len(first["data"]) == 2 and first["next"]
    rest = read_api.get("/api/v1/events", query_string={"limit": 2, "after": first["next"]})
    assert len(rest.get_json()["data"]) == 1 and rest.get_json()["next"] is None
    event_id = first["data"][0]["id"]
    one = read_api.get(f"/api/v1/events/{event_id}").get_json()
    assert one["id"] == event_id and len(one["deliveries"]) == 1
    assert read_api.get("/api/v1/events?event_type=refund.created").get_json()["data"] == []


def test_events_refuse_a_bad_cursor_and_unknown_ids(read_api):
    assert_problem(read_api.get("/api/v1/events?after=bm9wZQ=="), 422)
    assert_problem(read_api.get("/api/v1/events?after=%%%"), 422)
    assert_problem(read_api.get("/api/v1/events/evt_nothing"), 404)


def test_emitting_stays_on_the_signed_ingest(read_api):
    response = read_api.post("/api/v1/events", json={"type": "transaction.approved", "data": {}})
    assert response.status_code == 401
    assert response.get_json() == {"error": response.get_json()["error"]}  # the ingest's own


def test_an_answer_the_document_does_not_allow_is_a_500_problem_never_sent(read_api, app):
    from webhook_admin.clock import utcnow as now
    from webhook_admin.models import Event

    db.session.add(
        Event(
            id="evt_list_data",
            type="transaction.approved",
            data=[1, 2],
            occurred_at=now(),
            body_sha256="0" * 64,
        )
    )
    db.session.commit()
    response = read_api.get("/api/v1/events/evt_list_data")
    body = assert_problem(response, 500)
    assert "[1, 2]" not in response.get_data(as_text=True) and "schema" in body["detail"]
