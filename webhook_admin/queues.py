"""Redis and the RQ queues. Redis only carries work; the database stays the truth."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus

log = logging.getLogger(__name__)

# Separate queues so a failing endpoint's retries never wait in front of fresh deliveries.
FRESH_QUEUE = "deliveries"
RETRY_QUEUE = "retries"
MAINTENANCE_QUEUE = "maintenance"
DELIVER_FUNC = "webhook_admin.delivery.jobs.deliver"
# A queued job older than this is checked against its queue before it is believed live.
STALE_QUEUED_SECONDS = 60
LIVE_JOB_STATES = {
    s.value for s in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED)
}


def make_redis(url: str, socket_timeout: float | None = 5) -> Redis:
    """Short timeouts by default: ingest must answer even when Redis hangs (the sweeper
    catches up). Workers pass socket_timeout=None: RQ blocks on BLPOP for longer than that."""
    return Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=socket_timeout, health_check_interval=30
    )


def get_redis() -> Redis:
    ext = current_app.extensions
    if "redis" not in ext:
        ext["redis"] = make_redis(current_app.config["SETTINGS"].redis_url)
    return ext["redis"]


def use_worker_redis() -> Redis:
    """Switch this app to a connection without a read timeout (for worker processes)."""
    current_app.extensions["redis"] = make_redis(
        current_app.config["SETTINGS"].redis_url, socket_timeout=None
    )
    return current_app.extensions["redis"]


def get_queue(name: str) -> Queue:
    return Queue(name, connection=get_redis())


# A delivery to queue: its id with the number of attempts made so far, or just the id.
DeliveryRef = int | tuple[int, int]


def job_id_for(delivery_id: int, attempts_made: int | None) -> str:
    """`delivery-<id>-<attempts made>`: the sweeper can ask Redis whether the job for a
    delivery's next attempt is live, and a follow-up never reuses the id of the job that is
    running (RQ deletes a finished job's hash, which would orphan a re-queued same id)."""
    suffix = attempts_made if attempts_made is not None else "x" + uuid.uuid4().hex[:12]
    return f"delivery-{delivery_id}-{suffix}"


def _split(ref: DeliveryRef) -> tuple[int, int | None]:
    return ref if isinstance(ref, tuple) else (ref, None)


JOB_TIMEOUT_SECONDS = 300


def _job_options(delivery_id: int, attempts_made: int | None) -> dict:
    """What every delivery job carries besides its id, in the words `Queue.prepare_data`
    takes (`timeout`). `Queue.enqueue_at` calls the same thing `job_timeout` and passes any
    word it does not know on to the job function: see `schedule_delivery`."""
    return {
        "job_id": job_id_for(delivery_id, attempts_made),
        "result_ttl": 0,  # the database keeps the outcome; Redis forgets finished jobs
        "failure_ttl": 3600,
        "timeout": JOB_TIMEOUT_SECONDS,
    }


def enqueue_deliveries(deliveries: Iterable[DeliveryRef], queue_name: str = FRESH_QUEUE) -> bool:
    """Queue a job per delivery in one round trip; False (and a log line) if Redis is down."""
    refs = [_split(ref) for ref in deliveries]
    if not refs:
        return True
    ids = [i for i, _ in refs]
    try:
        queue = get_queue(queue_name)
        jobs = [Queue.prepare_data(DELIVER_FUNC, (i,), **_job_options(i, n)) for i, n in refs]
        # Not MULTI/EXEC: jobs are independent, and any the sweeper finds missing it queues.
        with get_redis().pipeline(transaction=False) as pipe:
            queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
    except RedisError as exc:
        log.warning(
            "enqueue failed for %d deliveries, the sweeper will send them: %s", len(ids), exc
        )
        return False
    return True


def schedule_delivery(delivery_id: int, attempts_made: int, when: datetime) -> bool:
    """Queue a retry at `when` (naive UTC) on the retry queue via RQ's scheduler."""
    options = _job_options(delivery_id, attempts_made)
    options["job_timeout"] = options.pop("timeout")
    try:
        # `args=` explicitly: RQ then hands `deliver()` no keyword at all. Given the id as a
        # positional argument it passes on every option it does not know (a `timeout=` it
        # did, and every scheduled retry died of a TypeError in `deliver()`).
        get_queue(RETRY_QUEUE).enqueue_at(
            when.replace(tzinfo=UTC), DELIVER_FUNC, args=(delivery_id,), **options
        )
    except RedisError as exc:
        log.warning(
            "schedule failed delivery_id=%s, the sweeper will send it: %s", delivery_id, exc
        )
        return False
    return True


def live_job_ids(deliveries: list[tuple[int, int]]) -> set[int]:
    """The deliveries among these (id, attempts made) that Redis holds a live job for.

    A job hash that says "queued" is only believed while it is young, or while its id is
    still in its queue: a worker killed between popping a job and running it leaves such
    a hash behind forever, and the delivery must not wait on it."""
    redis = get_redis()
    with redis.pipeline() as pipe:
        for i, n in deliveries:
            pipe.hmget(
                Job.key_for(job_id_for(i, n)), "status", "origin", "enqueued_at", "started_at"
            )
        rows = pipe.execute()
    live, to_verify = set(), []
    stale_before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=STALE_QUEUED_SECONDS)
    for (i, n), (status, origin, enqueued_at, started_at) in zip(deliveries, rows, strict=True):
        if status is None or status.decode() not in LIVE_JOB_STATES:
            continue
        if status.decode() == JobStatus.QUEUED.value and _older(enqueued_at, stale_before):
            to_verify.append((i, n, origin.decode() if origin else FRESH_QUEUE))
        elif status.decode() == JobStatus.STARTED.value and _older(started_at, stale_before):
            # A worker killed while its job waited for a free delivery thread leaves the job
            # "started" until RQ's cleanup (job timeout + maintenance, 15 min): not believed.
            # A second job is harmless: the claim is atomic.
            continue
        else:
            live.add(i)
    if to_verify:
        with redis.pipeline() as pipe:
            for i, n, origin in to_verify:
                pipe.lpos(Queue(origin, connection=redis).key, job_id_for(i, n))
            positions = pipe.execute()
        live.update(
            i for (i, _, _), pos in zip(to_verify, positions, strict=True) if pos is not None
        )
    return live


def _older(enqueued_at: bytes | None, cutoff: datetime) -> bool:
    if not enqueued_at:
        return True
    when = datetime.fromisoformat(enqueued_at.decode().rstrip("Z"))
    return when.replace(tzinfo=None) < cutoff
