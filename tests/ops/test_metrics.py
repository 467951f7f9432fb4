"""/metrics: Prometheus text from the database and Redis, and who may read it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.conftest import test_environ as make_environ
from tests.ops.promtext import parse, value
from tests.support.receiver import Reply
from tests.support.work import run_queued_jobs
from webhook_admin import create_app
from webhook_admin.clock import utcnow
from webhook_admin.extensions import db
from webhook_admin.models import Delivery
from webhook_admin.queues import schedule_delivery
from webhook_admin.services.endpoint_health import disable_endpoint_by_system


def scrape(client, **headers) -> dict:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    assert "version=0.0.4" in response.headers["Content-Type"]
    return parse(response.get_data(as_text=True))


def test_metrics_count_deliveries_attempts_and_latency(
    app, client, post_event, receiver, add_endpoint
):
    replies = iter([Reply(200), Reply(500), Reply(200, delay=0.3)])
    receiver.responder = lambda request: next(replies)
    add_endpoint(receiver.url)
    for n in range(3):
        post_event(event_id=f"evt_m_{n}")
    settings = app.config["SETTINGS"]
    # The 500 waits ten minutes (an hour would pass transaction.approved's 1 h deadline).
    app.config["SETTINGS"] = replace(settings, retry_schedule=(600,))
    run_queued_jobs(app)
    m = scrape(client)
    assert value(m, "webhook_deliveries", status="succeeded") == 2
    assert value(m, "webhook_deliveries", status="retrying") == 1
    assert value(m, "webhook_deliveries", status="failed") == 0
    assert value(m, "webhook_attempts_last_24h", outcome="success", error_class="none") == 2
    assert value(m, "webhook_attempts_last_24h", outcome="failure", error_class="http") == 1
    hist = "webhook_attempt_duration_last_hour_seconds"
    assert value(m, hist + "_count") == 3
    assert value(m, hist + "_bucket", le="+Inf") == 3
    assert value(m, hist + "_bucket", le="0.25") == 2  # the 0.3 s one is above
    assert value(m, hist + "_bucket", le="0.5") == 3
    assert value(m, hist + "_sum") >= 0.3
    assert value(m, "webhook_scheduled_retries") == 1
    assert value(m, "webhook_oldest_due_delivery_age_seconds") == 0


def test_metrics_show_queue_depth_and_the_oldest_due_delivery(
    app, client, post_event, add_endpoint
):
    add_endpoint("http://127.0.0.1:9/hook")
    post_event(event_id="evt_q1")
    post_event(event_id="evt_q2")
    db.session.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=120)))
    db.session.commit()
    schedule_delivery(99999, 1, utcnow() + timedelta(hours=1))
    m = scrape(client)
    assert value(m, "webhook_queue_depth", queue="deliveries") == 2
    assert value(m, "webhook_queue_depth", queue="retries") == 0
    assert value(m, "webhook_scheduled_retries") == 1
    assert 119 <= value(m, "webhook_oldest_due_delivery_age_seconds") < 180
    assert value(m, "webhook_workers_alive") == 0


def test_metrics_count_disabled_endpoints_by_reason(app, client, add_endpoint):
    gone = add_endpoint("http://127.0.0.1:9/a")
    add_endpoint("http://127.0.0.1:9/b")
    disable_endpoint_by_system(gone.id, "gone", "410")
    db.session.commit()
    m = scrape(client)
    assert value(m, "webhook_endpoints_disabled", reason="gone") == 1
    assert value(m, "webhook_endpoints_disabled", reason="auto") == 0


def test_metrics_still_answer_from_the_database_when_redis_is_down(
    client, post_event, add_endpoint, redis_outage
):
    add_endpoint("http://127.0.0.1:9/hook")
    post_event(event_id="evt_r")
    redis_outage()
    m = scrape(client)
    assert value(m, "webhook_redis_up") == 0
    assert value(m, "webhook_database_up") == 1
    assert value(m, "webhook_deliveries", status="pending") == 1
    assert ("webhook_queue_depth", frozenset({("queue", "deliveries")})) not in m


@pytest.fixture
def app_with(migrated_database, redis_server):
    def make(**overrides):
        return create_app(make_environ(migrated_database, redis_server.url, **overrides))

    return make


def test_metrics_token_is_required_when_set(app_with):
    client = app_with(METRICS_TOKEN="scrape-me").test_client()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "webhook_" not in wrong.get_data(as_text=True)
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert ok.status_code == 200 and "webhook_database_up 1" in ok.get_data(as_text=True)


def test_metrics_without_token_in_production_only_answer_loopback(app_with):
    client = app_with(APP_ENV="production").test_client()
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert remote.status_code == 401
    local = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert local.status_code == 200


def test_metrics_need_no_login_or_csrf_in_development(app_with):
    client = app_with(APP_ENV="development").test_client()
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 200
