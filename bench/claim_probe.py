"""The claim of one delivery on SQLite against the history in the events table (issue 16):

    PYTHONPATH=. .venv/bin/python -m bench.claim_probe [HISTORY ...]

For each HISTORY (default 40 2000 20000): a new database file, that many delivered events,
then 1,000 waiting deliveries claimed one at a time with the claim as it is and with the
claim before issue 16's fix (its RETURNING compared the bare event_id), alternating; prints
the median time per claim of each. Not a test: figures for bench/findings.md."""

from __future__ import annotations

import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, text

from webhook_admin import create_app
from webhook_admin.clock import utcnow
from webhook_admin.delivery.claims import CLAIM
from webhook_admin.extensions import db
from webhook_admin.models import Delivery, Event
from webhook_admin.services.endpoints import EndpointInput, create_endpoint

from .payload import EVENT_TYPE
from .procs import ROOT, app_environ, migrate_and_seed

WAITING = 1000
BEFORE_FIX = ("CAST(event_id AS VARCHAR(255))", "event_id")


def add_events(endpoint_id: int, prefix: str, count: int, status: str) -> None:
    now = utcnow()
    names = [f"evt_{prefix}_{i}" for i in range(count)]
    event_rows = [
        {
            "id": name,
            "type": EVENT_TYPE,
            "data": {"amount": i},
            "occurred_at": now,
            "received_at": now,
            "body_sha256": "0" * 64,
            "source": "ingest",
            "delivery_count": 1,
        }
        for i, name in enumerate(names)
    ]
    db.session.execute(insert(Event.__table__), event_rows)
    delivery_rows = [
        {
            "event_id": name,
            "endpoint_id": endpoint_id,
            "status": status,
            "attempts_count": 0,
            "next_trigger": "automatic",
            "created_at": now,
        }
        for name in names
    ]
    db.session.execute(insert(Delivery.__table__), delivery_rows)
    db.session.commit()


def probe(history: int) -> tuple[float, float]:
    path = ROOT / "var" / "bench" / "claim-probe.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    environ = app_environ(f"sqlite:///{path}", "redis://127.0.0.1:1/0")
    migrate_and_seed(environ)
    app = create_app(environ)
    with app.app_context():
        endpoint, _ = create_endpoint(
            EndpointInput(url="http://127.0.0.1:9/hook", event_types=[EVENT_TYPE]), "bench"
        )
        db.session.commit()
        add_events(endpoint.id, "history", history, "succeeded")
        add_events(endpoint.id, "waiting", WAITING, "pending")
        waiting = db.session.execute(
            text("SELECT id FROM deliveries WHERE status = 'pending' ORDER BY id")
        ).scalars()
        compiled = CLAIM.compile(dialect=db.engine.dialect)
        compiled_sql = str(compiled)
        before_fix = compiled_sql.replace(*BEFORE_FIX)
        assert before_fix != compiled_sql, "the claim no longer has the CAST this compares"
        times: dict[str, list[float]] = {"before": [], "now": []}
        now = utcnow() + timedelta(seconds=1)
        with db.engine.connect() as connection:
            for n, delivery_id in enumerate(list(waiting)):
                which, sql = ("before", before_fix) if n % 2 == 0 else ("now", compiled_sql)
                params = compiled.construct_params(
                    {
                        "delivery_id": delivery_id,
                        "now": now,
                        "token": secrets.token_hex(16),
                        "lease_expires_at": now + timedelta(seconds=60),
                    }
                )
                args = tuple(params[name] for name in compiled.positiontup)
                started = time.perf_counter()
                rows = connection.exec_driver_sql(sql, args).fetchall()
                times[which].append(time.perf_counter() - started)
                assert len(rows) == 1
                connection.commit()
        db.engine.dispose()
    return statistics.median(times["before"]), statistics.median(times["now"])


def main() -> None:
    for history in [int(a) for a in sys.argv[1:]] or [40, 2000, 20000]:
        before, now = probe(history)
        print(
            f"{history + WAITING} events: claim of one delivery, median {before * 1e6:.0f} µs "
            f"before the fix, {now * 1e6:.0f} µs now ({before / now:.1f}x)",
            flush=True,
        )


if __name__ == "__main__":
    main()
