"""Fixtures: a real Redis, SQLite (or PostgreSQL via TEST_DATABASE_URL), the app, receivers."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import socket
import threading
import time
import uuid

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from werkzeug.serving import make_server

from tests.support.processes import WorkerProcess
from tests.support.receiver import Receiver
from tests.support.redis_server import RedisServer
from webhook_admin import clock, create_app
from webhook_admin.delivery.runner import install_runner
from webhook_admin.extensions import db
from webhook_admin.queues import get_redis
from webhook_admin.services.endpoints import EndpointInput, create_endpoint
from webhook_admin.services.live_strip import strip_memo
from webhook_admin.shared.signing import sign

INGEST_SECRET = "whsec_" + base64.b64encode(b"i" * 32).decode()
ENCRYPTION_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def only_loopback_connections(monkeypatch):
    """Fail loudly (and connect nowhere) if code under test dials a non-loopback address,
    and keep the system resolver from ever sending a DNS query (numeric hosts only).
    Tests send traffic to 127.0.0.0/8 and ::1 only; names are resolved by stub resolvers."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def numeric_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host == "localhost":
            host = "127.0.0.1"
        flags |= socket.AI_NUMERICHOST
        return real_getaddrinfo(host, port, family, type, proto, flags)

    def guarded(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0]).split("%")[0]
            if not ipaddress.ip_address(host).is_loopback:
                raise AssertionError(f"test tried to connect to {host}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", numeric_getaddrinfo)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    external = os.environ.get("REDIS_URL")
    server = RedisServer(str(tmp_path_factory.mktemp("redis")))
    if server.binary is None:
        if not external:
            pytest.fail("redis-server is not installed and REDIS_URL is not set")
        yield type("External", (), {"url": external, "start": None, "stop": None})()
        return
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.db")


def test_environ(database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    environ = {
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "WEBHOOK_INGEST_SECRET": INGEST_SECRET,
        "WEBHOOK_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "WEBHOOK_RETRY_SCHEDULE": "0,0,0",
        "WEBHOOK_DELIVERY_TIMEOUT": "3",
        "WEBHOOK_SWEEP_INTERVAL": "0.5",
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        # One process per worker.py: tests signal and kill the worker they started.
        "WEBHOOK_WORKER_PROCESSES": "1",
    }
    environ.update(overrides)
    return environ


@pytest.fixture(scope="session")
def migrated_database(database_url, redis_server):
    """Apply the Alembic migrations once: the tests run on the real schema."""
    from flask_migrate import downgrade, upgrade

    app = create_app(test_environ(database_url, redis_server.url))
    with app.app_context():
        if database_url.startswith("postgresql"):
            db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            db.session.commit()
        upgrade()
    yield database_url
    with app.app_context():
        db.session.remove()
        downgrade(revision="base")


@pytest.fixture
def environ(migrated_database, redis_server):
    return test_environ(migrated_database, redis_server.url)


@pytest.fixture
def app(environ, redis_server):
    app = create_app(environ)
    with app.app_context():
        clean_database()
        from webhook_admin.services.catalog import seed_catalog

        seed_catalog()
        db.session.commit()
        get_redis().flushdb()
        yield app
        db.session.remove()
        # Close this app's pooled connections now, not when the collector finds the app: the
        # suite creates an engine per test, and PostgreSQL allows 100 connections in all.
        db.engine.dispose()
    install_runner(None)
    clock.reset()
    strip_memo.clear()  # the monitor's per-process strip memo must not outlive a test's data


def clean_database() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        # TRUNCATE keeps the columns' statistics (an earlier test's ANALYZE, or autovacuum's
        # after its inserts): they would plan this test's statements (a "no statistics" plan
        # check failed in a full run only). Deleting them needs a superuser, as in CI.
        if db.session.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")):
            relations = (
                "SELECT oid FROM pg_class WHERE relname = ANY(:tables)"
                " AND relnamespace = 'public'::regnamespace"
            )
            # ... and the multivariate ones (CREATE STATISTICS, migration 0012).
            for statement in (
                f"DELETE FROM pg_statistic WHERE starelid IN ({relations})",
                "DELETE FROM pg_statistic_ext_data WHERE stxoid IN"
                f" (SELECT oid FROM pg_statistic_ext WHERE stxrelid IN ({relations}))",
            ):
                db.session.execute(text(statement), {"tables": tables})
    else:
        for table in tables:
            db.session.execute(text(f"DELETE FROM {table}"))
        # An earlier test's ANALYZE must not plan this one's statements (the plan checks run
        # without statistics, as on a fresh install): SQLite reads sqlite_stat1 when a
        # connection opens, so the pooled ones go too.
        if db.session.execute(
            text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
        ).first():
            db.session.execute(text("DELETE FROM sqlite_stat1"))
    db.session.commit()
    if db.engine.dialect.name == "sqlite":
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def signed_headers(
    body: bytes,
    event_id: str | None = None,
    timestamp: int | None = None,
    secret: str = INGEST_SECRET,
) -> dict[str, str]:
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret[len("whsec_") :])
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, event_id, timestamp, body),
    }


def valid_data(event_type: str = "transaction.approved", **fields) -> dict:
    """The seeded catalog's example of `event_type` (valid under its schema), with `fields`
    added or replaced: data for tests about something other than the schema."""
    from webhook_admin.services.catalog import load_catalog_file

    for category in load_catalog_file()["categories"]:
        for item in category["event_types"]:
            if item["name"] == event_type:
                return {**item["example"], **fields}
    raise LookupError(f"no {event_type!r} in the catalog file")


@pytest.fixture
def post_event(client):
    """POST a signed event to the ingest API; returns the response. Without `data`, the
    type's catalog example."""

    def post(event_type="transaction.approved", data=None, event_id=None, **extra):
        payload = {"type": event_type, "data": data or valid_data(event_type), **extra}
        body = json.dumps(payload).encode()
        return client.post("/api/v1/events", data=body, headers=signed_headers(body, event_id))

    return post


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def live_server(app):
    """The test app served on 127.0.0.1 from a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def start_worker(environ):
    """Start `python worker.py` processes with the test settings; stopped after the test."""
    started = []

    def start(*args, **overrides):
        worker = WorkerProcess(environ | overrides, *args).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def add_endpoint(app):
    """Create an endpoint subscribed to `events`; its clear secret is on `.test_secret`."""

    def add(url: str, events: tuple[str, ...] = ("transaction.approved",)):
        endpoint, secret = create_endpoint(EndpointInput(url, list(events)), "test")
        db.session.commit()
        endpoint.test_secret = secret
        return endpoint

    return add
