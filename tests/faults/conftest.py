"""Fault-test fixtures: worker processes, endpoints, Redis outages, receivers that ack."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.support.processes import WorkerProcess
from tests.support.receiver import Reply
from webhook_admin.extensions import db
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


@pytest.fixture
def start_worker(environ):
    started = []

    def start(*args, **overrides):
        worker = WorkerProcess(environ | overrides, *args).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def add_endpoint(app):
    def add(url: str, events: tuple[str, ...] = ("transaction.approved",)):
        endpoint, _ = create_endpoint(EndpointInput(url, list(events)), "test")
        db.session.commit()
        return endpoint

    return add


@pytest.fixture
def redis_outage(redis_server):
    """Stop the test Redis; `back()` starts it again empty (also done at teardown)."""
    if redis_server.stop is None:
        pytest.skip("needs the private redis-server (REDIS_URL points elsewhere)")

    class Outage:
        def __enter__(self):
            redis_server.stop()
            return self

        def __exit__(self, *exc):
            self.back()

        def back(self):
            if redis_server.process is None:
                redis_server.start()

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
