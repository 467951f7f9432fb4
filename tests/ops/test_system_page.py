"""The System page: workers, queues, the sweeper; a fragment that refreshes every 5 s."""

from __future__ import annotations

import re
import time

from tests.support.processes import wait_until
from webhook_admin.queues import get_redis
from webhook_admin.worker_presence import last_run_key, list_workers


def test_system_page_needs_a_login(client):
    response = client.get("/system")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_viewer_sees_workers_queues_and_sweeper(
    app, viewer, post_event, add_endpoint, start_worker
):
    add_endpoint("http://127.0.0.1:9/hook")
    post_event(event_id="evt_sys")
    get_redis().set(last_run_key(), f"{time.time() - 42:.0f}")
    worker = start_worker(
        "--name", "sys-worker-1", "--no-sweeper", WEBHOOK_HEARTBEAT_INTERVAL="0.2"
    )
    wait_until(lambda: list_workers(get_redis()), message=worker.output())
    page = viewer.get("/system")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "sys-worker-1" in html and f">{worker.process.pid}<" in html
    assert 'aria-current="page">System<' in html
    assert re.search(r"Sweeper last run</dt><dd[^>]*>4[0-9] s ago", html)
    assert 'data-queue="deliveries"' in html


def test_htmx_refresh_gets_the_status_fragment_alone(app, viewer, post_event, add_endpoint):
    add_endpoint("http://127.0.0.1:9/hook")
    post_event(event_id="evt_sys_1")
    post_event(event_id="evt_sys_2")
    fragment = viewer.get("/system", htmx=True).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="system-status"')
    assert 'hx-trigger="every 5s"' in fragment and "<html" not in fragment
    assert '<strong data-queue="deliveries">2</strong>' in fragment
    assert "No worker has reported" in fragment


def test_system_page_has_no_inline_script_or_style(viewer):
    html = viewer.get("/system").get_data(as_text=True)
    assert "<script>" not in html and "style=" not in html and "<style" not in html


def test_system_page_says_redis_is_down_instead_of_failing(viewer, redis_outage):
    redis_outage()
    response = viewer.get("/system", htmx=True)
    assert response.status_code == 200
    assert "Redis is not answering" in response.get_data(as_text=True)
