"""RQ jobs for background admin work, on the maintenance queue (queued by
queues.enqueue_bulk_retry and queues.enqueue_replay). Thin: parse, call, commit."""

from __future__ import annotations

from ..queues import RETRY, enqueue_deliveries


def bulk_retry(scope: dict, actor: str) -> int:
    """Retry every failed delivery of an endpoint in a time range (see services.bulk_retry)."""
    from ..services.bulk_retry import RetryScope, retry_failed

    return retry_failed(
        RetryScope.from_dict(scope), actor, lambda ids: enqueue_deliveries(ids, RETRY)
    )


def replay(endpoint_id: int, since: str, actor: str) -> int:
    """Create and queue the deliveries an endpoint missed (see services.replay)."""
    from datetime import datetime

    from ..services.replay import replay_missed

    return replay_missed(
        endpoint_id, datetime.fromisoformat(since), actor, lambda ids: enqueue_deliveries(ids)
    )
