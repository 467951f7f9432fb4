"""A worker process opens its pooled database connections when it starts (issue 16)."""

from __future__ import annotations

from webhook_admin.delivery.warm_start import open_pooled_connections
from webhook_admin.extensions import db


def test_the_pools_kept_connections_are_open_and_idle_after_the_warm_start(app):
    engine = db.engine
    engine.dispose()  # a new process: nothing opened yet
    assert engine.pool.checkedin() == 0
    opened = open_pooled_connections(engine)
    assert opened == engine.pool.size() > 0
    assert engine.pool.checkedin() == opened  # given back: ready for the first claims
    assert engine.pool.checkedout() == 0
