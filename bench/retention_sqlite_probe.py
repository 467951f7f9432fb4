"""Issue 16, retention on SQLite: how fast the purge deletes, and how long a concurrent writer
(another process's connection, as a delivery thread of another worker would be) waits while
it runs. SQLite has one writer at a time: every batch holds the write lock.

    PROBE_ROWS=100000 python -m bench.retention_sqlite_probe

Builds PROBE_ROWS old delivered deliveries (attempt with ~1 KB body, event) in a fresh file,
then runs purge_expired (paced as in the worker, or BENCH_S9_PAUSE) while a second process
inserts and commits one row every 20 ms; prints JSON: rows/s, longest batch, the writer's
commits and its longest and p99 wait, and the file and -wal sizes after."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

ROWS = int(os.environ.get("PROBE_ROWS", "100000"))


def writer(path: str, stop, out) -> None:
    """One small write transaction every 20 ms; the time each took, lock wait included."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("CREATE TABLE IF NOT EXISTS probe_writes (t REAL)")
    waits = []
    while not stop.is_set():
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO probe_writes VALUES (?)", (t0,))
        conn.execute("COMMIT")
        waits.append(time.perf_counter() - t0)
        time.sleep(0.02)
    out.put(waits)


def main() -> None:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from webhook_admin import create_app
    from webhook_admin.extensions import db
    from webhook_admin.services.retention import PAUSE_FACTOR, purge_expired

    from .procs import app_environ

    tmp = tempfile.mkdtemp(prefix="ret-sqlite-")
    path = f"{tmp}/probe.db"
    app = create_app(app_environ(f"sqlite:///{path}", "redis://127.0.0.1:1/0"))
    with app.app_context():
        upgrade()
        from webhook_admin.services.catalog import seed_catalog
        from webhook_admin.services.endpoints import EndpointInput, create_endpoint

        seed_catalog()
        created, _ = create_endpoint(
            EndpointInput("http://127.0.0.1:9/hook", ["transaction.approved"]), "probe"
        )
        db.session.commit()
        endpoint = created.id
        t0 = time.perf_counter()
        db.session.execute(
            text(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :rows)"
                " INSERT INTO events (id, type, data, occurred_at, received_at, body_sha256,"
                " source, delivery_count) SELECT 'evt_hist_' || n, 'transaction.approved', '{}',"
                " datetime('now', '-40 days', '+' || (n * 20) || ' seconds'),"
                " datetime('now', '-40 days', '+' || (n * 20) || ' seconds'),"
                " hex(randomblob(32)), 'ingest', 1 FROM g"
            ),
            {"rows": ROWS},
        )
        db.session.execute(
            text(
                "INSERT INTO deliveries (event_id, endpoint_id, status, attempts_count,"
                " next_trigger, last_status_code, created_at, completed_at)"
                " SELECT id, :e, 'succeeded', 1, 'automatic', 200, received_at, received_at"
                " FROM events"
            ),
            {"e": endpoint},
        )
        db.session.execute(
            text(
                "INSERT INTO attempts (delivery_id, endpoint_id, number, trigger, started_at,"
                " duration_ms, request_url, request_headers, request_body, response_status,"
                " succeeded) SELECT id, endpoint_id, 1, 'automatic', created_at, 200,"
                " 'http://127.0.0.1:9/hook', '{}', hex(randomblob(500)), 200, 1"
                " FROM deliveries"
            )
        )
        db.session.commit()
        built = time.perf_counter() - t0
        db.session.remove()
        stop, out = multiprocessing.Event(), multiprocessing.Queue()
        other = multiprocessing.Process(target=writer, args=(path, stop, out))
        other.start()
        time.sleep(1)
        pause = float(os.environ.get("BENCH_S9_PAUSE", PAUSE_FACTOR))
        stats = purge_expired(30, pause_factor=pause)
        stop.set()
        waits = out.get(timeout=60)
        other.join(10)
    rows = stats.deliveries + stats.attempts + stats.events
    wal = Path(path + "-wal")
    print(
        json.dumps(
            {
                "rows_built": ROWS,
                "build_s": round(built, 1),
                "pause_factor": pause,
                "deliveries": stats.deliveries,
                "seconds": round(stats.seconds, 1),
                "busy_rows_per_s": round(rows / stats.busy_s),
                "wall_rows_per_s": round(rows / stats.seconds),
                "batches": stats.batches,
                "longest_batch_ms": round(stats.longest_batch_s * 1000, 1),
                "writer_commits": len(waits),
                "writer_wait_median_ms": round(statistics.median(waits) * 1000, 2),
                "writer_wait_p99_ms": round(statistics.quantiles(waits, n=100)[98] * 1000, 1),
                "writer_wait_max_ms": round(max(waits) * 1000, 1),
                "db_mb": round(Path(path).stat().st_size / 2**20, 1),
                "wal_mb": round((wal.stat().st_size if wal.exists() else 0) / 2**20, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
