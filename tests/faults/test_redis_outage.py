"""Redis dies: the database keeps every delivery, and the sweeper puts them back on queues."""

from __future__ import annotations

import time
from dataclasses import replace

from sqlalchemy import func, select

from tests.faults.conftest import Acking
from tests.faults.invariants import check_invariants
from tests.support.processes import wait_until
from tests.support.receiver import Receiver, Reply
from tests.support.work import run_queued_jobs
from webhook_admin.extensions import db
from webhook_admin.models import Delivery
from webhook_admin.queues import RETRY, get_queue, get_redis
from webhook_admin.worker_presence import last_run_key

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
