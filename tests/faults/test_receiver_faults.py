"""Receivers that fail in every way we know: each try recorded, retried per schedule, and a
429's Retry-After always respected."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import select

from tests.faults.fault_server import CUT, OK, RESET, Fault, FaultServer, hang
from tests.faults.invariants import check_invariants
from tests.support.processes import wait_until
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery

SCHEDULE = (1, 1)
RETRY_AFTER = 3
FAULTS = {
    "http_500": (Fault(status=500), "http"),
    "reset": (RESET, "connect"),
    "cut_mid_body": (CUT, "connect"),  # a 200 cut short is not an acknowledgement
    "timeout": (hang(3), "timeout"),
    "429_retry_after": (Fault(status=429, headers={"Retry-After": str(RETRY_AFTER)}), "http"),
}


def first_fails(fault: Fault):
    return lambda webhook_id, nth: fault if nth == 1 else OK


def all_done() -> bool:
    db.session.rollback()
    return all(s == "succeeded" for s in db.session.scalars(select(Delivery.status)))


@pytest.fixture
def servers():
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(FaultServer(first_fails(fault)))
            for name, (fault, _) in FAULTS.items()
        }


def test_each_receiver_fault_is_recorded_and_retried_per_schedule(
    app, post_event, add_endpoint, start_worker, servers
):
    endpoints = {name: add_endpoint(server.url).id for name, server in servers.items()}
    assert post_event(event_id="evt_faults").status_code == 202
    worker = start_worker(
        WEBHOOK_RETRY_SCHEDULE=",".join(map(str, SCHEDULE)), WEBHOOK_DELIVERY_TIMEOUT="1"
    )
    wait_until(all_done, timeout=30, interval=0.2, message=worker.output())
    for name, server in servers.items():
        first, second = server.tries("evt_faults")  # exactly two tries: one fault, one 200
        gap = second.at - first.at
        # The wait counts from the start of the failed try (jitter: -20 %).
        floor = RETRY_AFTER if name == "429_retry_after" else SCHEDULE[0] * 0.8
        assert gap >= floor - 0.05, f"{name}: retried after {gap:.2f}s, floor {floor}s"
        assert gap <= floor + 4, f"{name}: retried after {gap:.2f}s, too late"
    attempts = {
        (endpoint_id, number): (status, error_class)
        for endpoint_id, number, status, error_class in db.session.execute(
            select(
                Attempt.endpoint_id, Attempt.number, Attempt.response_status, Attempt.error_class
            )
        )
    }
    for name, (_, error_class) in FAULTS.items():
        status, recorded = attempts[(endpoints[name], 1)]
        if error_class is not None:
            assert recorded == error_class, f"{name}: recorded {recorded}"
        assert attempts[(endpoints[name], 2)] == (200, None)
    assert attempts[(endpoints["429_retry_after"], 1)][0] == 429
    acked = {("evt_faults", endpoints[name]) for name, s in servers.items() if s.acked}
    assert check_invariants(SCHEDULE, ["evt_faults"], acked, allow_waiting=False) == {
        "succeeded": len(FAULTS)
    }


def test_retry_after_longer_than_the_whole_schedule_is_still_respected(
    app, post_event, add_endpoint, start_worker
):
    always_busy = Fault(status=429, headers={"Retry-After": "1"})
    with FaultServer(lambda webhook_id, nth: always_busy) as server:
        add_endpoint(server.url)
        post_event(event_id="evt_busy")
        worker = start_worker(WEBHOOK_RETRY_SCHEDULE="0,0")
        wait_until(lambda: len(server.tries("evt_busy")) == 3, timeout=20, message=worker.output())
        tries = server.tries("evt_busy")
    gaps = [b.at - a.at for a, b in zip(tries, tries[1:], strict=False)]
    assert all(gap >= 1 - 0.05 for gap in gaps), gaps
    wait_until(
        lambda: db.session.rollback() or db.session.scalar(select(Delivery.status)) == "failed"
    )
    check_invariants((0, 0), ["evt_busy"], allow_waiting=False)
