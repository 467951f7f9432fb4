"""Redis and the RQ queues. Redis only carries work; the database stays the truth."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

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
LIVE_JOB_STATES = {
    s.value
    for s in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED)
}


def make_redis(url: str) -> Redis:
    # Short socket timeouts: ingest must answer even when Redis hangs (the sweeper catches up).
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


def get_redis() -> Redis:
    ext = current_app.extensions
    if "redis" not in ext:
        ext["redis"] = make_redis(current_app.config["SETTINGS"].redis_url)
    return ext["redis"]


def get_queue(name: str) -> Queue:
    return Queue(name, connection=get_redis())


def job_id_for(delivery_id: int) -> str:
    """One RQ job id per delivery, so the sweeper can ask Redis whether it is still live."""
    return f"delivery-{delivery_id}"


def _job_options(delivery_id: int) -> dict:
    return {
        "job_id": job_id_for(delivery_id),
        "result_ttl": 0,  # the database keeps the outcome; Redis forgets finished jobs
        "failure_ttl": 3600,
        "timeout": 300,
    }


def enqueue_deliveries(delivery_ids: Iterable[int], queue_name: str = FRESH_QUEUE) -> bool:
    """Queue a job per delivery in one round trip; False (and a log line) if Redis is down."""
    ids = list(delivery_ids)
    if not ids:
        return True
    try:
        queue = get_queue(queue_name)
        jobs = [Queue.prepare_data(DELIVER_FUNC, (i,), **_job_options(i)) for i in ids]
        with get_redis().pipeline() as pipe:
            queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
    except RedisError as exc:
        log.warning("enqueue failed for %d deliveries, the sweeper will send them: %s", len(ids), exc)
        return False
    return True


def schedule_delivery(delivery_id: int, when: datetime) -> bool:
    """Queue a retry at `when` (naive UTC) on the retry queue via RQ's scheduler."""
    from datetime import UTC

    try:
        get_queue(RETRY_QUEUE).enqueue_at(
            when.replace(tzinfo=UTC), DELIVER_FUNC, delivery_id, **_job_options(delivery_id)
        )
    except RedisError as exc:
        log.warning("schedule failed delivery_id=%s, the sweeper will send it: %s", delivery_id, exc)
        return False
    return True


def live_job_ids(delivery_ids: list[int]) -> set[int]:
    """The deliveries among these that Redis has a queued, scheduled or running job for."""
    redis = get_redis()
    with redis.pipeline() as pipe:
        for i in delivery_ids:
            pipe.hget(Job.key_for(job_id_for(i)), "status")
        statuses = pipe.execute()
    return {
        i
        for i, status in zip(delivery_ids, statuses, strict=True)
        if status is not None and status.decode() in LIVE_JOB_STATES
    }
