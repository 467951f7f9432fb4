"""The pragmas every SQLite connection gets at connect (registered by the app factory).

WAL and a busy timeout, so the web app and workers do not lock each other out; and a bound on
the `-wal` file. Under constant readers (the worker's threads, gunicorn, the live pages) a
checkpoint seldom gets to restart the log, and without a limit the file keeps its high-water
size for ever (40 MB beside a 23 MB database after a 20,000-delivery run, bench/findings.md).
journal_size_limit truncates it back to this size each time the log restarts; a purge also
asks for a TRUNCATE checkpoint when it is done (services/retention.py)."""

from __future__ import annotations

BUSY_TIMEOUT_MS = 30000
# 4x the default auto-checkpoint (1,000 pages of 4 KiB): the file may grow past it while a
# reader pins old frames, and shrinks back to it at the next restart of the log.
WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024


def apply_sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """SQLAlchemy `connect` event handler; does nothing for other drivers."""
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cursor.close()
