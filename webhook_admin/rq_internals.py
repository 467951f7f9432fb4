"""Where we reach into RQ's internals: the one place, so a change of RQ breaks this module
and its test (tests/delivery/test_library_adapters.py), not the queues or the worker.

What is relied on (RQ 2.x/3.x, pinned in pyproject.toml):
- a job is a Redis hash at `Job.key_for(job_id)` with the fields `status` (a JobStatus
  value), `origin` (its queue's name), `enqueued_at` and `started_at` (RQ's `utcformat`,
  UTC, a trailing Z): the sweeper reads them to tell a live job from a stale one
  (queues.live_job_ids), and the fresh dispatcher, which pops job ids itself, writes
  `status` and `started_at` as RQ's own worker would (delivery/fresh_dispatcher.py);
- a Worker leaves its loop at the next turn once `_stop_requested` is true: the worker
  process sets it for a stop signal that came before RQ's handlers were in place
  (worker.py);
- a worker's registration is the hash `redis_worker_namespace_prefix + name`, and one without
  a `death` field makes `register_birth` refuse that name (worker.py releases the name of a
  process of its own host that is gone)."""

from __future__ import annotations

from datetime import UTC, datetime

from rq.job import Job, JobStatus
from rq.utils import utcformat

JOB_FIELDS = ("status", "origin", "enqueued_at", "started_at")


def read_job_fields(pipe, job_id: str) -> None:
    """Queue on `pipe` the read of a job's JOB_FIELDS (bytes or None each, in that order)."""
    pipe.hmget(Job.key_for(job_id), *JOB_FIELDS)


def mark_started(pipe, job_ids: list[str], ttl_seconds: int) -> None:
    """Queue on `pipe` what RQ's worker writes when it starts a job, for each of these jobs
    (and a TTL, for hashes nobody else will clean up)."""
    started = utcformat(datetime.now(UTC))
    for job_id in job_ids:
        key = Job.key_for(job_id)
        pipe.hset(key, mapping={"status": JobStatus.STARTED.value, "started_at": started})
        pipe.expire(key, ttl_seconds)


def job_time(raw: bytes) -> datetime:
    """A job hash's time field as a naive UTC datetime."""
    return datetime.fromisoformat(raw.decode().rstrip("Z")).replace(tzinfo=None)


def request_stop(worker) -> None:
    """Make an RQ worker leave its loop at its next turn, as its own signal handler does."""
    worker._stop_requested = True


def unended_registration(worker_class, redis, name: str):
    """RQ's registration of a worker named `name` that never recorded its end (the state in
    which RQ's `register_birth` refuses the name), as a worker object with its `hostname`
    and `pid`; None when there is none. `death` is the field `register_death` writes."""
    key = worker_class.redis_worker_namespace_prefix + name
    if redis.hexists(key, "death"):
        return None
    return worker_class.find_by_key(key, connection=redis)  # None when there is no key
