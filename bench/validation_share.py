"""Schema validation's share of ingest CPU (issue 15): the ingest scenario's load (4 keep-alive
clients, the catalog example of transaction.approved, 3 subscribed endpoints) against
gunicorn, measured two ways in the same run:

- A/B: the web processes' CPU per accepted event with the seeded schema enforced, then with
  the type's schema removed (nothing validated), alternating, `rounds` times each;
- in process: the CPU of what ingest adds per event (the cached validator's lookup by the
  stored schema text, then validation of the payload), timed over many calls.

`python -m bench.validation_share [--events N] [--rounds R] [--database-url URL]`; SQLite
in var/bench/ by default. Also run by `make bench` after scenario 5 (bench/run.py)."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from sqlalchemy import select, update

from webhook_admin.extensions import db
from webhook_admin.models import EventType
from webhook_admin.services import event_schemas

from .load import Database, ingest_many
from .payload import EVENT_TYPE, PAYLOAD
from .procs import (
    ROOT,
    Gunicorn,
    RedisServer,
    app_environ,
    cpu_seconds,
    migrate_and_seed,
    process_tree,
)

# No worker runs (as in scenario 5): the deliveries wait in Redis, the URLs are never called.
ENDPOINT_URLS = [f"http://127.0.0.1:9/hook-{n}" for n in range(3)]


def web_cpu(web: Gunicorn) -> float:
    total = 0.0
    for pid in process_tree(web.child.pid):
        try:
            total += cpu_seconds(pid)
        except OSError:  # a worker that exited between the listing and the read
            continue
    return total


def cpu_ms_per_event(web: Gunicorn, events: int) -> float:
    before = web_cpu(web)
    sent = ingest_many(web.url, events, threads=4)
    refused = [s.status for s in sent if s.status != 202]
    if refused:
        raise RuntimeError(f"ingest refused {len(refused)} events: {refused[:5]}")
    return (web_cpu(web) - before) * 1000 / events


def set_schema(schema: dict | None) -> None:
    db.session.execute(
        update(EventType).where(EventType.name == EVENT_TYPE).values(json_schema=schema)
    )
    db.session.commit()


def validation_us(schema: dict, calls: int = 20_000) -> float:
    """CPU µs per event of what ingest adds: a fresh copy of the stored text (as each
    request reads it) looked up in the validator cache, then the payload validated."""
    text = json.dumps(schema)
    event_schemas.compiled(EVENT_TYPE, text)
    started = time.process_time()
    for _ in range(calls):
        compiled = event_schemas.compiled(EVENT_TYPE, "".join([text]))  # a new str object
        violations, _ = compiled.violations(PAYLOAD)
        assert not violations
    return (time.process_time() - started) * 1e6 / calls


def fresh(database: Database, redis_url: str) -> None:
    """Scenario 5's start: no events, 3 subscribed endpoints, an empty Redis."""
    import redis

    database.reset()
    database.add_endpoints(ENDPOINT_URLS)
    redis.Redis.from_url(redis_url).flushdb()


def measure(database: Database, web: Gunicorn, redis_url: str, events: int, rounds: int) -> dict:
    schema = db.session.scalar(select(EventType.json_schema).where(EventType.name == EVENT_TYPE))
    fresh(database, redis_url)
    ingest_many(web.url, 100, threads=4)  # warm every gunicorn worker and its caches
    with_schema, without = [], []
    try:
        for _ in range(rounds):
            fresh(database, redis_url)
            set_schema(schema)
            with_schema.append(cpu_ms_per_event(web, events))
            fresh(database, redis_url)
            set_schema(None)
            without.append(cpu_ms_per_event(web, events))
    finally:
        set_schema(schema)
    on, off = statistics.median(with_schema), statistics.median(without)
    micro = validation_us(schema)
    return {
        "events_per_run": events,
        "rounds": rounds,
        "cpu_ms_per_event_with_schema": round(on, 3),
        "cpu_ms_per_event_without_schema": round(off, 3),
        "ab_share_pct": round(100 * (on - off) / on, 1),
        "validation_us_per_event": round(micro, 1),
        "micro_share_pct": round(100 * micro / 1000 / on, 2),
        "runs_with": [round(v, 3) for v in with_schema],
        "runs_without": [round(v, 3) for v in without],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: SQLite in var/bench/")
    args = parser.parse_args(argv)
    url = args.database_url
    if url is None:
        path = ROOT / "var" / "bench" / "validation.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    redis_server = RedisServer()
    web = database = None
    try:
        environ = app_environ(url, redis_server.url(0))
        migrate_and_seed(environ)
        database = Database(environ)
        web = Gunicorn(environ, name="gunicorn-validation")
        result = measure(database, web, redis_server.url(0), args.events, args.rounds)
        print(json.dumps(result, indent=2))
    finally:
        if web is not None:
            web.stop()
        if database is not None:
            database.close()
        redis_server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
