"""A bounded pool of delivery threads inside one worker process.

RQ hands us delivery ids one at a time; each id is attempted on a pool thread so one process
keeps many requests in flight. Durability does not depend on the pool: a claim is a lease in
the database, so work lost with a crashed process is recovered by the sweeper."""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime
from functools import partial

from flask import Flask

from ..clock import utcnow
from ..extensions import db
from ..models import DeliveryStatus, ErrorClass
from ..queues import RETRY_QUEUE, enqueue_deliveries, schedule_delivery
from ..write_lock import serialized_writes
from .attempt import (
    AttemptReport,
    claim_committed,
    endpoint_of,
    record_attempts,
    send_claimed,
    work_for,
)
from .attempt_writer import AttemptWriter
from .claim_combiner import ClaimCombiner
from .claims import Claim, claim_deliveries
from .endpoint_gate import EndpointGate
from .http_sender import Sender
from .send_cache import EndpointCache, EnvelopeCache
from .thread_pool import DeliveryPool

log = logging.getLogger(__name__)


def make_sender(settings, threads: int | None = None) -> Sender:
    """A pool of connections per (scheme, IP, port) kept for as many posts as there are
    delivery threads: 100 endpoints that are paths on one host:port (a partner platform
    with one URL per merchant) may have every thread in flight to that one pool, and a
    pool smaller than that closes each connection over its size when the post returns
    (urllib3 does not block: it discards), so the next post opens a new one."""
    return Sender(
        allow_private=settings.allow_private_networks,
        connect_timeout=settings.connect_timeout,
        ca_bundle=settings.ca_bundle,
        egress_proxy=settings.egress_proxy,
        pool_maxsize=threads or settings.worker_threads,
    )


class DeliveryRunner:
    """One worker process's deliveries: the thread pool (thread_pool.py), the per-endpoint
    gate with its parked deliveries (endpoint_gate.py), the caches and the attempt writer.

    Work enters in two ways: `submit` (one delivery id, from an RQ job) and, for a batch the
    fresh dispatcher took, `reserve` then `claim_and_start`. On a delivery thread, a
    delivery is claimed, sent and recorded; then the deliveries its endpoint had parked go
    on free threads, or one after the other on this one (it never waits for a thread)."""

    def __init__(self, app: Flask, threads: int):
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.sender = make_sender(self.settings, threads)
        # Each delivery thread keeps one app context (and so one session) for its life:
        # pushing a context and building a session per delivery cost ~10 % of the worker's CPU.
        self.pool = DeliveryPool(threads, initializer=self._enter_app_context)
        self.concurrent = threads > 1
        self.gate = EndpointGate(
            self.settings.per_endpoint_concurrency,
            burst=self.settings.endpoint_burst,
            threads=threads,
        )
        self.endpoints = EndpointCache(app.extensions["secret_box"])
        self.envelopes = EnvelopeCache(app.extensions["secret_box"])
        # Parked and retried deliveries are claimed one at a time by their threads; claims
        # asked for at the same moment go out in one statement.
        self.claims = ClaimCombiner(lambda ids: claim_committed(ids, self.settings.lease_duration))
        # thread name -> delivery id, for the System page and shutdown logs.
        self.in_flight: dict[str, int] = {}
        # With a pool, attempts are recorded in batches by one writer thread; a single
        # thread (tests, a bare RQ worker) records each attempt itself before returning.
        self.writer = None
        if self.concurrent:
            self.writer = AttemptWriter(app, self._queue_next_try, capacity=4 * threads)
            self.writer.start()

    def submit(self, delivery_id: int, endpoint_id: int | None = None) -> None:
        """Hand a delivery to a free thread; blocks while all threads are busy (backpressure).
        The caller passes the endpoint id when it knows it (saves a read)."""
        self.pool.start_when_free(self._deliver_by_id, delivery_id, endpoint_id, True)

    def _start_parked_on_free_threads(self, endpoint_id: int, delivery_ids) -> list[int]:
        """Start these parked deliveries on free threads, without waiting for one; returns
        those left without a thread."""
        return [
            delivery_id
            for delivery_id in delivery_ids
            if not self.pool.start_if_free(self._deliver_by_id, delivery_id, endpoint_id, True)
        ]

    # --- batches: the fresh dispatcher claims many deliveries in one statement -------------

    def reserve(self, most: int) -> int:
        """Wait for a free thread, then take every other free one, up to `most` in all.
        Claims are made only for reserved threads, so no claimed delivery waits (its lease
        runs from the claim)."""
        return self.pool.reserve(most)

    def unreserve(self, count: int) -> None:
        self.pool.unreserve(count)

    def claim_and_start(self, connection, deliveries: list[tuple[int, int]]) -> None:
        """Claim these (delivery id, endpoint id) in one statement on `connection` and start
        each one claimed on a reserved thread (one reserved per delivery). Deliveries over
        their endpoint's cap are parked unclaimed, as `submit` does."""
        admitted, seen = [], set()
        for delivery_id, endpoint_id in deliveries:
            # A delivery queued twice (the sweeper and a retry raced) is claimed once.
            ticket = None if delivery_id in seen else self.gate.enter(endpoint_id, delivery_id)
            if ticket is None:
                self.pool.unreserve()
            else:
                seen.add(delivery_id)
                admitted.append((delivery_id, endpoint_id, ticket))
        if not admitted:
            return
        without_thread: list[tuple[int, int]] = []  # parked deliveries a slot freed
        try:
            try:
                with serialized_writes():
                    claims = claim_deliveries(
                        connection, [d for d, _, _ in admitted], self.settings.lease_duration
                    )
            except Exception:
                for _, endpoint_id, ticket in admitted:
                    without_thread.extend(self._return_unused_reservation(endpoint_id, ticket))
                raise
            for delivery_id, endpoint_id, ticket in admitted:
                claim = claims.get(delivery_id)
                if claim is None:  # taken by someone else, not due, or its endpoint disabled
                    without_thread.extend(self._return_unused_reservation(endpoint_id, ticket))
                    continue
                try:
                    self.pool.start_reserved(
                        self._deliver_then_drain_parked,
                        claim.delivery_id,
                        partial(self._send_and_record, claim, ticket),
                        True,
                    )
                except RuntimeError:  # shutting down: the lease expires, the sweeper resends
                    self.gate.leave(endpoint_id, ticket)
                    raise
        finally:
            # Parked deliveries that found no free thread. Waiting for one is safe only now,
            # off the delivery threads and with nothing reserved by this call left.
            for delivery_id, endpoint_id in without_thread:
                self.submit(delivery_id, endpoint_id)

    def _return_unused_reservation(self, endpoint_id: int, ticket: float) -> list[tuple[int, int]]:
        """A reserved thread and an endpoint slot that were not used after all. The thread
        goes to a parked delivery of the endpoint if the slot freed one; returns the parked
        deliveries that found no free thread, for the caller to start later."""
        parked = deque(self.gate.leave(endpoint_id, ticket))
        if parked:
            self.pool.start_reserved(self._deliver_by_id, parked.popleft(), endpoint_id, True)
        else:
            self.pool.unreserve()
        return [(d, endpoint_id) for d in self._start_parked_on_free_threads(endpoint_id, parked)]

    # --- on a delivery thread --------------------------------------------------------------

    def _enter_app_context(self) -> None:
        self.app.app_context().push()

    def run_inline(self, delivery_id: int, endpoint_id: int | None = None) -> None:
        """Attempt in the calling thread, in a context of its own (the caller's session and
        its objects are left alone)."""
        with self.app.app_context():
            try:
                self._deliver_by_id(delivery_id, endpoint_id, False)
            finally:
                db.session.remove()

    def _deliver_by_id(
        self, delivery_id: int, endpoint_id: int | None, offload_parked: bool
    ) -> None:
        def attempt() -> tuple[int | None, list[int]]:
            known = endpoint_id if endpoint_id is not None else endpoint_of(delivery_id)
            if known is None:
                return None, []
            return self._claim_and_send_unless_parked(delivery_id, known)

        self._deliver_then_drain_parked(delivery_id, attempt, offload_parked)

    def _deliver_then_drain_parked(self, delivery_id: int, attempt, offload_parked: bool) -> None:
        """Run `attempt` (returns the endpoint and its parked deliveries that may go now),
        then those parked deliveries: on free threads when there are any (`offload_parked`),
        else one after the other on this thread (the pool never lets it wait for one).
        Each with the thread's bookkeeping: in-flight name, crash log, session end."""
        thread = threading.current_thread().name
        endpoint_id, waiting = None, deque()
        while True:
            self.in_flight[thread] = delivery_id
            try:
                endpoint_id, parked = attempt()
                waiting.extend(parked)
            except Exception:
                # Not swallowed: the claim's lease expires and the sweeper records the
                # attempt as interrupted and sends it again. Log it for the operator.
                log.exception("delivery attempt crashed delivery_id=%s", delivery_id)
                db.session.rollback()
            finally:
                db.session.close()  # ends any transaction, forgets this delivery's objects
                self.in_flight.pop(thread, None)
            if not waiting or endpoint_id is None:
                return
            delivery_id = waiting.popleft()
            if offload_parked:
                waiting = deque(self._start_parked_on_free_threads(endpoint_id, waiting))
            attempt = partial(self._claim_and_send_unless_parked, delivery_id, endpoint_id)

    def _claim_and_send_unless_parked(
        self, delivery_id: int, endpoint_id: int
    ) -> tuple[int, list[int]]:
        """Claim and send unless the endpoint is at its cap (then the delivery is parked,
        unclaimed); returns the endpoint and its parked deliveries to run next."""
        ticket = self.gate.enter(endpoint_id, delivery_id)
        if ticket is None:
            db.session.rollback()
            return endpoint_id, []
        try:
            claim = self.claims.claim(delivery_id)
        except BaseException:
            self.gate.leave(endpoint_id, ticket)
            raise
        if claim is None:
            return endpoint_id, self.gate.leave(endpoint_id, ticket)
        return self._send_and_record(claim, ticket)

    def _send_and_record(self, claim: Claim, ticket: float) -> tuple[int, list[int]]:
        """Send a claimed delivery, hand its attempt to be recorded, and leave its endpoint's
        gate (`ticket`); returns the endpoint and its parked deliveries to run next."""
        try:
            work = work_for(claim, self.endpoints, self.envelopes)
            finished = send_claimed(work, self.sender, self.settings)
            timed_out = finished.row["error_class"] == ErrorClass.TIMEOUT
            self.gate.note_result(claim.endpoint_id, timed_out)
            if self.writer is not None:
                self.writer.put(finished)
            else:
                for report in record_attempts([finished], self.settings):
                    self._queue_next_try(report)
        finally:
            next_ids = self.gate.leave(claim.endpoint_id, ticket)
        return claim.endpoint_id, next_ids

    @staticmethod
    def _queue_next_try(report: AttemptReport) -> None:
        if report.status == DeliveryStatus.RETRYING:
            follow_up(report.delivery_id, report.attempt_number, report.retry_at)

    def shutdown(self) -> None:
        """Finish and record every attempt in flight, then stop."""
        self.pool.shutdown()
        if self.writer is not None:
            self.writer.stop()
        self.sender.close()


def follow_up(delivery_id: int, attempts_made: int, retry_at: datetime | None) -> bool:
    """Queue the next try: now if it is already due, else at its time via RQ's scheduler.
    False if Redis refused (the sweeper queues it when it is due)."""
    if retry_at is None or retry_at <= utcnow():
        return enqueue_deliveries([(delivery_id, attempts_made)], RETRY_QUEUE)
    return schedule_delivery(delivery_id, attempts_made, retry_at)


_runner: DeliveryRunner | None = None


def install_runner(runner: DeliveryRunner | None) -> None:
    global _runner
    _runner = runner


def current_runner() -> DeliveryRunner | None:
    return _runner
