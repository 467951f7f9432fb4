"""Open a worker process's pooled database connections when it starts, not in its first burst.

`py-spy dump` 3 s into scenario 2 of the benchmarks (issue 16, PostgreSQL) showed 11 of a
process's threads inside psycopg's connect and 3 more waiting for the pool while those
connections were being opened: the first deliveries after a start (a deploy, a restart under
backlog) each read their endpoint, and all at once. Only the connections the pool keeps
anyway (`pool_size`, 10 on PostgreSQL) are opened, so the process never holds more than it
would after its first busy second, and PostgreSQL's connection count is unchanged."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


def open_pooled_connections(engine) -> int:
    """Check out `pool_size` connections at once and give them back; returns how many were
    opened. A database that is down is not fatal here: the pool opens them on demand."""
    size_of = getattr(engine.pool, "size", None)
    size = size_of() if callable(size_of) else 0
    opened = []
    try:
        for _ in range(size):
            opened.append(engine.connect())
    except SQLAlchemyError as exc:
        log.warning("could not open the pooled database connections at start: %s", exc)
    finally:
        for connection in opened:
            connection.close()
    return len(opened)
