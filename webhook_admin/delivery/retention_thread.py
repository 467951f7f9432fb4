"""When the retention purge runs: a thread in every worker process, and a Redis lock that
lets one of them at a time purge, once per interval across the deployment.

A purge runs until nothing is due (services/retention.py), which after an outage or a lowered
retention can be millions of rows and minutes: in its own thread it does not hold up the
sweeper's lease recovery and requeueing. The lock is held with a short TTL refreshed after
each batch, so a worker that dies mid-purge hands the rest to another within LOCK_TTL; when a
purge finishes the lock is set for the interval.

Under the same lock, after a finished purge, the thread fills the event columns of the
deliveries written before migration 0011 (services/delivery_event_columns.py), with the same
pauses: the backlog is then done by the workers themselves, one per deployment at a time,
without an operator's step (one index probe per interval once nothing is left)."""

from __future__ import annotations

import logging
import secrets
import threading
import time

from flask import Flask

from ..queues import get_redis, redis_key
from ..services.delivery_event_columns import fill_event_columns
from ..services.retention import PAUSE_FACTOR, PurgeStats, purge_expired
from .guarded_pass import run_guarded_pass

log = logging.getLogger(__name__)
EVERY_SECONDS_MAX = 3600  # at least once an hour
LOCK_TTL = 120  # seconds a purge may go without refreshing the lock
POLL_SECONDS_MAX = 60  # how often a worker without the lock looks again
REFRESH_EVERY = 5.0  # seconds between lock refreshes during a purge


def lock_key() -> str:
    return redis_key("retention", "lock")


def purge_interval(retention_days: float) -> float:
    """Once an hour, and at least ten times per retention period (a soak's retention of a
    few minutes is then purged every few tens of seconds): rows leave at most 10 % late."""
    return max(5.0, min(EVERY_SECONDS_MAX, retention_days * 86400 / 10))


class RetentionThread(threading.Thread):
    def __init__(self, app: Flask, retention_days: float):
        super().__init__(name="retention", daemon=True)
        self.app = app
        self.retention_days = retention_days
        self.interval = purge_interval(retention_days)
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            run_guarded_pass(self.app, log, "retention purge", self.purge_if_ours)
            if self._stop_event.wait(min(self.interval, POLL_SECONDS_MAX)):
                return

    def purge_if_ours(self) -> PurgeStats | None:
        redis = get_redis()
        token = secrets.token_hex(8)
        if not redis.set(lock_key(), token, nx=True, ex=LOCK_TTL):
            return None
        refreshed = time.monotonic()

        def keep_going(_stats) -> bool:
            nonlocal refreshed
            if time.monotonic() - refreshed > REFRESH_EVERY:
                if redis.get(lock_key()) != token.encode():
                    return False  # the lock expired and another worker took over
                redis.expire(lock_key(), LOCK_TTL)
                refreshed = time.monotonic()
            return not self._stop_event.is_set()

        stats = purge_expired(self.retention_days, on_batch=keep_going, pause_factor=PAUSE_FACTOR)
        if stats.finished:
            filled = fill_event_columns(on_batch=keep_going, pause_factor=PAUSE_FACTOR)
            stats.finished = filled.finished
            stats.extra["event_columns_filled"] = filled.rows
        # Finished: nobody purges again before the interval. Stopped: another worker may go
        # on soon (the TTL left is at most LOCK_TTL).
        if stats.finished:
            redis.set(lock_key(), token, ex=max(1, int(self.interval)))
        return stats
