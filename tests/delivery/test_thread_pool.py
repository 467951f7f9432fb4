"""The delivery pool: the deadlock rule is part of its API (a delivery thread cannot wait for
a free thread), and every slot comes back, whatever the work did."""

from __future__ import annotations

import threading

import pytest

from webhook_admin.delivery.thread_pool import DeliveryPool, PoolClosed, WaitOnDeliveryThread


def run_on_pool(pool: DeliveryPool, work) -> object:
    """What `work()` returned or raised, run on one of the pool's threads."""
    done, outcome = threading.Event(), {}

    def body():
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001  (handed back to the test)
            outcome["error"] = exc
        finally:
            done.set()

    pool.start_when_free(body)
    assert done.wait(10)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_delivery_thread_that_asks_to_wait_for_a_thread_is_refused_at_once():
    pool = DeliveryPool(2)
    try:
        with pytest.raises(WaitOnDeliveryThread):
            run_on_pool(pool, lambda: pool.start_when_free(lambda: None))
        with pytest.raises(WaitOnDeliveryThread):
            run_on_pool(pool, lambda: pool.reserve(1))
        # Not waiting is allowed there: the other thread is free.
        assert run_on_pool(pool, lambda: pool.start_if_free(lambda: None)) is True
    finally:
        pool.shutdown()
    assert pool.reserve(2) == 2  # every slot came back


def test_start_if_free_never_waits_and_reserved_slots_are_the_callers():
    pool = DeliveryPool(3)
    release = threading.Event()
    try:
        assert pool.reserve(5) == 3  # all there is, without waiting for more
        assert pool.start_if_free(lambda: None) is False  # all reserved: nothing started
        pool.start_reserved(release.wait, 10)
        pool.unreserve(2)
        assert pool.start_if_free(lambda: None) is True
        release.set()
    finally:
        pool.shutdown()
    assert pool.reserve(3) == 3


def test_a_slot_comes_back_when_its_work_raises():
    pool = DeliveryPool(1)
    finished = threading.Event()

    def crash():
        try:
            raise ValueError("boom")
        finally:
            finished.set()

    try:
        pool.start_when_free(crash)
        assert finished.wait(10)
        pool.start_when_free(lambda: None)  # would block forever if the slot were lost
    finally:
        pool.shutdown()
    assert pool.reserve(1) == 1


def test_a_start_after_shutdown_gives_the_slot_back_and_says_so():
    pool = DeliveryPool(1)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.start_when_free(lambda: None)
    assert pool.reserve(1) == 1


def test_every_thread_is_started_when_the_pool_is_built():
    # Started on demand, the first burst after a worker starts paid a thread start (and its
    # app context) per delivery on the dispatcher's thread (issue 16).
    entered = []
    pool = DeliveryPool(12, initializer=lambda: entered.append(threading.get_ident()))
    try:
        assert pool.started_threads() == 12
        assert len(set(entered)) == 12  # each ran its initializer before any work came
    finally:
        pool.shutdown()


def test_work_that_raises_is_logged_and_its_thread_serves_on(caplog):
    # No Future holds the error (the pool is not an executor): unlogged, it would be lost.
    pool = DeliveryPool(1)
    ran_on = []
    try:
        pool.start_when_free(lambda: (ran_on.append(threading.get_ident()), 1 / 0))
        assert run_on_pool(pool, threading.get_ident) == ran_on[0]  # the same, live thread
    finally:
        pool.shutdown()
    crashes = [r for r in caplog.records if r.name == "webhook_admin.delivery.thread_pool"]
    assert len(crashes) == 1 and crashes[0].exc_info[0] is ZeroDivisionError


def test_a_pool_whose_thread_could_not_start_refuses_work_and_keeps_its_slots(caplog):
    calls = []

    def initializer():
        calls.append(1)
        if len(calls) == 2:
            raise OSError("no app context")

    pool = DeliveryPool(3, initializer=initializer)
    try:
        with pytest.raises(PoolClosed, match="could not start"):
            pool.start_when_free(lambda: None)
        assert "could not start" in caplog.text
    finally:
        pool.shutdown()
    assert pool.reserve(3) == 3


def test_shutdown_finishes_the_work_already_started():
    pool = DeliveryPool(2)
    done = []
    gate = threading.Event()
    for n in range(2):
        pool.start_when_free(lambda n=n: (gate.wait(10), done.append(n)))
    threading.Timer(0.2, gate.set).start()  # the work is still waiting when shutdown is called
    pool.shutdown()
    assert sorted(done) == [0, 1]


def keep_starting(pool: DeliveryPool, ran: list, accepted: list, stop: threading.Event) -> None:
    """Start work on `pool` whenever a thread is free, until stopped or refused."""
    while not stop.is_set():
        try:
            if pool.start_if_free(ran.append, 1):
                accepted.append(1)
        except PoolClosed:
            return


def test_work_started_while_the_pool_shuts_down_either_runs_or_is_refused():
    # Queued behind shutdown's end marks, a start would be accepted and never run: its slot
    # and its delivery's claim would be stranded (the claim until its lease expired).
    for _ in range(50):
        pool = DeliveryPool(2)
        ran, accepted, stop = [], [], threading.Event()
        starter = threading.Thread(target=keep_starting, args=(pool, ran, accepted, stop))
        starter.start()
        pool.shutdown()
        stop.set()
        starter.join()
        assert len(ran) == len(accepted)
        assert pool.reserve(2) == 2  # every slot came back
