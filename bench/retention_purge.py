"""The retention purge as its own process, for scenario 9 (bench/retention_bench.py):

    python -m bench.retention_purge OUT.json      # the app's environment in os.environ

Runs services.retention.purge_expired with the app's WEBHOOK_RETENTION_DAYS, pausing between
batches as the worker does (BENCH_S9_PAUSE overrides PAUSE_FACTOR; 0: full speed), until nothing is
due or SIGTERM (then it stops after the batch in progress, committed), and writes to OUT.json:
rows deleted, seconds, rows/s, batches, the longest batch (one transaction: the longest a
lock of it was held) and the longest single statement with its first words. A process of
its own, as the worker's retention thread is in a worker process beside the delivery threads
of another."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import event

from webhook_admin import create_app
from webhook_admin.extensions import db
from webhook_admin.services.retention import PAUSE_FACTOR, purge_expired


def main(out: Path) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    app = create_app()
    out.with_suffix(".started").write_text("")  # past the imports: the bench starts its load
    longest = {"s": 0.0, "sql": ""}
    with app.app_context():

        @event.listens_for(db.engine, "before_cursor_execute")
        def _start(conn, cursor, statement, parameters, context, executemany):
            conn.info["t0"] = time.perf_counter()

        @event.listens_for(db.engine, "after_cursor_execute")
        def _end(conn, cursor, statement, parameters, context, executemany):
            took = time.perf_counter() - conn.info.pop("t0", time.perf_counter())
            if took > longest["s"]:
                longest.update(s=took, sql=" ".join(statement.split())[:120])

        stats = purge_expired(
            app.config["SETTINGS"].retention_days,
            on_batch=lambda s: not stop.is_set(),
            pause_factor=float(os.environ.get("BENCH_S9_PAUSE", PAUSE_FACTOR)),
        )
    rows = stats.deliveries + stats.attempts + stats.events
    out.write_text(
        json.dumps(
            {
                "deliveries": stats.deliveries,
                "attempts": stats.attempts,
                "events": stats.events,
                "rows": rows,
                "seconds": stats.seconds,
                "deliveries_per_s": stats.deliveries / stats.seconds if stats.seconds else 0.0,
                "rows_per_s": rows / stats.seconds if stats.seconds else 0.0,
                "busy_seconds": stats.busy_s,
                "busy_rows_per_s": rows / stats.busy_s if stats.busy_s else 0.0,
                "batches": stats.batches,
                "longest_batch_ms": stats.longest_batch_s * 1000,
                "longest_statement_ms": longest["s"] * 1000,
                "longest_statement": longest["sql"],
                "finished": stats.finished,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
