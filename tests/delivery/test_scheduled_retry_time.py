"""A scheduled retry reaches its queue no earlier than the delivery is due."""

from __future__ import annotations

from datetime import UTC, datetime

from webhook_admin.queues import RETRY, get_queue, get_redis, job_id_for, schedule_delivery


def scheduled_at(delivery_id: int, attempts_made: int) -> datetime:
    key = get_queue(RETRY).scheduled_job_registry.key
    score = get_redis().zscore(key, job_id_for(delivery_id, attempts_made))
    return datetime.fromtimestamp(score, UTC).replace(tzinfo=None)


def test_a_retry_due_within_a_second_is_scheduled_for_the_next_whole_second(app):
    """RQ scores scheduled jobs in whole seconds, cut down, and enqueues a job once its second
    has begun: a retry due at 12:00:05.3 went out at 12:00:05.0, its claim found it not yet
    due and did nothing, and the retry waited for the sweeper."""
    assert schedule_delivery(7, 1, datetime(2030, 1, 1, 12, 0, 5, 300_000))
    assert scheduled_at(7, 1) == datetime(2030, 1, 1, 12, 0, 6)
    assert schedule_delivery(8, 1, datetime(2030, 1, 1, 12, 0, 5))
    assert scheduled_at(8, 1) == datetime(2030, 1, 1, 12, 0, 5)
