"""RQ jobs for background admin work, on the maintenance queue. Thin: parse, call, commit."""

from __future__ import annotations

from redis.exceptions import RedisError
from rq.job import Job

from ..queues import MAINTENANCE, RETRY, enqueue_deliveries, get_queue

BULK_RETRY_FUNC = "webhook_admin.delivery.maintenance_jobs.bulk_retry"


def bulk_retry(scope: dict, actor: str) -> int:
    """Retry every failed delivery of an endpoint in a time range (see services.bulk_retry)."""
    from ..services.bulk_retry import RetryScope, retry_failed

    return retry_failed(
        RetryScope.from_dict(scope), actor, lambda ids: enqueue_deliveries(ids, RETRY)
    )


def enqueue_bulk_retry(scope: dict, actor: str) -> Job | None:
    """Queue the job; None (the caller tells the operator) if Redis is unavailable."""
    try:
        return get_queue(MAINTENANCE).enqueue(
            BULK_RETRY_FUNC, scope, actor, job_timeout=3600, result_ttl=86400, failure_ttl=86400
        )
    except RedisError:
        return None


REPLAY_FUNC = "webhook_admin.delivery.maintenance_jobs.replay"


def replay(endpoint_id: int, since: str, actor: str) -> int:
    """Create and queue the deliveries an endpoint missed (see services.replay)."""
    from datetime import datetime

    from ..services.replay import replay_missed

    return replay_missed(
        endpoint_id, datetime.fromisoformat(since), actor, lambda ids: enqueue_deliveries(ids)
    )


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
