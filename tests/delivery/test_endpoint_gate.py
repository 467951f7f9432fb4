"""The per-endpoint in-flight cap: a slow endpoint cannot take every delivery thread."""

from __future__ import annotations

import threading
import time

from tests.support.receiver import Receiver, Reply
from webhook_admin.delivery.endpoint_gate import EndpointGate
from webhook_admin.delivery.runner import DeliveryRunner
from webhook_admin.extensions import db
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


def test_gate_parks_over_the_cap_and_hands_back_in_order():
    gate = EndpointGate(cap=2)
    assert gate.enter(1, 10) and gate.enter(1, 11)
    assert not gate.enter(1, 12) and not gate.enter(1, 13)
    assert gate.enter(2, 20)  # another endpoint is not affected
    assert gate.leave(1) == 12
    assert gate.parked_count() == 1


def test_a_hanging_endpoint_holds_at_most_its_cap_while_a_healthy_one_flows(
    environ, app, post_event
):
    from webhook_admin import create_app

    release = threading.Event()

    def hang_until_released(request):
        release.wait(10)
        return Reply()

    slow = Receiver(hang_until_released).start()
    fast = Receiver().start()
    try:
        for url, event in ((slow.url, "transaction.declined"), (fast.url, "transaction.approved")):
            create_endpoint(EndpointInput(url, [event]), "test")
        db.session.commit()
        for n in range(6):
            post_event("transaction.declined", event_id=f"evt_slow_{n}")
        for n in range(6):
            post_event("transaction.approved", event_id=f"evt_fast_{n}")
        capped = create_app(environ | {"WEBHOOK_ENDPOINT_CONCURRENCY": "2"})
        runner = DeliveryRunner(capped, threads=4)
        for delivery_id in range(1, 13):
            runner.submit(delivery_id)
        fast.wait_for(6, timeout=10)  # the healthy endpoint is served while the slow one hangs
        time.sleep(0.3)
        assert len(slow.requests) == 2  # only the cap reached the hanging endpoint
        release.set()
        slow.wait_for(6, timeout=10)  # the parked ones go out as slots free
        runner.shutdown()
    finally:
        release.set()
        slow.stop()
        fast.stop()
