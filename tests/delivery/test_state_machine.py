"""The delivery state machine as a stateful property test (issue 12).

Hypothesis drives the real delivery code in this process (no worker processes) against the
real database and a real receiver on 127.0.0.1, in random orders: tries answered 200, 500,
410, 429 with Retry-After, a timeout, a reset or a 200 cut short; workers killed before or
after sending (the receiver may have acknowledged); workers that stall until their lease
has expired and been recovered, then record their answer late (at once, or after other
tries of the delivery were claimed, sent or killed meanwhile); lease recovery, the clock
moving on, manual retries, endpoints enabled again after a 410. Only the clock is stubbed
(frozen, moved by `clock.advance`); the sender's deadline is real time, so a "hang" is a
receiver that holds the connection past the 0.3 s delivery timeout.

After every step, from the database and the receiver's log:
1. a delivery has at most len(schedule) + 1 + (manual retries asked for it) attempt rows,
   and its receiver got at most that many requests for it (and no more than its claims);
2. its attempt numbers are 1..n, and attempts_count = n when it is not in flight
   (n + 1 when it is: the claim counts the try before it is recorded);
3. no two sends of one delivery are in flight at once: a claim never succeeds while a
   claim we hold still holds the lease, and the receiver never has two requests for one
   delivery open at once;
4. nothing acknowledged is failed: once a 2xx was recorded (on time, or late after a
   stall) the delivery is never `failed`, whatever later tries (or resends) say;
and nothing final is claimable, nothing waiting lacks a due time. Each recorded outcome is
also checked against the schedule (jitter, Retry-After, when to give up). At the end
(teardown) the liveness check: recover, move the clock past the longest wait and try every
waiting delivery (answered 500) until none waits; each reaches succeeded or failed."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select, update

from tests.conftest import clean_database, signed_headers, valid_data
from tests.conftest import test_environ as make_environ
from tests.support.state_machine_receiver import (
    CUT,
    ERROR,
    GONE,
    HANG,
    OK,
    RESET,
    Answer,
    ScriptedReceiver,
    too_many,
)
from webhook_admin import clock, create_app
from webhook_admin.delivery.attempt import (
    FinishedAttempt,
    claim_committed,
    record_attempts,
    send_claimed,
    work_for,
)
from webhook_admin.delivery.claims import Claim
from webhook_admin.delivery.lease_recovery import recover_expired_leases
from webhook_admin.delivery.retry_policy import JITTER
from webhook_admin.delivery.runner import install_runner, make_sender
from webhook_admin.delivery.send_cache import EndpointCache, EnvelopeCache
from webhook_admin.delivery.sweeper import sweep_once
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus, Endpoint, EventType
from webhook_admin.queues import get_redis
from webhook_admin.services.catalog import seed_catalog
from webhook_admin.services.delivery_state import request_retry
from webhook_admin.services.endpoints import EndpointInput, create_endpoint, enable_endpoint

SCHEDULE = (1, 2, 4)
MAX_TRIES = len(SCHEDULE) + 1
LEASE_SECONDS = 5.0
OVERRIDES = {
    "WEBHOOK_RETRY_SCHEDULE": ",".join(map(str, SCHEDULE)),
    "WEBHOOK_DELIVERY_TIMEOUT": "0.3",
    "WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS),
}
ON_POSTGRESQL = bool(os.environ.get("TEST_DATABASE_URL"))
EPSILON = 0.01  # seconds: datetimes are stored to the microsecond

# Two endpoints, two events: "a" gets both, "b" only the approval: three deliveries.
ENDPOINTS = (
    ("/hook/a", ("transaction.approved", "transaction.declined")),
    ("/hook/b", ("transaction.approved",)),
)
EVENTS = (("evt_sm_1", "transaction.approved"), ("evt_sm_2", "transaction.declined"))

DELIVERIES = st.sampled_from((0, 1, 2))
RETRY_AFTERS = (1, 6)  # within the schedule's waits, and beyond the longest
ANSWERS = st.sampled_from((OK, ERROR, GONE, *map(too_many, RETRY_AFTERS), RESET, CUT, HANG))
LONGEST_WAIT = max(max(SCHEDULE) * (1 + JITTER), *RETRY_AFTERS)

EXAMPLES, EXAMPLES_PG, STEPS = 250, 100, 40

pytestmark = pytest.mark.timeout(600)


@dataclass(frozen=True)
class Target:
    """One delivery of the test: where its requests go and what identifies them."""

    delivery_id: int
    path: str
    webhook_id: str


@pytest.fixture(scope="module", autouse=True)
def machine_app(migrated_database, redis_server):
    """One app, one receiver and one sender for all examples (each example cleans the
    database itself: Hypothesis machines cannot take function-scoped fixtures)."""
    app = create_app(make_environ(migrated_database, redis_server.url, **OVERRIDES))
    sender = make_sender(app.config["SETTINGS"])
    with ScriptedReceiver() as receiver, app.app_context():
        DeliveryStateMachine.app = app
        DeliveryStateMachine.receiver = receiver
        DeliveryStateMachine.sender = sender
        try:
            yield app
        finally:
            db.session.remove()
            sender.close()
            install_runner(None)
            clock.reset()


class DeliveryStateMachine(RuleBasedStateMachine):
    app = None
    receiver: ScriptedReceiver
    sender = None

    def __init__(self):
        super().__init__()
        self.settings = self.app.config["SETTINGS"]
        assert self.settings.retry_schedule == SCHEDULE
        assert self.settings.lease_duration == LEASE_SECONDS
        db.session.rollback()
        clock.reset()
        clean_database()
        seed_catalog()
        # The schedule's invariants, without the per-type deadlines (tests/delivery/
        # test_deadlines.py): a Retry-After of hours would otherwise end a delivery expired.
        db.session.execute(update(EventType).values(expires_after_seconds=None))
        db.session.commit()
        get_redis().flushdb()
        self.receiver.clear()
        clock.freeze()
        self.endpoint_cache = EndpointCache(self.app.extensions["secret_box"])
        self.envelope_cache = EnvelopeCache()
        self.targets = self._create_deliveries()
        self.manual: Counter[int] = Counter()  # manual retries granted, per delivery
        self.claims: Counter[int] = Counter()  # claims won, per delivery
        self.acknowledged: set[int] = set()  # a 2xx was recorded (ever: a resend's failure
        # does not undo what the receiver acknowledged)
        # Stalled workers holding an answer they have not recorded: (delivery, attempt, answer)
        self.stalled: list[tuple[int, FinishedAttempt, Answer]] = []
        self.failed_step = False  # an assertion failed: teardown skips the liveness run

    def _create_deliveries(self) -> list[Target]:
        paths = {}
        for path, types in ENDPOINTS:
            endpoint, _ = create_endpoint(
                EndpointInput(self.receiver.url(path), list(types)), "test"
            )
            db.session.commit()
            paths[endpoint.id] = path
        client = self.app.test_client()
        for event_id, event_type in EVENTS:
            body = json.dumps(
                {"type": event_type, "data": valid_data(event_type, amount=100)}
            ).encode()
            response = client.post(
                "/api/v1/events", data=body, headers=signed_headers(body, event_id)
            )
            assert response.status_code == 202, response.get_data(as_text=True)
        rows = db.session.execute(
            select(Delivery.id, Delivery.endpoint_id, Delivery.event_id)
        ).all()
        db.session.commit()
        targets = sorted(
            (Target(row.id, paths[row.endpoint_id], row.event_id) for row in rows),
            key=lambda t: (t.webhook_id, t.path),
        )
        assert len(targets) == 3
        return targets

    # --- the pieces: claim, send, record, recover ------------------------------------------

    def _delivery(self, d: int):
        row = db.session.execute(
            select(Delivery).where(Delivery.id == self.targets[d].delivery_id)
        ).scalar_one()
        values = {c.name: getattr(row, c.name) for c in Delivery.__table__.columns}
        db.session.commit()
        return SimpleNamespace(**values)

    def _attempt(self, d: int, number: int):
        row = db.session.execute(
            select(Attempt.succeeded, Attempt.error_class, Attempt.response_status).where(
                Attempt.delivery_id == self.targets[d].delivery_id, Attempt.number == number
            )
        ).one_or_none()
        db.session.commit()
        return row

    def _claim(self, d: int) -> Claim | None:
        """Claim the delivery if it is due (as a worker's job would)."""
        before = self._delivery(d)
        delivery_id = self.targets[d].delivery_id
        claim = claim_committed([delivery_id], self.settings.lease_duration).get(delivery_id)
        if claim is None:
            return None
        self.claims[d] += 1
        held = {f.work.claim.token for i, f, _ in self.stalled if i == d}
        # Invariant 3: a claim is won only from a waiting delivery, never from under a live
        # claim (one we hold whose lease was not recovered).
        assert before.status in DeliveryStatus.WAITING, (
            f"delivery {d} claimed while {before.status}"
        )
        assert before.lease_token is None or before.lease_token not in held, (
            f"delivery {d} claimed while a claim we hold still has its lease"
        )
        assert claim.attempt_number == before.attempts_count + 1
        return claim

    def _send(self, claim: Claim, answer: Answer) -> FinishedAttempt:
        self.receiver.answer = answer
        work = work_for(claim, self.endpoint_cache, self.envelope_cache)
        return send_claimed(work, self.sender, self.settings)

    def _record(self, d: int, finished: FinishedAttempt, answer: Answer) -> bool:
        """Record an attempt (on time or late); True if its lease still held.

        What the sender got (`finished.row`) is the truth the checks use, not the answer
        asked for: on a slow machine a 200 may come after the 0.3 s deadline (a timeout)."""
        before = self._delivery(d)
        claim, got = finished.work.claim, finished.row
        reports = record_attempts([finished], self.settings)
        row = self._attempt(d, claim.attempt_number)
        assert row is not None, f"attempt {claim.attempt_number} of delivery {d} not recorded"
        # On time or late, the row holds the answer (a late one replaces the interrupted row).
        assert (row.succeeded, row.error_class, row.response_status) == (
            got["succeeded"],
            got["error_class"],
            got["response_status"],
        ), f"attempt {claim.attempt_number} of delivery {d} ({answer!r}) recorded as {row}"
        if row.succeeded:
            self.acknowledged.add(d)
        event(f"recorded {'late' if not reports else 'on time'}: {_result(got)}")
        if reports:
            [report] = reports
            self._check_outcome(d, finished, answer, report.status, report.retry_at)
            return True
        # Late: recovery recorded the try as interrupted; a 2xx makes the delivery
        # succeeded unless another try of it is in flight (that one decides).
        if got["succeeded"] and before.status != DeliveryStatus.IN_FLIGHT:
            assert self._delivery(d).status == DeliveryStatus.SUCCEEDED, (
                f"delivery {d}: a late 2xx left it {self._delivery(d).status}"
            )
        return False

    def _check_outcome(self, d, finished: FinishedAttempt, answer: Answer, status, retry_at):
        """The recorded outcome is the schedule's: success, give up, or wait as it says."""
        number, got = finished.work.claim.attempt_number, finished.row
        if got["succeeded"]:
            assert status == DeliveryStatus.SUCCEEDED, f"delivery {d}: {answer!r} -> {status}"
        elif got["response_status"] == 410 or number > len(SCHEDULE):
            assert status == DeliveryStatus.FAILED, (
                f"delivery {d}: try {number} answered {answer!r} -> {status}"
            )
        else:
            assert status == DeliveryStatus.RETRYING, (
                f"delivery {d}: try {number} answered {answer!r} -> {status}"
            )
            asked = answer.retry_after if got["response_status"] == 429 else None
            delay = (retry_at - finished.started_at).total_seconds()
            self._check_wait(d, number, delay, answer, asked)

    @staticmethod
    def _check_wait(d, number: int, delay: float, answer, retry_after=None) -> None:
        base = SCHEDULE[number - 1]
        low, high = base * (1 - JITTER), base * (1 + JITTER)
        if retry_after is not None:  # never sooner than the receiver asked
            low, high = max(low, retry_after), max(high, retry_after)
        assert low - EPSILON <= delay <= high + EPSILON, (
            f"delivery {d}: after try {number} ({answer}) the next waits {delay:.3f} s, "
            f"want {low:.2f}..{high:.2f}"
        )

    def _recover(self, via_sweeper: bool) -> None:
        if via_sweeper:
            sweep_once()  # recovers, then queues the due ones in Redis (no worker takes them)
            return
        recovered = recover_expired_leases(self.settings.retry_schedule)
        db.session.commit()
        now = clock.utcnow()
        for r in recovered:
            # An interrupted try counts against the schedule and backs off like a failure.
            if r.attempts_made > len(SCHEDULE):
                assert r.status == DeliveryStatus.FAILED, f"{r}: schedule used up"
            else:
                assert r.status == DeliveryStatus.RETRYING, f"{r}: should retry"
                delay = (r.retry_at - now).total_seconds()
                self._check_wait(f"id {r.delivery_id}", r.attempts_made, delay, "interrupted")

    def _expire_and_recover(self, via_sweeper: bool = False) -> None:
        clock.advance(LEASE_SECONDS + 1)
        self._recover(via_sweeper)

    # --- rules -----------------------------------------------------------------------------

    def _begin(self) -> None:
        self.failed_step = True  # until the invariants pass after this step

    @rule(d=DELIVERIES, answer=ANSWERS)
    def try_delivery(self, d, answer):
        """A worker's job: claim if due, send, record."""
        self._begin()
        claim = self._claim(d)
        if claim is not None:
            assert self._record(d, self._send(claim, answer), answer), "lease lost on time"

    @rule(d=DELIVERIES)
    def kill_before_send(self, d):
        """The worker dies after its claim, before the request: a try without a request."""
        self._begin()
        self._claim(d)

    @rule(d=DELIVERIES, answer=st.sampled_from((OK, ERROR)))
    def kill_after_send(self, d, answer):
        """The worker dies after the receiver answered (maybe a 2xx): never recorded."""
        self._begin()
        claim = self._claim(d)
        if claim is not None:
            self._send(claim, answer)

    @rule(d=DELIVERIES, answer=ANSWERS, via_sweeper=st.booleans())
    def stall(self, d, answer, via_sweeper):
        """The worker stalls after its answer, past its lease; the lease is recovered (the
        try recorded interrupted), then the worker wakes and records its answer, late."""
        self._begin()
        claim = self._claim(d)
        if claim is not None:
            finished = self._send(claim, answer)
            self._expire_and_recover(via_sweeper)
            assert not self._record(d, finished, answer), "the lease held past its expiry"

    @precondition(lambda self: len(self.stalled) < 2)
    @rule(d=DELIVERIES, answer=ANSWERS)
    def stall_begin(self, d, answer):
        """A worker stalls after its answer, holding it; anything may happen meanwhile."""
        self._begin()
        claim = self._claim(d)
        if claim is not None:
            self.stalled.append((d, self._send(claim, answer), answer))

    @precondition(lambda self: self.stalled)
    @rule()
    def stall_end(self):
        """The longest-stalled worker wakes and records its answer (late if its lease was
        recovered meanwhile, on time if not)."""
        self._begin()
        d, finished, answer = self.stalled.pop(0)
        self._record(d, finished, answer)

    @rule(via_sweeper=st.booleans())
    def expire_and_recover(self, via_sweeper):
        self._begin()
        self._expire_and_recover(via_sweeper)

    @rule(seconds=st.sampled_from((0.5, 1, 2, 3, 5)))
    def advance_clock(self, seconds):
        self._begin()
        clock.advance(seconds)

    @rule(d=DELIVERIES)
    def manual_retry(self, d):
        """An operator's retry, through the service the CLI and the page call."""
        self._begin()
        delivery = db.session.get(Delivery, self.targets[d].delivery_id)
        status = delivery.status
        granted = request_retry(delivery)
        db.session.commit()
        event(f"manual retry of a {status} delivery: {'granted' if granted else 'refused'}")
        if granted:
            self.manual[d] += 1

    @rule()
    def enable_endpoints(self):
        """An operator enables again the endpoints a 410 disabled."""
        self._begin()
        self._enable_endpoints()

    def _enable_endpoints(self) -> None:
        for endpoint in db.session.scalars(select(Endpoint).where(Endpoint.enabled.is_(False))):
            enable_endpoint(endpoint, "test")
        db.session.commit()

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def delivery_invariants(self):
        self._begin()
        numbers: dict[int, list[int]] = {t.delivery_id: [] for t in self.targets}
        for delivery_id, number in db.session.execute(
            select(Attempt.delivery_id, Attempt.number).order_by(Attempt.number)
        ):
            numbers[delivery_id].append(number)
        db.session.commit()
        for d, target in enumerate(self.targets):
            delivery = self._delivery(d)
            rows = numbers[target.delivery_id]
            allowed = MAX_TRIES + self.manual[d]
            requests = self.receiver.count(target.path, target.webhook_id)
            # 1. bounded tries: rows, claims and requests
            assert len(rows) <= allowed, f"delivery {d}: {len(rows)} attempts, allowed {allowed}"
            assert delivery.attempts_count <= allowed, (
                f"delivery {d}: {delivery.attempts_count} tries counted, allowed {allowed}"
            )
            assert requests <= allowed, f"delivery {d}: {requests} requests, allowed {allowed}"
            assert requests <= self.claims[d], f"delivery {d}: {requests} requests, fewer claims"
            # 2. attempt numbers 1..n, counted
            assert rows == list(range(1, len(rows) + 1)), f"delivery {d}: attempts {rows}"
            in_flight = delivery.status == DeliveryStatus.IN_FLIGHT
            assert delivery.attempts_count == len(rows) + in_flight, (
                f"delivery {d} ({delivery.status}): {len(rows)} attempt rows, "
                f"attempts_count {delivery.attempts_count}"
            )
            # 4. nothing acknowledged is failed
            if d in self.acknowledged:
                assert delivery.status != DeliveryStatus.FAILED, (
                    f"delivery {d}: a 2xx was recorded, yet it is failed"
                )
            # gave up only when the tries were used up, or on a 410
            if delivery.status == DeliveryStatus.FAILED:
                assert delivery.attempts_count >= MAX_TRIES or delivery.last_status_code == 410, (
                    f"delivery {d} failed after {delivery.attempts_count} tries"
                )
            # and the states are coherent: final ones unclaimable, waiting ones due
            if delivery.status in DeliveryStatus.FINAL:
                assert delivery.lease_token is None and delivery.next_attempt_at is None, (
                    f"delivery {d} is {delivery.status} yet claimable"
                )
            elif delivery.status in DeliveryStatus.WAITING:
                assert delivery.next_attempt_at is not None, f"delivery {d} waits for nothing"
            else:
                assert in_flight and delivery.lease_token and delivery.lease_expires_at
        # 3. never two requests of one delivery open at once at the receiver
        assert not self.receiver.overlaps, self.receiver.overlaps
        self.failed_step = False

    # --- liveness --------------------------------------------------------------------------

    def teardown(self):
        try:
            if not self.failed_step:
                self._check_liveness()
        finally:
            clock.reset()

    def _check_liveness(self):
        """Every delivery ends succeeded or failed within its tries left: recover, wait out
        the longest gap, try everything due (answered 500), until nothing waits."""
        for d, finished, answer in self.stalled:  # the stalled workers wake
            self._record(d, finished, answer)
        self.stalled.clear()
        self._enable_endpoints()
        tries = Counter()
        for _ in range(MAX_TRIES + max(self.manual.values(), default=0) + 2):
            self._expire_and_recover()
            waiting = [
                (d, self._delivery(d))
                for d in range(len(self.targets))
                if self._delivery(d).status in DeliveryStatus.WAITING
            ]
            if not waiting:
                break
            latest = max(delivery.next_attempt_at for _, delivery in waiting)
            gap = (latest - clock.utcnow()).total_seconds()
            assert gap <= LONGEST_WAIT + EPSILON, (
                f"the next try is {gap:.1f} s away, beyond the schedule's longest wait"
            )
            clock.advance(max(gap, 0) + EPSILON)
            for d, _ in waiting:
                claim = self._claim(d)
                assert claim is not None, f"delivery {d} is due but cannot be claimed"
                tries[d] += 1
                self._record(d, self._send(claim, ERROR), ERROR)
            self.delivery_invariants()
        for d in range(len(self.targets)):
            delivery = self._delivery(d)
            event(f"ends {delivery.status} after {delivery.attempts_count} tries")
            assert delivery.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED), (
                f"delivery {d} is still {delivery.status} after {tries[d]} tries at the end"
            )
            assert tries[d] <= MAX_TRIES + self.manual[d]


def event(text: str) -> None:
    """What the run reached, for --hypothesis-show-statistics (also outside a run)."""
    if currently_in_test_context():
        hypothesis_event(text)


def _result(row: dict) -> str:
    return "2xx" if row["succeeded"] else str(row["response_status"] or row["error_class"])


SETTINGS = settings(
    # More for a longer local hunt: STATE_MACHINE_EXAMPLES=2000.
    max_examples=int(
        os.environ.get("STATE_MACHINE_EXAMPLES") or (EXAMPLES_PG if ON_POSTGRESQL else EXAMPLES)
    ),
    stateful_step_count=STEPS,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DeliveryStateMachine.TestCase.settings = SETTINGS
TestDeliveryStateMachine = DeliveryStateMachine.TestCase


def test_a_late_2xx_during_another_try_is_not_lost():
    """The smallest case the machine found (before settle_acknowledged). Try 1 is answered
    200 but its worker stalls; its lease expires and is recovered (interrupted, retrying);
    try 2 is claimed and its worker dies before sending. Then try 1's worker records its
    2xx while try 2 is in flight. Try 2's lease is recovered as interrupted, and the next
    tries fail (500): the delivery must end succeeded, not failed with a recorded 2xx."""
    state = DeliveryStateMachine()
    state.delivery_invariants()
    state.stall_begin(d=0, answer=OK)
    state.delivery_invariants()
    state.expire_and_recover(via_sweeper=False)
    state.delivery_invariants()
    state.advance_clock(seconds=2)
    state.delivery_invariants()
    state.kill_before_send(d=0)
    state.delivery_invariants()
    state.teardown()
    assert state._delivery(0).status == DeliveryStatus.SUCCEEDED
