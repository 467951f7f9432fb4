"""One writer at a time per process on SQLite.

SQLite allows one writer per database file. Threads that collide wait in SQLite's busy
handler, which sleeps in steps of up to 100 ms: with dozens of delivery threads the waits
convoy and throughput collapses (measured: ~60 deliveries/s with 64 threads). Taking a
process-wide lock around each short write transaction keeps the threads of one process from
colliding at all. PostgreSQL has row locks and needs none of this."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .extensions import db

_sqlite_writer = threading.Lock()


@contextmanager
def serialized_writes() -> Iterator[None]:
    """Wrap a write transaction from its first write to its commit."""
    if db.engine.dialect.name != "sqlite":
        yield
        return
    with _sqlite_writer:
        yield
