"""Redis and the RQ queues. Redis only carries work; the database stays the truth."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from redis.sentinel import Sentinel, SentinelManagedConnection
from rq import Queue
from rq.job import Job, JobStatus

from .config import Settings
from .rq_internals import job_time, read_job_fields

log = logging.getLogger(__name__)

# Separate queues so a failing endpoint's retries never wait in front of fresh deliveries.
# These are kinds; the RQ queue of a kind is `queue_name(kind)`, `<prefix>:<kind>`, where the
# prefix (WEBHOOK_QUEUE_PREFIX, by default derived from the database) keeps deployments that
# share one Redis apart: a job names a delivery id of one database only.
FRESH = "deliveries"
RETRY = "retries"
MAINTENANCE = "maintenance"
QUEUE_KINDS = (FRESH, RETRY, MAINTENANCE)
RETRY_QUEUE = RETRY  # the kind under its old name (runner.py and the sweeper import it)
DELIVER_FUNC = "webhook_admin.delivery.jobs.deliver"
# The maintenance jobs (delivery/maintenance_jobs.py), named, so callers need not import them.
BULK_RETRY_FUNC = "webhook_admin.delivery.maintenance_jobs.bulk_retry"
REPLAY_FUNC = "webhook_admin.delivery.maintenance_jobs.replay"
# A queued job older than this is checked against its queue before it is believed live.
STALE_QUEUED_SECONDS = 60
LIVE_JOB_STATES = {
    s.value for s in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED)
}


# How long a sentinel may take to answer "where is the master?" before the next is asked.
SENTINEL_TIMEOUT_SECONDS = 1


class SentinelConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, closed when a read is interrupted, as a plain one is.

    redis-py's own keeps a connection whose read was cut short (its `read_response` defaults
    `disconnect_on_error` to False, the plain Connection's to True) and hands it out again
    with the reply still to come. RQ's SIGTERM handler interrupts the worker's BLPOP that
    way; its goodbye (MULTI/EXEC) then went out on that connection and waited behind the
    BLPOP's 405 s: no worker in Sentinel mode stopped on SIGTERM (found by the failover
    test, whose workers took the full 15 s kill timeout to stop)."""

    def read_response(self, disable_decoding=False, *, disconnect_on_error=True, **kwargs):
        return super().read_response(
            disable_decoding=disable_decoding, disconnect_on_error=disconnect_on_error, **kwargs
        )


def make_redis(settings: Settings, socket_timeout: float | None = 5) -> Redis:
    """The one way every Redis user of ours connects: web ingest, RQ's worker and scheduler,
    the fresh dispatcher, sweeper, heartbeat, login throttle, metrics.

    REDIS_URL gives one server. With REDIS_SENTINELS the client is redis-py's
    `Sentinel(...).master_for(...)`: each new connection asks the sentinels for the master's
    address, and a connection to a master that died or was demoted is dropped (an error, or
    READONLY), so the next command, or the caller's retry, reaches the new master. Nothing
    else changes: a failover looks to every caller like a short Redis outage, which they
    already ride out (the database is the truth and the sweeper re-queues what was lost).

    Short timeouts by default: ingest must answer even when Redis hangs (the sweeper
    catches up). Workers pass socket_timeout=None: RQ blocks on BLPOP for longer than that
    and sets its own read timeout above its BLPOP's."""
    options = {
        "socket_connect_timeout": 2,
        "socket_timeout": socket_timeout,
        "health_check_interval": 30,
        "password": settings.redis_password,
    }
    if not settings.redis_sentinels:
        if settings.redis_password is None:
            del options["password"]  # from the URL, if it has one
        return Redis.from_url(settings.redis_url, **options)
    sentinel = Sentinel(
        list(settings.redis_sentinels),
        sentinel_kwargs={
            "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS,
            "socket_timeout": SENTINEL_TIMEOUT_SECONDS,
            "password": settings.redis_sentinel_password,
        },
    )
    return sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=Redis,
        connection_class=SentinelConnection,
        **options,
    )


def redis_target(settings: Settings) -> str:
    """Where Redis is, for logs: the URL without its password, or the sentinels."""
    if settings.redis_sentinels:
        hosts = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        return f"sentinel {settings.redis_sentinel_master} via {hosts}"
    url = settings.redis_url
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        url = f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


def get_redis() -> Redis:
    ext = current_app.extensions
    if "redis" not in ext:
        ext["redis"] = make_redis(current_app.config["SETTINGS"])
    return ext["redis"]


def use_worker_redis() -> Redis:
    """Switch this app to a connection without a read timeout (for worker processes)."""
    current_app.extensions["redis"] = make_redis(
        current_app.config["SETTINGS"], socket_timeout=None
    )
    return current_app.extensions["redis"]


def queue_prefix() -> str:
    """This app's namespace in Redis (Settings.queue_prefix)."""
    return current_app.config["SETTINGS"].queue_prefix


def queue_name(kind: str) -> str:
    """The RQ queue of a kind (FRESH, RETRY, MAINTENANCE) for this app's database."""
    if kind not in QUEUE_KINDS:
        raise ValueError(f"unknown queue kind {kind!r}")
    return f"{queue_prefix()}:{kind}"


def redis_key(*parts: str) -> str:
    """A Redis key of ours (locks, heartbeats, throttles) in this app's namespace."""
    return ":".join(("webhook-admin", queue_prefix(), *parts))


def get_queue(kind: str) -> Queue:
    return Queue(queue_name(kind), connection=get_redis())


# A delivery to queue: its id with the number of attempts made so far, or just the id.
DeliveryRef = int | tuple[int, int]


def job_id_for(delivery_id: int, attempts_made: int | None) -> str:
    """`<prefix>_delivery-<id>-<attempts made>`: the sweeper can ask Redis whether the job for
    a delivery's next attempt is live, and a follow-up never reuses the id of the job that is
    running (RQ deletes a finished job's hash, which would orphan a re-queued same id). RQ's
    job hashes are not per queue: the prefix keeps another database's delivery 7 apart."""
    suffix = attempts_made if attempts_made is not None else "x" + uuid.uuid4().hex[:12]
    return f"{queue_prefix()}_delivery-{delivery_id}-{suffix}"


def delivery_id_of(job_id: str) -> int | None:
    """`[<prefix>_]delivery-<id>-<suffix>` -> id; None for anything else."""
    head, found, tail = job_id.rpartition("delivery-")
    parts = tail.split("-")
    if found and (not head or head.endswith("_")) and len(parts) == 2 and parts[0].isdigit():
        return int(parts[0])
    return None


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


def enqueue_deliveries(deliveries: Iterable[DeliveryRef], kind: str = FRESH) -> bool:
    """Queue a job per delivery in one round trip; False (and a log line) if Redis is down."""
    refs = [_split(ref) for ref in deliveries]
    if not refs:
        return True
    ids = [i for i, _ in refs]
    try:
        queue = get_queue(kind)
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
        get_queue(RETRY).enqueue_at(
            _whole_second_after(when), DELIVER_FUNC, args=(delivery_id,), **options
        )
    except RedisError as exc:
        log.warning(
            "schedule failed delivery_id=%s, the sweeper will send it: %s", delivery_id, exc
        )
        return False
    return True


def _whole_second_after(when: datetime) -> datetime:
    """RQ keeps a scheduled job's time in whole seconds, cut down, and enqueues it as soon as
    that second begins: up to 1 s before the delivery is due, when its claim does nothing and
    the retry waits for the sweeper. Rounded up, the job is never early."""
    due = when.replace(tzinfo=UTC)
    return due if not due.microsecond else due.replace(microsecond=0) + timedelta(seconds=1)


def live_job_ids(deliveries: list[tuple[int, int]]) -> set[int]:
    """The deliveries among these (id, attempts made) that Redis holds a live job for.

    A job hash that says "queued" is only believed while it is young, or while its id is
    still in its queue: a worker killed between popping a job and running it leaves such
    a hash behind forever, and the delivery must not wait on it."""
    redis = get_redis()
    with redis.pipeline() as pipe:
        for i, n in deliveries:
            read_job_fields(pipe, job_id_for(i, n))
        rows = pipe.execute()
    live, to_verify = set(), []
    stale_before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=STALE_QUEUED_SECONDS)
    for (i, n), (status, origin, enqueued_at, started_at) in zip(deliveries, rows, strict=True):
        if status is None or status.decode() not in LIVE_JOB_STATES:
            continue
        if status.decode() == JobStatus.QUEUED.value and _older(enqueued_at, stale_before):
            to_verify.append((i, n, origin.decode() if origin else queue_name(FRESH)))
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
    return job_time(enqueued_at) < cutoff


def enqueue_bulk_retry(scope: dict, actor: str) -> Job | None:
    """Queue the bulk retry job; None (the caller tells the operator) if Redis is
    unavailable."""
    try:
        return get_queue(MAINTENANCE).enqueue(
            BULK_RETRY_FUNC, scope, actor, job_timeout=3600, result_ttl=86400, failure_ttl=86400
        )
    except RedisError:
        return None


def enqueue_replay(endpoint_id: int, since: str, actor: str) -> Job | None:
    """Queue the replay job; None if Redis is unavailable."""
    try:
        return get_queue(MAINTENANCE).enqueue(
            REPLAY_FUNC,
            endpoint_id,
            since,
            actor,
            job_timeout=3600,
            result_ttl=86400,
            failure_ttl=86400,
        )
    except RedisError:
        return None
