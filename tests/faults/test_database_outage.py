"""The database fails during ingest: 503 + Retry-After, nothing half-written, and SoftPOS's
retry with the same webhook-id creates exactly one event."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from urllib.parse import quote

import psycopg
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from tests.conftest import signed_headers, valid_data
from tests.conftest import test_environ as make_environ
from tests.faults.invariants import check_invariants
from tests.support.redis_server import free_port
from webhook_admin import create_app
from webhook_admin.extensions import db
from webhook_admin.models import Delivery, Event
from webhook_admin.queues import FRESH, get_queue

BODY = json.dumps({"type": "transaction.approved", "data": valid_data(amount=1)}).encode()


def ingest(client, event_id: str):
    return client.post("/api/v1/events", data=BODY, headers=signed_headers(BODY, event_id))


def rows() -> tuple[int, int]:
    db.session.rollback()
    events = db.session.scalar(select(func.count()).select_from(Event))
    deliveries = db.session.scalar(select(func.count()).select_from(Delivery))
    return events, deliveries


def queued() -> int:
    return get_queue(FRESH).count


@pytest.fixture
def short_wait_app(migrated_database, redis_server):
    """A second app on the same database that gives up on a lock after 0.3 s."""
    url = migrated_database
    if url.startswith("postgresql"):
        url += ("&" if "?" in url else "?") + "options=" + quote("-c lock_timeout=300")
    other = create_app(make_environ(url, redis_server.url))
    with other.app_context():
        if url.startswith("sqlite"):

            @sa_event.listens_for(db.engine, "connect")
            def short_busy_timeout(dbapi_connection, record):
                dbapi_connection.execute("PRAGMA busy_timeout=300")

        yield other
        db.session.remove()
        db.engine.dispose()


@contextlib.contextmanager
def deliveries_locked(database_url: str):
    """Another connection holds the lock an ingest needs to write its deliveries."""
    if database_url.startswith("postgresql"):
        with psycopg.connect(database_url) as conn:
            conn.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
            yield
            conn.rollback()
    else:
        conn = sqlite3.connect(database_url[len("sqlite:///") :], isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def test_locked_database_answers_503_and_the_retry_creates_one_event(
    app, migrated_database, short_wait_app, add_endpoint
):
    add_endpoint("http://127.0.0.1:9/a")
    add_endpoint("http://127.0.0.1:9/b")
    client = short_wait_app.test_client()
    with deliveries_locked(migrated_database):
        response = ingest(client, "evt_db_locked")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json() == {"error": "database unavailable, retry later"}
    assert rows() == (0, 0)  # nothing of the event or its deliveries was kept
    assert queued() == 0
    first = ingest(client, "evt_db_locked")
    again = ingest(client, "evt_db_locked")
    assert first.status_code == 202 and again.status_code == 200
    assert first.get_json() == again.get_json() == {"id": "evt_db_locked", "deliveries": 2}
    assert rows() == (1, 2) and queued() == 2
    check_invariants((0, 0, 0), accepted=["evt_db_locked"])


def test_unreachable_database_answers_503_with_retry_after(
    app, migrated_database, redis_server, tmp_path, add_endpoint
):
    add_endpoint("http://127.0.0.1:9/a")
    if migrated_database.startswith("postgresql"):
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    else:
        url = "sqlite:///" + str(tmp_path)  # a directory: SQLite cannot open it
    down = create_app(make_environ(url, redis_server.url)).test_client()
    response = ingest(down, "evt_db_down")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert rows() == (0, 0) and queued() == 0
    retried = ingest(app.test_client(), "evt_db_down")
    assert retried.status_code == 202 and rows() == (1, 1)
    check_invariants((0, 0, 0), accepted=["evt_db_down"])
