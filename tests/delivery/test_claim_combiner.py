"""Claims asked for at the same moment go out in one statement, each to its own thread."""

from __future__ import annotations

import contextlib
import threading

import pytest
from sqlalchemy import select

from webhook_admin.delivery.attempt import claim_committed
from webhook_admin.delivery.claim_combiner import ClaimCombiner, ClaimFailed
from webhook_admin.extensions import db
from webhook_admin.models import Delivery
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


class HeldClaims:
    """A `claim_many` whose first call waits for `release()`, so that the test can line
    other threads up behind it; every call's ids are recorded."""

    def __init__(self, claim_many):
        self.claim_many = claim_many
        self.calls: list[list[int]] = []
        self.first_call_started = threading.Event()
        self._released = threading.Event()

    def __call__(self, ids: list[int]):
        self.calls.append(list(ids))
        if len(self.calls) == 1:
            self.first_call_started.set()
            assert self._released.wait(10)
        return self.claim_many(ids)

    def release(self) -> None:
        self._released.set()


def claim_lined_up(combiner: ClaimCombiner, held: HeldClaims, ids: list[int], context=None):
    """The first id's thread starts a statement (held); the others queue behind it; then the
    statement is let go. Returns thread index -> claim (or the exception it raised)."""
    answers: dict[int, object] = {}

    def claim(index: int, delivery_id: int) -> None:
        with context() if context else contextlib.nullcontext():
            try:
                answers[index] = combiner.claim(delivery_id)
            except Exception as exc:
                answers[index] = exc

    threads = [threading.Thread(target=claim, args=(i, d)) for i, d in enumerate(ids)]
    threads[0].start()
    assert held.first_call_started.wait(10)  # the first one leads: its statement is out
    for thread in threads[1:]:
        thread.start()
    waiting_in(combiner, len(ids) - 1)
    held.release()
    for thread in threads:
        thread.join(10)
    return answers


def waiting_in(combiner: ClaimCombiner, count: int) -> None:
    """Until `count` threads wait behind the statement on its way."""
    for _ in range(1000):
        with combiner._lock:
            if len(combiner._waiting) >= count:
                return
        threading.Event().wait(0.005)
    raise AssertionError(f"{count} threads never queued")


def test_claims_asked_for_during_a_statement_go_out_together_in_the_next():
    held = HeldClaims(lambda ids: {i: f"claim-{i}" for i in ids})
    combiner = ClaimCombiner(held)
    answers = claim_lined_up(combiner, held, [1, 2, 3])
    assert [sorted(ids) for ids in held.calls] == [[1], [2, 3]]
    assert answers == {0: "claim-1", 1: "claim-2", 2: "claim-3"}
    # Alone, a thread claims for itself at once.
    assert combiner.claim(4) == "claim-4"
    assert held.calls[-1] == [4]


def test_a_delivery_asked_for_twice_in_one_statement_is_claimed_for_one_thread():
    held = HeldClaims(lambda ids: {i: f"claim-{i}" for i in ids})
    combiner = ClaimCombiner(held)
    answers = claim_lined_up(combiner, held, [1, 7, 7])
    assert held.calls == [[1], [7]]  # asked for once
    assert sorted(map(str, (answers[1], answers[2]))) == ["None", "claim-7"]


def test_a_failed_statement_fails_each_of_its_threads_and_the_next_one_runs():
    failures = {"left": 1}

    def claim_many(ids):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("database went away")
        return {i: f"claim-{i}" for i in ids}

    held = HeldClaims(claim_many)
    combiner = ClaimCombiner(held)
    answers = claim_lined_up(combiner, held, [1, 2])
    assert isinstance(answers[0], ClaimFailed)
    assert isinstance(answers[0].__cause__, ConnectionError)
    assert "delivery 1" in str(answers[0])
    assert answers[1] == "claim-2"  # its own statement, after the failed one
    assert combiner.claim(3) == "claim-3"  # nobody is left holding the lead


def test_combined_claims_on_the_database_claim_each_delivery_once(app, post_event, receiver):
    endpoint = create_endpoint(EndpointInput(receiver.url, ["transaction.declined"]), "test")[0]
    db.session.commit()
    for n in range(3):
        post_event("transaction.declined", event_id=f"evt_combined_{n}")
    first, second, third = db.session.scalars(select(Delivery.id).order_by(Delivery.id))
    db.session.commit()
    held = HeldClaims(lambda ids: claim_committed(ids, lease_seconds=60))
    combiner = ClaimCombiner(held)
    answers = claim_lined_up(combiner, held, [first, second, third, second], app.app_context)
    # Two statements for four threads (the one asked for twice is claimed once).
    assert [sorted(ids) for ids in held.calls] == [[first], [second, third]]
    claims = [a for a in answers.values() if a is not None]
    assert sorted(c.delivery_id for c in claims) == [first, second, third]
    assert {c.endpoint_id for c in claims} == {endpoint.id}
    assert all(c.attempt_number == 1 for c in claims)
    statuses = db.session.execute(select(Delivery.status)).scalars().all()
    assert statuses == ["in_flight"] * 3
    # Claimed already: asked again, nothing is claimed twice.
    assert combiner.claim(first) is None


@pytest.mark.parametrize("count", [1, 2])
def test_claim_committed_takes_only_waiting_deliveries(app, post_event, receiver, count):
    create_endpoint(EndpointInput(receiver.url, ["transaction.declined"]), "test")
    db.session.commit()
    for n in range(count):
        post_event("transaction.declined", event_id=f"evt_once_{n}")
    ids = list(db.session.scalars(select(Delivery.id)))
    db.session.commit()
    assert sorted(claim_committed(ids, lease_seconds=60)) == sorted(ids)
    assert claim_committed(ids, lease_seconds=60) == {}
