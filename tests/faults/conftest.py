"""Fault-test fixtures: worker processes, endpoints, Redis outages, receivers that ack."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import redis

from tests.support.receiver import Reply

OUTAGE_MARKER = "test:before-the-outage"


@pytest.fixture
def redis_outage(redis_server):
    """Stop the test Redis; `back()` starts it again empty (also done at teardown).

    `came_back_empty` says whether what Redis held before the outage is gone: a marker key
    written just before the stop must not survive the restart. (Counting keys instead races
    with the worker under test, which reconnects within milliseconds and writes its presence
    and re-queued jobs.)
    """
    if redis_server.stop is None:
        pytest.fail(
            "this fault test stops and restarts Redis: it needs redis-server installed, not REDIS_URL"
        )

    class Outage:
        came_back_empty: bool | None = None

        def __enter__(self):
            redis.Redis.from_url(redis_server.url).set(OUTAGE_MARKER, "1")
            redis_server.stop()
            return self

        def __exit__(self, *exc):
            self.back()

        def back(self):
            if redis_server.process is None:
                redis_server.start()
                client = redis.Redis.from_url(redis_server.url)
                self.came_back_empty = not client.exists(OUTAGE_MARKER)

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
