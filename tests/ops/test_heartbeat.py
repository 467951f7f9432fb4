"""Worker presence: each `worker.py` process beats into Redis and leaves when it stops."""

from __future__ import annotations

import signal
import threading

from sqlalchemy import select

from tests.ops.promtext import parse, value
from tests.support.processes import wait_until
from tests.support.receiver import Reply
from webhook_admin.extensions import db
from webhook_admin.models import Delivery
from webhook_admin.queues import get_redis
from webhook_admin.worker_presence import list_workers, worker_key


def test_worker_heartbeat_lists_its_delivery_in_flight_and_leaves_on_sigterm(
    app, post_event, receiver, add_endpoint, start_worker
):
    release = threading.Event()
    receiver.responder = lambda request: (release.wait(10), Reply(200))[1]
    add_endpoint(receiver.url)
    post_event(event_id="evt_hb")
    worker = start_worker("--threads", "4", WEBHOOK_HEARTBEAT_INTERVAL="0.2")
    receiver.wait_for(1)
    busy = wait_until(
        lambda: [w for w in list_workers(get_redis()) if w["in_flight"]], message=worker.output()
    )
    (info,) = busy
    assert info["pid"] == worker.process.pid
    assert info["threads"] == 4 and info["state"] == "busy"
    assert info["host"] and info["last_seen"] >= info["started_at"]
    (delivery_id,) = info["in_flight"]
    assert get_redis().ttl(worker_key(info["name"])) >= 1
    release.set()
    wait_until(lambda: list_workers(get_redis())[0]["state"] == "idle")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
    assert list_workers(get_redis()) == []
    assert delivery_id == db.session.scalar(select(Delivery.id))


def test_killed_worker_disappears_when_its_heartbeat_expires(app, client, start_worker):
    first = start_worker(WEBHOOK_HEARTBEAT_INTERVAL="0.3")
    second = start_worker(WEBHOOK_HEARTBEAT_INTERVAL="0.3")
    wait_until(lambda: len(list_workers(get_redis())) == 2, message=first.output())
    assert value(parse(client.get("/metrics").get_data(as_text=True)), "webhook_workers_alive") == 2
    first.signal(signal.SIGKILL)
    first.wait()
    remaining = wait_until(
        lambda: len(list_workers(get_redis())) == 1 and list_workers(get_redis())
    )
    assert remaining[0]["pid"] == second.process.pid
