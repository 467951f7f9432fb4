"""The per-endpoint in-flight cap: a slow endpoint cannot take every delivery thread."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.receiver import Receiver, Reply
from webhook_admin.delivery.endpoint_gate import EndpointGate
from webhook_admin.delivery.runner import DeliveryRunner
from webhook_admin.extensions import db
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


class FakeClock:
    """Monotonic seconds we move by hand (the gate's notion of "slow")."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class HangingReceiver:
    """A receiver that holds every request until `release()` (or 10 s)."""

    def __init__(self):
        self._released = threading.Event()
        self.receiver = Receiver(self._hang).start()

    def _hang(self, request):
        self._released.wait(10)
        return Reply()

    def release(self) -> None:
        self._released.set()


@pytest.fixture
def hanging():
    running = HangingReceiver()
    yield running
    running.release()
    running.receiver.stop()


def test_gate_parks_over_the_cap_and_hands_back_in_order():
    gate = EndpointGate(cap=2)
    gate.note_result(1, timed_out=False)  # answered in time before: the full cap
    first, _second = gate.enter(1, 10), gate.enter(1, 11)
    assert first is not None and _second is not None
    assert gate.enter(1, 12) is None and gate.enter(1, 13) is None
    assert gate.enter(2, 20) is not None  # another endpoint is not affected
    assert gate.leave(1, first) == [12]
    assert gate.parked_count() == 1


def test_an_endpoint_slow_to_answer_gets_a_quarter_of_the_cap():
    clock = FakeClock()
    gate = EndpointGate(cap=8, slow_after=1.0, clock=clock)
    gate.note_result(1, timed_out=False)
    gate.note_result(2, timed_out=False)
    assert gate.enter(1, 10) is not None  # in flight, no answer yet
    clock.now += 1.5  # its oldest request has waited past slow_after
    assert gate.enter(1, 11) is not None
    assert gate.enter(1, 12) is None  # 2 in flight = 8 // 4: parked
    assert all(gate.enter(2, n) is not None for n in range(20, 28))  # another keeps 8


def test_an_endpoint_starts_slow_until_its_first_answer_in_time():
    gate = EndpointGate(cap=8)
    tickets = [gate.enter(1, n) for n in range(4)]
    assert tickets[2:] == [None, None]  # never answered here: a quarter of the cap
    gate.note_result(1, timed_out=True)  # a timeout is no answer
    assert gate.enter(1, 4) is None
    gate.note_result(1, timed_out=False)
    # Answered in time: the full cap, so one leave hands back every parked delivery.
    assert gate.leave(1, tickets[0]) == [2, 3, 4]


def test_an_endpoint_answering_in_time_borrows_idle_threads_up_to_its_burst():
    """Cap 2, burst 3 (up to 6), a pool of 8: borrowing while fewer than 4 are in flight."""
    gate = EndpointGate(cap=2, burst=3, threads=8)
    gate.note_result(1, timed_out=False)
    tickets = [gate.enter(1, n) for n in range(6)]
    # The 4th goes in while 3 are in flight; then 4 (half the pool) are: back to the cap.
    assert [t is not None for t in tickets] == [True] * 4 + [False] * 2
    # Alone, with the whole pool idle, an endpoint stops at burst x cap.
    lone = EndpointGate(cap=2, burst=3, threads=100)
    lone.note_result(1, timed_out=False)
    assert sum(lone.enter(1, n) is not None for n in range(10)) == 6


def test_borrowing_stops_while_half_the_pool_is_busy_elsewhere():
    gate = EndpointGate(cap=2, burst=4, threads=8)
    for endpoint in (1, 2, 3):
        gate.note_result(endpoint, timed_out=False)
    first = [gate.enter(1, n) for n in range(4)]
    assert None not in first  # borrowed 2 over its cap
    # Half the pool is in flight: the next endpoint gets its cap and no more.
    assert [gate.enter(2, n) is not None for n in range(10, 14)] == [True, True, False, False]
    # Endpoint 1 leaves one: it is still over its cap, so its parked ones stay parked,
    # and endpoint 2's parked ones wait for endpoint 2's own slots.
    assert gate.enter(1, 4) is None
    assert gate.leave(1, first[0]) == []
    assert gate.parked_count() == 3


def test_slow_endpoints_never_borrow():
    clock = FakeClock()
    gate = EndpointGate(cap=8, burst=4, threads=128, clock=clock)
    # Never answered (slow start) and timed out: a quarter of the cap, pool or not.
    assert sum(gate.enter(1, n) is not None for n in range(10)) == 2
    gate.note_result(2, timed_out=True)
    assert sum(gate.enter(2, n) is not None for n in range(10, 20)) == 2
    # Answered, but its oldest request has waited `slow_after`: no new ones at all.
    gate.note_result(3, timed_out=False)
    assert gate.enter(3, 20) is not None
    clock.now += 1.0
    assert gate.enter(3, 21) is not None  # 1 in flight, slow cap 2
    assert gate.enter(3, 22) is None


def test_a_timed_out_endpoint_stays_capped_until_it_answers_in_time():
    clock = FakeClock()
    gate = EndpointGate(cap=8, clock=clock)
    gate.note_result(1, timed_out=True)
    tickets = [gate.enter(1, n) for n in range(3)]
    assert tickets[2] is None and None not in tickets[:2]
    gate.note_result(1, timed_out=False)
    # Recovered: its cap is 8 again, so one leave hands back every parked delivery that fits.
    for n in range(3, 6):
        assert gate.enter(1, n) is not None
    assert gate.leave(1, tickets[0]) == [2]
    assert gate.parked_count() == 0


@pytest.mark.parametrize(("answered_before", "held"), [(True, 4), (False, 1)])
def test_a_hanging_endpoint_holds_at_most_its_cap_while_a_healthy_one_flows(
    environ, app, post_event, hanging, answered_before, held
):
    """The cap is 4; an endpoint that never answered in this process gets a quarter."""
    from webhook_admin import create_app

    slow = hanging.receiver
    fast = Receiver().start()
    try:
        slow_endpoint = create_endpoint(EndpointInput(slow.url, ["transaction.declined"]), "t")[0]
        create_endpoint(EndpointInput(fast.url, ["transaction.approved"]), "test")
        db.session.commit()
        for n in range(6):
            post_event("transaction.declined", event_id=f"evt_slow_{n}")
        for n in range(6):
            post_event("transaction.approved", event_id=f"evt_fast_{n}")
        capped = create_app(environ | {"WEBHOOK_ENDPOINT_CONCURRENCY": "4"})
        runner = DeliveryRunner(capped, threads=6)
        if answered_before:
            runner.gate.note_result(slow_endpoint.id, timed_out=False)
        for delivery_id in range(1, 13):
            runner.submit(delivery_id)
        fast.wait_for(6, timeout=10)  # the healthy endpoint is served while the slow one hangs
        time.sleep(0.3)
        assert len(slow.requests) == held  # only the cap reached the hanging endpoint
        hanging.release()
        slow.wait_for(6, timeout=10)  # the parked ones go out as slots free
        runner.shutdown()
    finally:
        fast.stop()


def test_batch_claims_send_each_delivery_once_and_park_over_the_cap(
    environ, app, post_event, hanging
):
    """The dispatcher's path: reserve threads, claim a group in one statement, start each.
    A delivery listed twice is sent once; over the endpoint's cap the rest are parked
    unclaimed and go out as slots free; one that cannot be claimed gives its slot back."""
    from sqlalchemy import select, update

    from webhook_admin import create_app
    from webhook_admin.models import Delivery

    receiver = hanging.receiver
    endpoint = create_endpoint(EndpointInput(receiver.url, ["transaction.declined"]), "test")[0]
    db.session.commit()
    for n in range(5):
        post_event("transaction.declined", event_id=f"evt_batch_{n}")
    ids = list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))
    db.session.execute(  # the last one is already done: it cannot be claimed
        update(Delivery).where(Delivery.id == ids[-1]).values(status="succeeded")
    )
    db.session.commit()
    # No borrowing of idle threads over the cap (burst 1): the cap is exactly 3.
    capped = create_app(
        environ | {"WEBHOOK_ENDPOINT_CONCURRENCY": "3", "WEBHOOK_ENDPOINT_BURST": "1"}
    )
    runner = DeliveryRunner(capped, threads=8)
    runner.gate.note_result(endpoint.id, timed_out=False)  # out of slow start: the cap is 3
    # 6 entries, 5 ids: the first one twice, then the done one (admitted, then not
    # claimable: it hands its endpoint slot to a parked one).
    group = [(i, endpoint.id) for i in [ids[0], ids[0], ids[-1], *ids[1:-1]]]
    assert runner.reserve(len(group)) == len(group)
    with capped.app_context(), db.engine.connect() as connection:
        runner.claim_and_start(connection.execution_options(isolation_level="AUTOCOMMIT"), group)
    receiver.wait_for(3, timeout=10)
    time.sleep(0.3)
    assert len(receiver.requests) == 3  # the cap; the last one waits unclaimed
    assert runner.gate.parked_count() == 1
    db.session.rollback()
    statuses = dict(db.session.execute(select(Delivery.id, Delivery.status)).all())
    assert sorted(statuses.values()) == ["in_flight"] * 3 + ["pending", "succeeded"]
    hanging.release()
    receiver.wait_for(4, timeout=10)
    runner.shutdown()
    time.sleep(0.2)
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(
        f"evt_batch_{n}" for n in range(4)
    )
    assert runner.reserve(8) == 8  # every reserved thread was given back


def test_a_give_back_that_frees_several_parked_deliveries_sends_them_all(
    environ, app, post_event, receiver
):
    """The dispatcher reserved every thread; one delivery of its batch cannot be claimed,
    and giving its endpoint slot back frees three parked deliveries (the cap grew on an
    answer). The first takes the reserved thread, the others wait for threads until the
    batch is started; all go out and every thread comes back. (The deadlock this path and
    the delivery threads' could reach is covered by tests/faults/test_claim_race.py, which
    stalled 2 runs in 6 before: docs/decisions.md.)"""
    from sqlalchemy import select, update

    from webhook_admin import create_app
    from webhook_admin.models import Delivery

    endpoint = create_endpoint(EndpointInput(receiver.url, ["transaction.declined"]), "test")[0]
    db.session.commit()
    for n in range(7):
        post_event("transaction.declined", event_id=f"evt_hand_{n}")
    ids = list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))
    done, parked, batch = ids[0], ids[1:4], ids[4:]
    db.session.execute(update(Delivery).where(Delivery.id == done).values(status="succeeded"))
    db.session.commit()
    runner = DeliveryRunner(create_app(environ), threads=4)  # cap 8, 2 while never answered
    held = [runner.gate.enter(endpoint.id, n) for n in (-1, -2)]  # two in flight elsewhere
    assert [runner.gate.enter(endpoint.id, n) for n in parked] == [None] * 3
    runner.gate.note_result(endpoint.id, timed_out=False)  # an answer: the cap is 8 again
    group = [(n, endpoint.id) for n in (done, *batch)]
    assert runner.reserve(len(group)) == 4  # every thread of the runner
    finished = threading.Event()

    def dispatch():
        with runner.app.app_context(), db.engine.connect() as connection:
            runner.claim_and_start(
                connection.execution_options(isolation_level="AUTOCOMMIT"), group
            )
        finished.set()

    threading.Thread(target=dispatch, daemon=True).start()
    assert finished.wait(10), "claim_and_start never returned"
    receiver.wait_for(6, timeout=10)
    for ticket in held:
        runner.gate.leave(endpoint.id, ticket)
    runner.shutdown()
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(
        f"evt_hand_{n}" for n in range(1, 7)
    )
    assert runner.reserve(4) == 4  # every thread was given back
