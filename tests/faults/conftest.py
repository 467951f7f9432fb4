"""Fault-test fixtures: worker processes, endpoints, Redis outages, receivers that ack."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import redis

from tests.support.receiver import Reply


@pytest.fixture
def redis_outage(redis_server):
    """Stop the test Redis; `back()` starts it again empty (also done at teardown)."""
    if redis_server.stop is None:
        pytest.fail(
            "this fault test stops and restarts Redis: it needs redis-server installed, not REDIS_URL"
        )

    class Outage:
        def __enter__(self):
            redis_server.stop()
            return self

        def __exit__(self, *exc):
            self.back()

        def back(self):
            if redis_server.process is None:
                redis_server.start()
                # Read at once: the worker under test reconnects within a second and
                # writes its presence and re-queued jobs, so a later look races with it.
                self.keys_at_restart = redis.Redis.from_url(redis_server.url).dbsize()

    outage = Outage()
    yield outage
    outage.back()


class Acking:
    """A Receiver responder that counts tries per webhook-id and logs every 2xx it sends."""

    def __init__(self, reply=lambda webhook_id, nth: Reply(200)):
        self.reply = reply
        self.tries: Counter[str] = Counter()
        self.acked: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, request) -> Reply:
        webhook_id = request.headers.get("webhook-id", "")
        with self._lock:
            self.tries[webhook_id] += 1
            nth = self.tries[webhook_id]
        reply = self.reply(webhook_id, nth)
        if 200 <= reply.status < 300:
            with self._lock:
                self.acked.add(webhook_id)
        return reply
