"""Page benchmark: server time of the admin pages over a big database.

    python -m bench.pages [--endpoints 10000] [--attempts 1000000] [--db sqlite|postgresql|both]

Seeds 10,000 endpoints and 1,000,000 attempts (500,000 deliveries of 250,000 events), then
times /webhooks, /deliveries (first page and a filtered page) and a delivery page through the
Flask test client (server time: no network), and prints p50/p95 per page. Target: p95 under
150 ms on SQLite and PostgreSQL. A benchmark, not a test: it asserts nothing."""

from __future__ import annotations

import argparse
import base64
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta

from cryptography.fernet import Fernet
from sqlalchemy import insert, select, text

from tests.support.redis_server import RedisServer

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = os.environ.get("BENCH_PAGES_DB", "webhook_admin_bench_pages")
CHUNK = 10_000
RUNS = 30


def environ(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-" + "x" * 40,
        "WEBHOOK_INGEST_SECRET": "whsec_" + base64.b64encode(b"b" * 32).decode(),
        "WEBHOOK_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }


def fresh_postgres_url() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB}")
        conn.execute(f"CREATE DATABASE {PG_BENCH_DB}")
    return f"postgresql://postgres@127.0.0.1:5432/{PG_BENCH_DB}"


def seed(n_endpoints: int, n_attempts: int) -> dict:
    """Bulk rows through SQLAlchemy Core, in chunks; returns ids worth requesting."""
    from webhook_admin.clock import utcnow
    from webhook_admin.extensions import db
    from webhook_admin.models import Attempt, Delivery, Endpoint, Event, EventType
    from webhook_admin.services.catalog import seed_catalog
    from webhook_admin.services.endpoint_secrets import secret_box

    seed_catalog()
    db.session.commit()
    types = db.session.execute(select(EventType.id, EventType.name, EventType.category_id)).all()
    secret = secret_box().encrypt("whsec_" + base64.b64encode(b"s" * 32).decode())
    now = utcnow()
    rng = random.Random(7)

    def chunks(rows_iter, total):
        batch = []
        for row in rows_iter:
            batch.append(row)
            if len(batch) == CHUNK:
                yield batch
                batch = []
        if batch:
            yield batch

    endpoints = (
        {
            "url": f"https://merchant{i}.example.com/softpos/hooks",
            "description": f"Merchant {i} integration",
            "category_id": types[i % len(types)][2],
            "all_category_events": True,
            "custom_headers": {},
            "secret_encrypted": secret,
            "enabled": i % 20 != 0,
            "consecutive_failures": 0,
            "created_at": now - timedelta(days=30),
            "updated_at": now,
            "last_attempt_at": now - timedelta(minutes=i % 600),
            "last_attempt_status": 200,
        }
        for i in range(n_endpoints)
    )
    for batch in chunks(endpoints, n_endpoints):
        db.session.execute(insert(Endpoint), batch)
    db.session.commit()

    n_deliveries = n_attempts // 2
    n_events = n_deliveries // 2
    events = (
        {
            "id": f"evt_{i:09d}",
            "type": types[i % len(types)][1],
            "data": {"amount": i % 10000, "currency": "EUR"},
            "occurred_at": now - timedelta(seconds=(n_events - i) * 5),
            "received_at": now - timedelta(seconds=(n_events - i) * 5),
            "body_sha256": "0" * 64,
            "source": "ingest",
            "delivery_count": 2,
        }
        for i in range(n_events)
    )
    for batch in chunks(events, n_events):
        db.session.execute(insert(Event), batch)
    db.session.commit()

    statuses = ["succeeded"] * 90 + ["failed"] * 4 + ["retrying"] * 4 + ["pending"] * 2
    deliveries = (
        {
            "id": i + 1,
            "event_id": f"evt_{i // 2:09d}",
            "endpoint_id": 1 + ((i // 2) * 7919 + i % 2) % n_endpoints,
            "status": rng.choice(statuses),
            "attempts_count": 2,
            "next_trigger": "automatic",
            "created_at": now - timedelta(seconds=(n_events - i // 2) * 5),
            "last_status_code": 200,
        }
        for i in range(n_deliveries)
    )
    endpoint_of = {}
    for batch in chunks(deliveries, n_deliveries):
        endpoint_of.update((row["id"], row["endpoint_id"]) for row in batch)
        db.session.execute(insert(Delivery), batch)
    db.session.commit()

    attempts = (
        {
            "delivery_id": 1 + i // 2,
            "endpoint_id": endpoint_of[1 + i // 2],
            "number": 1 + i % 2,
            "trigger": "automatic",
            "started_at": now - timedelta(seconds=(n_attempts - i) * 2.5),
            "duration_ms": rng.randrange(20, 900),
            "request_url": "https://merchant.example.com/softpos/hooks",
            "request_headers": {"webhook-signature": "v1,•••"},
            "request_body": '{"id":"evt","type":"transaction.approved","data":{}}',
            "response_status": 500 if i % 2 == 0 else 200,
            "response_headers": {"content-type": "text/plain"},
            "response_body": "ok",
            "error_class": "http" if i % 2 == 0 else None,
            "succeeded": i % 2 == 1,
        }
        for i in range(n_attempts)
    )
    for batch in chunks(attempts, n_attempts):
        db.session.execute(insert(Attempt), batch)
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    else:
        db.session.execute(text("ANALYZE"))
    return {"delivery_id": n_deliveries // 2, "endpoint_id": endpoint_of[n_deliveries // 2]}


def time_pages(client, ids: dict) -> dict[str, tuple[float, float]]:
    pages = {
        "/webhooks": "/webhooks",
        "/deliveries": "/deliveries",
        "/deliveries?status=failed&endpoint_id": f"/deliveries?status=failed&endpoint_id={ids['endpoint_id']}",
        "/deliveries?event_type=refund.created": "/deliveries?event_type=refund.created&since=24h",
        "/deliveries/<id>": f"/deliveries/{ids['delivery_id']}",
        "/webhooks/<id>": f"/webhooks/{ids['endpoint_id']}",
    }
    results = {}
    for name, url in pages.items():
        timings = []
        for _ in range(RUNS):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        timings.sort()
        results[name] = (statistics.median(timings), timings[int(0.95 * len(timings)) - 1])
    return results


def run_one(database_url: str, redis_url: str, n_endpoints: int, n_attempts: int) -> dict:
    from flask_migrate import upgrade

    from webhook_admin import create_app
    from webhook_admin.extensions import db
    from webhook_admin.services.users import create_user

    app = create_app(environ(database_url, redis_url))
    app.config["WTF_CSRF_ENABLED"] = False
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        ids = seed(n_endpoints, n_attempts)
        print(f"  seeded in {time.perf_counter() - started:.0f} s")
        create_user("bench@example.com", "admin", "bench-password-123", "bench")
        db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": "bench@example.com", "password": "bench-password-123"})
    with app.app_context():
        return time_pages(client, ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=int, default=10_000)
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-pages-")
    redis = RedisServer(workdir)
    redis.start()
    redis_url = redis.url
    try:
        targets = []
        if args.db in ("sqlite", "both"):
            targets.append(("SQLite", "sqlite:///" + os.path.join(workdir, "pages.db")))
        if args.db in ("postgresql", "both"):
            targets.append(("PostgreSQL", fresh_postgres_url()))
        for label, url in targets:
            print(f"{label}: {args.endpoints:,} endpoints, {args.attempts:,} attempts")
            for page, (p50, p95) in run_one(url, redis_url, args.endpoints, args.attempts).items():
                verdict = "ok" if p95 < 150 else "OVER 150 ms"
                print(f"  {page:<42} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   {verdict}")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
