"""Redis dies: the database keeps every delivery, and the sweeper puts them back on queues."""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import replace

import pytest
import redis
from sqlalchemy import func, select

from tests.faults.conftest import Acking
from tests.faults.invariants import check_invariants
from tests.support.processes import wait_until
from tests.support.receiver import Receiver, Reply
from tests.support.work import run_queued_jobs
from webhook_admin.extensions import db
from webhook_admin.models import Delivery
from webhook_admin.queues import RETRY, enqueue_deliveries, get_queue, get_redis
from webhook_admin.worker_presence import last_run_key
from worker import REDIS_RETRY_SECONDS

SCHEDULE = "4,1"
EACH = 250


def waiting() -> int:
    db.session.rollback()
    return db.session.scalar(
        select(func.count()).where(Delivery.status.in_(("pending", "retrying", "in_flight")))
    )


def test_redis_restarted_empty_loses_no_pending_or_scheduled_delivery(
    app, post_event, add_endpoint, start_worker, redis_outage
):
    fails_once = Acking(lambda webhook_id, nth: Reply(503) if nth == 1 else Reply(200))
    slow = Acking(lambda webhook_id, nth: Reply(200, delay=0.02))
    with Receiver(fails_once) as flaky, Receiver(slow) as steady:
        add_endpoint(flaky.url, ("refund.created",))
        add_endpoint(steady.url)
        # 250 deliveries tried once (503) and scheduled in RQ for a retry...
        scheduled = [f"evt_s_{n}" for n in range(EACH)]
        for event_id in scheduled:
            assert post_event("refund.created", event_id=event_id).status_code == 202
        app.config["SETTINGS"] = replace(app.config["SETTINGS"], retry_schedule=(4, 1))
        run_queued_jobs(app)
        assert get_queue(RETRY).scheduled_job_registry.count == EACH
        # ... and 250 fresh ones queued for a worker that is slower than they arrive.
        pending = [f"evt_p_{n}" for n in range(EACH)]
        for event_id in pending:
            assert post_event(event_id=event_id).status_code == 202
        worker = start_worker("--threads", "2", WEBHOOK_RETRY_SCHEDULE=SCHEDULE)
        wait_until(lambda: len(slow.tries) >= 10, message=worker.output())
        with redis_outage:
            time.sleep(2)  # the worker keeps running without Redis
        assert redis_outage.came_back_empty  # back, and empty: every job is gone
        wait_until(lambda: waiting() == 0, timeout=60, interval=0.5, message=worker.output())
        assert worker.process.poll() is None, "the worker exited during the outage"
    counts = check_invariants(
        (4, 1),
        accepted=scheduled + pending,
        acknowledged=acks(flaky, fails_once) | acks(steady, slow),
        allow_waiting=False,
    )
    assert counts == {"succeeded": 2 * EACH}
    assert set(fails_once.acked) == set(scheduled) and set(slow.acked) == set(pending)


def acks(receiver: Receiver, responder: Acking) -> set[tuple[str, int]]:
    from webhook_admin.models import Endpoint

    endpoint_id = db.session.scalar(select(Endpoint.id).where(Endpoint.url == receiver.url))
    return {(webhook_id, endpoint_id) for webhook_id in responder.acked}


def test_event_accepted_while_redis_is_down_is_delivered_when_it_returns(
    app, post_event, add_endpoint, start_worker, redis_outage
):
    responder = Acking()
    with Receiver(responder) as receiver:
        add_endpoint(receiver.url)
        worker = start_worker()
        wait_until(lambda: get_redis().exists(last_run_key()))
        with redis_outage:
            started = time.monotonic()
            ids = [f"evt_down_{n}" for n in range(10)]
            for event_id in ids:
                response = post_event(event_id=event_id)
                assert response.status_code == 202, response.get_data(as_text=True)
            assert time.monotonic() - started < 10  # no ingest waits long on a dead Redis
            assert receiver.requests == []
        receiver.wait_for(10, timeout=30)
        wait_until(lambda: waiting() == 0, timeout=20, message=worker.output())
    counts = check_invariants(
        (0, 0, 0), accepted=ids, acknowledged=acks(receiver, responder), allow_waiting=False
    )
    assert counts == {"succeeded": 10}
    assert sorted(responder.tries) == sorted(ids)


def test_a_named_worker_survives_redis_coming_back_with_its_old_registration(
    app, post_event, add_endpoint, start_worker, redis_server
):
    """Redis may come back from an outage still holding the RQ registration the worker's
    loop made before it (a replica promoted by Sentinel, a restart from a snapshot), without
    the loop's end, which RQ could not write while Redis was away. RQ refuses a new loop of the
    same --name as "an active worker named ... already": the process must record the old
    loop's end and go on, not exit (it did, in a Sentinel failover under load).

    Made deterministic: both delivery threads held by a receiver, and an RQ job waiting for
    a thread, so RQ's loop is inside a job (not in its dequeue, which rides out outages by
    itself) when Redis goes; Redis comes back from a snapshot taken while the loop ran."""
    if redis_server.stop is None:
        pytest.fail("this fault test stops and restarts Redis: it needs redis-server installed")
    release = threading.Event()
    held = Acking(lambda webhook_id, nth: (release.wait(30), Reply(200))[1])
    name = f"kept-name-{uuid.uuid4().hex[:6]}"
    rq_key = f"rq:worker:{name}"
    snapshot = os.path.join(redis_server.workdir, "dump.rdb")
    with Receiver(held) as receiver:
        add_endpoint(receiver.url)
        worker = start_worker("--threads", "2", "--name", name)
        client = redis.Redis.from_url(redis_server.url)
        wait_until(lambda: client.exists(rq_key), message=worker.output())
        for n in range(2):
            assert post_event(event_id=f"evt_kept_name_{n}").status_code == 202
        receiver.wait_for(2, timeout=20)  # both threads are busy
        delivery_id = db.session.scalar(select(func.min(Delivery.id)))
        # A second job for the same delivery (harmless: the claim is atomic) keeps RQ's
        # loop inside the job, waiting for the thread.
        assert enqueue_deliveries([(delivery_id, 7)], RETRY)
        wait_until(lambda: get_queue(RETRY).count == 0, message=worker.output())
        client.save()  # RQ's registration, without an end, is in the snapshot
        redis_server.stop()
        try:
            release.set()  # the job ends; RQ's loop fails on Redis and cannot note its end
            wait_until(
                lambda: "worker loop restarting" in worker.output(),
                timeout=30,
                message=worker.output(),
            )
        finally:
            redis_server.start()  # from the snapshot
            os.remove(snapshot)  # later outage tests need Redis to come back empty
        assert client.exists(rq_key)  # the old registration is back...
        # ... and the worker, still running, registered a new loop under its name.
        wait_until(
            lambda: (
                client.hget(rq_key, "death") is None
                and client.sismember("rq:workers", rq_key)
                and worker.output().count("worker loop restarting") >= 1
                and worker.process.poll() is None
            ),
            timeout=30,
            message=worker.output(),
        )
        time.sleep(REDIS_RETRY_SECONDS + 1)  # past another restart, had the first one failed
        assert worker.process.poll() is None, worker.output()
        assert "There exists an active worker" not in worker.output()
        assert post_event(event_id="evt_after_restart").status_code == 202
        receiver.wait_for(3, timeout=30)
