"""Fixtures for the operations tests: logged-in sessions, worker processes, an endpoint."""

from __future__ import annotations

import pytest

from tests.support.processes import WorkerProcess
from tests.views.conftest import (  # noqa: F401  (shared fixtures)
    admin,
    fresh_login_per_request,
    viewer,
)
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
        endpoint, secret = create_endpoint(EndpointInput(url, list(events)), "test")
        db.session.commit()
        endpoint.test_secret = secret
        return endpoint

    return add


@pytest.fixture
def redis_outage(redis_server):
    """Stop the test Redis for a while; always started again (empty) afterwards."""
    if redis_server.stop is None:
        pytest.skip("needs the private redis-server (REDIS_URL points elsewhere)")
    stopped = []

    def stop():
        redis_server.stop()
        stopped.append(True)

    yield stop
    if stopped and redis_server.process is None:
        redis_server.start()
