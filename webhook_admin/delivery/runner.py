"""A bounded pool of delivery threads inside one worker process.

RQ hands us delivery ids one at a time; each id is attempted on a pool thread so one process
keeps many requests in flight. Durability does not depend on the pool: a claim is a lease in
the database, so work lost with a crashed process is recovered by the sweeper."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from flask import Flask

from ..clock import utcnow
from ..extensions import db
from ..models import DeliveryStatus, ErrorClass
from ..queues import RETRY_QUEUE, enqueue_deliveries, schedule_delivery
from .attempt import AttemptReport, claim_for_attempt, endpoint_of, record_attempts, send_claimed
from .attempt_writer import AttemptWriter
from .endpoint_gate import EndpointGate
from .health_writes import RecentSuccessWrites
from .http_sender import Sender
from .send_cache import EndpointCache, EnvelopeCache

log = logging.getLogger(__name__)


def make_sender(settings) -> Sender:
    return Sender(
        allow_private=settings.allow_private_networks,
        connect_timeout=settings.connect_timeout,
        ca_bundle=settings.ca_bundle,
        egress_proxy=settings.egress_proxy,
        pool_maxsize=settings.worker_threads,
    )


class DeliveryRunner:
    def __init__(self, app: Flask, threads: int, backlog: int = 0):
        """`backlog`: deliveries that may wait for a free thread, so that the feeding thread
        can fetch its next batch while the threads still have work (with none, every thread
        that finished while the dispatcher was fetching sat idle: a third of them in
        scenario 2 of the benchmarks)."""
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.sender = make_sender(self.settings)
        self._slots = threading.BoundedSemaphore(threads + backlog)
        # Each delivery thread keeps one app context (and so one session) for its life:
        # pushing a context and building a session per delivery cost ~10 % of the worker's CPU.
        self._executor = ThreadPoolExecutor(
            threads, thread_name_prefix="delivery", initializer=self._enter_app_context
        )
        self.concurrent = threads > 1
        self.gate = EndpointGate(self.settings.per_endpoint_concurrency)
        self.endpoints = EndpointCache(app.extensions["secret_box"])
        self.envelopes = EnvelopeCache()
        # thread name -> delivery id, for the System page and shutdown logs.
        self.in_flight: dict[str, int] = {}
        # With a pool, attempts are recorded in batches by one writer thread; a single
        # thread (tests, a bare RQ worker) records each attempt itself before returning.
        self.recent_success_writes = RecentSuccessWrites()
        self.writer = None
        if self.concurrent:
            self.writer = AttemptWriter(
                app, self._follow_up, self.recent_success_writes, capacity=4 * threads
            )
            self.writer.start()

    def submit(self, delivery_id: int, endpoint_id: int | None = None) -> None:
        """Hand a delivery to a free thread; blocks while all threads are busy (backpressure).
        The caller passes the endpoint id when it knows it (saves a read)."""
        self._slots.acquire()
        try:
            self._executor.submit(self._run, delivery_id, endpoint_id)
        except RuntimeError:  # shutting down: the sweeper will pick it up again
            self._slots.release()
            raise

    def _enter_app_context(self) -> None:
        self.app.app_context().push()

    def run_inline(self, delivery_id: int, endpoint_id: int | None = None) -> None:
        """Attempt in the calling thread, in a context of its own (the caller's session and
        its objects are left alone)."""
        with self.app.app_context():
            try:
                self._run(delivery_id, endpoint_id, release=False)
            finally:
                db.session.remove()

    def _run(self, delivery_id: int, endpoint_id: int | None, release: bool = True) -> None:
        thread = threading.current_thread().name
        self.in_flight[thread] = delivery_id
        next_ids: list[int] = []
        try:
            if endpoint_id is None:
                endpoint_id = endpoint_of(delivery_id)
            if endpoint_id is not None:
                next_ids = self._attempt_within_endpoint_cap(delivery_id, endpoint_id)
        except Exception:
            # Not swallowed: the claim's lease expires and the sweeper records the attempt
            # as interrupted and sends it again. Log it for the operator.
            log.exception("delivery attempt crashed delivery_id=%s", delivery_id)
            db.session.rollback()
        finally:
            db.session.close()  # ends any transaction, forgets this delivery's objects
            self.in_flight.pop(thread, None)
            if release:
                self._slots.release()
        for next_id in next_ids:
            if release:
                self.submit(next_id, endpoint_id)
            else:
                self.run_inline(next_id, endpoint_id)

    def _attempt_within_endpoint_cap(self, delivery_id: int, endpoint_id: int) -> list[int]:
        """Attempt unless the endpoint is at its cap (then the delivery is parked, unclaimed);
        returns parked deliveries of the same endpoint to run next."""
        ticket = self.gate.enter(endpoint_id, delivery_id)
        if ticket is None:
            db.session.rollback()
            return []
        try:
            work = claim_for_attempt(delivery_id, self.settings, self.endpoints, self.envelopes)
            if work is not None:
                finished = send_claimed(work, self.sender, self.settings)
                timed_out = finished.row["error_class"] == ErrorClass.TIMEOUT
                self.gate.note_result(endpoint_id, timed_out)
                if self.writer is not None:
                    self.writer.put(finished)
                else:
                    for report in record_attempts(
                        [finished], self.settings, self.recent_success_writes
                    ):
                        self._follow_up(report)
        finally:
            next_ids = self.gate.leave(endpoint_id, ticket)
        return next_ids

    @staticmethod
    def _follow_up(report: AttemptReport) -> None:
        if report.status == DeliveryStatus.RETRYING:
            follow_up(report.delivery_id, report.attempt_number, report.retry_at)

    def shutdown(self) -> None:
        """Finish and record every attempt in flight, then stop. Deliveries still waiting
        for a thread are dropped unclaimed: they stay due in the database (the sweeper
        queues them again), so a warm shutdown takes one attempt's time, not two."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self.writer is not None:
            self.writer.stop()
        self.sender.close()


def follow_up(delivery_id: int, attempts_made: int, retry_at: datetime | None) -> None:
    """Queue the next try: now if it is already due, else at its time via RQ's scheduler."""
    if retry_at is None or retry_at <= utcnow():
        enqueue_deliveries([(delivery_id, attempts_made)], RETRY_QUEUE)
    else:
        schedule_delivery(delivery_id, attempts_made, retry_at)


_runner: DeliveryRunner | None = None


def install_runner(runner: DeliveryRunner | None) -> None:
    global _runner
    _runner = runner


def current_runner() -> DeliveryRunner | None:
    return _runner
