"""Drain the fresh-deliveries RQ queue in batches straight into the delivery threads.

RQ's worker loop spends 6-8 Redis round trips of bookkeeping on every job (status, started
and finished registries, cleanup), which capped one process at ~180 deliveries/s here, below
what one process can send. Fresh delivery jobs carry nothing but a delivery id, encoded in
their job id (`delivery-<id>-<attempts>`), so this thread pops up to a batch of job ids at
once and hands the ids to the runner. Retries and maintenance jobs still go through RQ's
worker and scheduler.

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
from datetime import UTC, datetime

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus
from rq.utils import utcformat
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..models import Delivery
from ..queues import STALE_QUEUED_SECONDS
from .runner import DeliveryRunner

log = logging.getLogger(__name__)
BLOCK_SECONDS = 1
# A popped job's hash outlives the sweeper's staleness window, then goes (the database
# records everything about the delivery from the claim on).
POPPED_JOB_TTL_SECONDS = 2 * STALE_QUEUED_SECONDS
deliveries = Delivery.__table__
ENDPOINTS_OF = select(deliveries.c.id, deliveries.c.endpoint_id).where(
    deliveries.c.id.in_(bindparam("ids", expanding=True))
)


def delivery_id_of(job_id: str) -> int | None:
    """`delivery-<id>-<suffix>` -> id; None for anything else."""
    parts = job_id.split("-")
    if len(parts) >= 3 and parts[0] == "delivery" and parts[1].isdigit():
        return int(parts[1])
    return None


class FreshDispatcher(threading.Thread):
    def __init__(self, runner: DeliveryRunner, redis: Redis, queue_name: str, batch: int = 50):
        super().__init__(name="fresh-dispatcher", daemon=True)
        self.runner = runner
        self.redis = redis
        self.queue_key = Queue(queue_name, connection=redis).key
        self.batch = batch
        self._stop_event = threading.Event()
        self._connection: Connection | None = None

    def stop(self) -> None:
        self._stop_event.set()
        self.join(BLOCK_SECONDS + 5)

    def run(self) -> None:
        try:
            self._dispatch_until_stopped()
        finally:
            self._close_connection()

    def _dispatch_until_stopped(self) -> None:
        while not self._stop_event.is_set():
            try:
                job_ids = self._take_batch()
            except RedisError as exc:
                log.warning("fresh queue unavailable, retrying: %s", exc)
                self._stop_event.wait(2)
                continue
            delivery_ids = []
            for job_id in job_ids:
                delivery_id = delivery_id_of(job_id)
                if delivery_id is None:
                    log.error("unexpected job on the fresh queue job_id=%s, dropped", job_id)
                else:
                    delivery_ids.append(delivery_id)
            if not delivery_ids:
                continue
            # One read for the whole batch instead of one per delivery thread.
            try:
                endpoint_ids = self._endpoints_of(delivery_ids)
            except SQLAlchemyError as exc:
                # Popped ids stay due in the database; the sweeper queues them again.
                log.warning(
                    "database unavailable, %d deliveries left to the sweeper: %s",
                    len(delivery_ids),
                    exc,
                )
                self._stop_event.wait(2)
                continue
            for delivery_id in delivery_ids:
                if delivery_id not in endpoint_ids:
                    continue  # gone (retention or a reset database): nothing to send
                try:
                    self.runner.submit(delivery_id, endpoint_ids[delivery_id])
                except RuntimeError:
                    # The runner shut down under us (warm shutdown): what was popped and not
                    # submitted is still due in the database; the sweeper sends it.
                    return

    def _endpoints_of(self, delivery_ids: list[int]) -> dict[int, int]:
        """On a connection of its own: from the pool it queued behind up to 128 delivery
        threads, and every thread it had not fed yet sat idle (scenario 2 of the benchmarks
        found a third of them idle while this thread waited)."""
        try:
            if self._connection is None:
                with self.runner.app.app_context():
                    self._connection = db.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT"
                    )
            rows = self._connection.execute(ENDPOINTS_OF, {"ids": delivery_ids})
            return dict(rows.all())
        except SQLAlchemyError:
            self._close_connection()  # a fresh one next time (the database may be back)
            raise

    def _close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None

    def _take_batch(self) -> list[str]:
        raw = self.redis.lpop(self.queue_key, self.batch)
        if not raw:
            popped = self.redis.blpop([self.queue_key], timeout=BLOCK_SECONDS)
            raw = [popped[1]] if popped else []
        job_ids = [value.decode() for value in raw]
        if job_ids:
            started = utcformat(datetime.now(UTC))
            with self.redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    key = Job.key_for(job_id)
                    pipe.hset(
                        key, mapping={"status": JobStatus.STARTED.value, "started_at": started}
                    )
                    pipe.expire(key, POPPED_JOB_TTL_SECONDS)
                pipe.execute()
        return job_ids
