"""RQ's scheduler, run in a thread of the worker process instead of a forked child.

RQ forks its scheduler from the worker. A fork of a multi-threaded process inherits every
socket, including the worker's blocking BLPOP connection; after a `kill -9` of the worker the
orphaned child keeps that socket open and Redis hands it the next job, which nobody reads.
A thread dies with its process and shares nothing it should not."""

from __future__ import annotations

import contextlib
import logging
import threading

from redis import Redis
from redis.exceptions import RedisError
from rq.scheduler import RQScheduler

log = logging.getLogger(__name__)
# How long a scheduler's lock outlives its last pass (passes run every second).
LOCK_TTL_SECONDS = 5


class SchedulerThread(threading.Thread):
    def __init__(self, queue_names: list[str], connection: Redis, interval: int = 1):
        # RQ needs whole seconds here (its lock TTL is interval + 60, set with EXPIRE).

        super().__init__(name="rq-scheduler", daemon=True)
        self.scheduler = RQScheduler(queue_names, connection=connection, interval=interval)
        self.queue_names = list(queue_names)
        self.interval = interval
        self._stop_event = threading.Event()

    def _shorten_locks(self) -> None:
        """RQ's locks live interval + 60 s, so a dead scheduler stalled every scheduled
        retry for a minute; ours live LOCK_TTL_SECONDS, refreshed every pass."""
        with self.scheduler.connection.pipeline() as pipe:
            for name in self.scheduler.acquired_locks:
                pipe.expire(self.scheduler.get_locking_key(name), LOCK_TTL_SECONDS)
            pipe.execute()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def run(self) -> None:
        scheduler = self.scheduler
        while not self._stop_event.is_set():
            try:
                # Every pass, not RQ's every 120 s: a scheduler that was SIGKILLed leaves
                # its lock to expire, and the survivors must take over as soon as it does
                # (until then no scheduled retry runs, and the sweeper believes them live).
                if set(scheduler.acquired_locks) != set(self.queue_names):
                    scheduler.acquire_locks()
                if scheduler.acquired_locks:
                    scheduler.heartbeat()
                    self._shorten_locks()
                    scheduler.enqueue_scheduled_jobs()
            except RedisError as exc:
                log.warning("scheduler pass skipped, Redis unavailable: %s", exc)
            self._stop_event.wait(self.interval)
        with contextlib.suppress(RedisError):  # the locks expire by themselves
            scheduler.release_locks()
