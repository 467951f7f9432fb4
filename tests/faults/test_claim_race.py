"""Two worker processes racing for the same deliveries: each is claimed, and sent, once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.faults.conftest import Acking
from tests.faults.invariants import check_invariants
from tests.support.processes import wait_until
from tests.support.receiver import Receiver
from webhook_admin.extensions import db
from webhook_admin.models import Delivery, Endpoint
from webhook_admin.queues import FRESH, enqueue_deliveries, get_queue, get_redis

EVENTS = 150


# 4 threads: the endpoint's cap (8) is never reached by one process. 32: the endpoint answers
# fast, so it borrows idle threads over its cap, and parked deliveries are claimed together
# in groups (the claim combiner) while the other process claims the same ids.
@pytest.mark.parametrize("threads", ["4", "32"])
def test_two_workers_with_duplicate_jobs_send_each_delivery_exactly_once(
    app, post_event, add_endpoint, start_worker, threads
):
    responder = Acking()
    with Receiver(responder) as receiver:
        add_endpoint(receiver.url)
        ids = [f"evt_race_{n}" for n in range(EVENTS)]
        for event_id in ids:
            assert post_event(event_id=event_id).status_code == 202
        # Two live jobs per delivery, side by side in the queue, so both workers pop the
        # same delivery at the same moment (as after a sweeper re-enqueue of a slow job).
        get_redis().delete(get_queue(FRESH).key)
        delivery_ids = list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))
        enqueue_deliveries([ref for i in delivery_ids for ref in ((i, 0), (i, None))])
        assert get_queue(FRESH).count == 2 * EVENTS
        workers = [start_worker("--threads", threads) for _ in range(2)]
        receiver.wait_for(EVENTS, timeout=60)
        wait_until(
            lambda: get_queue(FRESH).count == 0 and not in_progress(),
            timeout=30,
            message=workers[0].output(),
        )
    assert sorted(responder.tries.values()) == [1] * EVENTS
    assert set(responder.tries) == set(ids)
    endpoint_id = db.session.scalar(select(Endpoint.id))
    counts = check_invariants(
        (0, 0, 0),
        accepted=ids,
        acknowledged={(i, endpoint_id) for i in responder.acked},
        allow_waiting=False,
    )
    assert counts == {"succeeded": EVENTS}


def in_progress() -> int:
    db.session.rollback()
    return db.session.scalar(
        select(func.count()).where(Delivery.status.in_(("pending", "retrying", "in_flight")))
    )
