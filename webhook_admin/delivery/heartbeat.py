"""Worker presence in Redis, the writing side: each worker process writes who it is and what
it is sending (the reading side, list_workers, is worker_presence.py beside the queues).

A hash per process (`webhook-admin:<queue prefix>:worker:<name>`) with a TTL of three
intervals, so a worker killed with SIGKILL disappears by itself; an index (sorted set by last
beat, `webhook-admin:<queue prefix>:workers`) lets readers find them without scanning Redis.
A clean exit removes both at once. The prefix keeps each deployment's workers to itself."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

from ..worker_presence import index_key, worker_key

log = logging.getLogger(__name__)
TTL_FACTOR = 3


def default_worker_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


class Heartbeat(threading.Thread):
    """Beats every `interval` seconds until stopped; `in_flight` returns delivery ids.
    Made in an app context (for the key names); it beats from its own thread."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        threads: int,
        in_flight: Callable[[], list[int]],
        interval: float = 5.0,
    ):
        super().__init__(name="heartbeat", daemon=True)
        self.redis = redis
        self.worker_name = name
        self.key = worker_key(name)
        self.index_key = index_key()
        self.threads = threads
        self.in_flight = in_flight
        self.interval = interval
        self.state = "running"
        self.started_at = time.time()
        self._stop_event = threading.Event()

    def beat(self) -> None:
        """Write the hash and refresh its TTL; a Redis outage is logged, not fatal."""
        now = time.time()
        ids = sorted(self.in_flight())
        fields = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "state": self.state if self.state != "running" else ("busy" if ids else "idle"),
            "threads": self.threads,
            "in_flight": json.dumps(ids),
            "started_at": f"{self.started_at:.3f}",
            "last_seen": f"{now:.3f}",
        }
        # In milliseconds: a 0.5 s interval in whole seconds gave a TTL of two intervals.
        ttl_ms = max(int(self.interval * TTL_FACTOR * 1000), 1000)
        try:
            with self.redis.pipeline() as pipe:
                pipe.hset(self.key, mapping=fields)
                pipe.pexpire(self.key, ttl_ms)
                pipe.zadd(self.index_key, {self.worker_name: now})
                # Forget index entries of workers that stopped beating long ago.
                pipe.zremrangebyscore(self.index_key, "-inf", now - 24 * 3600)
                pipe.execute()
        except RedisError as exc:
            log.warning("heartbeat skipped worker=%s, Redis unavailable: %s", self.worker_name, exc)

    def run(self) -> None:
        while True:
            self.beat()
            if self._stop_event.wait(self.interval):
                return

    def set_state(self, state: str) -> None:
        """Say what the process is doing (e.g. "stopping") and tell Redis at once."""
        self.state = state
        self.beat()

    def stop(self) -> None:
        """Stop beating and remove this worker's presence (a clean exit)."""
        self._stop_event.set()
        self.join(5)
        try:
            with self.redis.pipeline() as pipe:
                pipe.delete(self.key)
                pipe.zrem(self.index_key, self.worker_name)
                pipe.execute()
        except RedisError as exc:  # the TTL removes it anyway
            log.warning("heartbeat not removed worker=%s: %s", self.worker_name, exc)
