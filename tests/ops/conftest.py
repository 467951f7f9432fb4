"""Fixtures for the operations tests: logged-in sessions, worker processes, an endpoint."""

from __future__ import annotations

import pytest

from tests.views.conftest import (  # noqa: F401  (shared fixtures)
    admin,
    fresh_login_per_request,
    viewer,
)


@pytest.fixture
def redis_outage(redis_server):
    """Stop the test Redis for a while; always started again (empty) afterwards."""
    if redis_server.stop is None:
        pytest.fail(
            "this fault test stops and restarts Redis: it needs redis-server installed, not REDIS_URL"
        )
    stopped = []

    def stop():
        redis_server.stop()
        stopped.append(True)

    yield stop
    if stopped and redis_server.process is None:
        redis_server.start()
