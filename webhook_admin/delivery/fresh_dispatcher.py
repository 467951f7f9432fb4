"""Drain the fresh-deliveries RQ queue in batches straight into the delivery threads.

RQ's worker loop spends 6-8 Redis round trips of bookkeeping on every job (status, started
and finished registries, cleanup), which capped one process at ~180 deliveries/s here, below
what one process can send. Fresh delivery jobs carry nothing but a delivery id, encoded in
their job id (`<prefix>_delivery-<id>-<attempts>`), so this thread pops up to a batch of job
ids at once and looks up their endpoints (one query); an id the database does not have is
logged and dropped (another deployment's job). Then, as delivery threads come free, it
reserves every free one and claims that many deliveries in one statement, each claimed one
starting at once on its reserved thread (a claim never waits for a thread: its lease runs).
Claiming one by one on each thread had cost a pooled connection and a round trip per
delivery. Retries and maintenance jobs still go through RQ's worker and scheduler.

A popped job's hash is marked `started` (with the time) and left to expire, in the same
round trip: a delivery parked behind its endpoint's in-flight cap may wait a while before
it is claimed, and the sweeper believes a young `started` job is live (deleting the hash
made it re-queue every parked delivery as a duplicate on each pass).

Nothing here is needed for durability: a popped id that never reaches a claim (the process
died) is still due in the database, and the sweeper queues it again once its job is stale.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from ..queues import STALE_QUEUED_SECONDS, delivery_id_of, queue_prefix
from ..rq_internals import mark_started
from .attempt import autocommit_connection, endpoints_of
from .runner import DeliveryRunner

log = logging.getLogger(__name__)
BLOCK_SECONDS = 1
# A popped job's hash outlives the sweeper's staleness window, then goes (the database
# records everything about the delivery from the claim on).
POPPED_JOB_TTL_SECONDS = 2 * STALE_QUEUED_SECONDS


NOT_OURS = (
    "job for delivery %s that this database does not have: another deployment's job on a "
    "shared Redis? not sent (queue namespace %s)"
)


def refuse_unknown(delivery_id: int) -> None:
    """Log a job naming a delivery id this database has no row for (it is never sent)."""
    log.warning(NOT_OURS, delivery_id, queue_prefix())


class FreshDispatcher(threading.Thread):
    def __init__(self, runner: DeliveryRunner, redis: Redis, queue_name: str, batch: int = 50):
        super().__init__(name="fresh-dispatcher", daemon=True)
        self.runner = runner
        self.redis = redis
        self.queue_key = Queue(queue_name, connection=redis).key
        self.batch = batch
        self._stop_event = threading.Event()
        self._connection: Connection | None = None
        # Popped and never claimed (the worker is stopping): worker.py queues them again.
        self.left_over: list[int] = []

    def stop(self) -> None:
        self._stop_event.set()
        self.join(BLOCK_SECONDS + 5)

    def run(self) -> None:
        with self.runner.app.app_context():
            try:
                while not self._stop_event.is_set():
                    try:
                        self._dispatch()
                        return
                    except Exception:
                        # A bug here must not stop fresh deliveries for the process's life
                        # (what was popped stays due in the database).
                        log.exception("fresh dispatcher failed, restarting it")
                        self._close_connection()
                        self._stop_event.wait(1)
            finally:
                self._close_connection()

    def _dispatch(self) -> None:
        pending: deque[tuple[int, int]] = deque()  # (delivery id, endpoint id), popped
        try:
            while not self._stop_event.is_set():
                # Fetch the next batch while half of this one is still to start, so threads
                # that finish meanwhile find work (waiting for an empty list left a third
                # idle).
                if len(pending) <= self.batch // 2 and not self._fetch(pending):
                    continue
                if not pending:
                    continue
                reserved = self.runner.pool.reserve(len(pending))
                if self._stop_event.is_set():  # stopping while we waited: claim nothing more
                    self.runner.pool.unreserve(reserved)
                    return
                group = [pending.popleft() for _ in range(reserved)]
                try:
                    self.runner.claim_and_start(self._db(), group)
                except SQLAlchemyError as exc:
                    self._database_down(len(group), exc)
                except RuntimeError:  # the runner shut down under us (warm shutdown)
                    self.left_over.extend(delivery_id for delivery_id, _ in group)
                    return
        finally:
            # Their job hashes say "started", and the sweeper believes a young started job
            # for STALE_QUEUED_SECONDS: dropped here, they waited a minute after every
            # SIGTERM of a rolling restart (found by tests/deploy/test_migration_roll.py).
            self.left_over.extend(delivery_id for delivery_id, _ in pending)

    def _fetch(self, pending: deque) -> bool:
        """Pop a batch (waiting only when nothing is pending) and add it with each delivery's
        endpoint; False after an outage (the caller goes round again)."""
        try:
            job_ids = self._take_batch(block=not pending)
        except RedisError as exc:
            log.warning("fresh queue unavailable, retrying: %s", exc)
            if not pending:
                self._stop_event.wait(2)
            return bool(pending)
        delivery_ids = []
        for job_id in job_ids:
            delivery_id = delivery_id_of(job_id)
            if delivery_id is None:
                log.error("unexpected job on the fresh queue job_id=%s, dropped", job_id)
            else:
                delivery_ids.append(delivery_id)
        if not delivery_ids:
            return True
        try:
            endpoint_ids = endpoints_of(self._db(), delivery_ids)
        except SQLAlchemyError as exc:
            self._database_down(len(delivery_ids), exc)
            return False
        # A delivery without a row is not ours (another database's job) or is gone (retention,
        # a reset database): nothing to send.
        for delivery_id in delivery_ids:
            if delivery_id in endpoint_ids:
                pending.append((delivery_id, endpoint_ids[delivery_id]))
            else:
                refuse_unknown(delivery_id)
        return True

    def _db(self) -> Connection:
        """This thread's own connection, in autocommit: from the pool it queued behind up to
        128 delivery threads, and every thread it had not fed yet sat idle."""
        if self._connection is None:
            self._connection = autocommit_connection()
        return self._connection

    def _database_down(self, dropped: int, exc: Exception) -> None:
        """Popped deliveries that were not claimed are still due in the database: the sweeper
        queues them again. Start over on a new connection after a pause."""
        log.warning("database unavailable, %d deliveries left to the sweeper: %s", dropped, exc)
        self._close_connection()
        self._stop_event.wait(2)

    def _close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None

    def _take_batch(self, block: bool = True) -> list[str]:
        raw = self.redis.lpop(self.queue_key, self.batch) or []
        if not raw and block:
            popped = self.redis.blpop([self.queue_key], timeout=BLOCK_SECONDS)
            raw = [popped[1]] if popped else []
        job_ids = [value.decode() for value in raw]
        if job_ids:
            with self.redis.pipeline(transaction=False) as pipe:
                mark_started(pipe, job_ids, POPPED_JOB_TTL_SECONDS)
                pipe.execute()
        return job_ids
