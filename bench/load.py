"""The load side: signed ingest requests (Standard Webhooks), and the database seen from the
bench process (endpoints, resets, progress)."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import text

from webhook_admin import create_app
from webhook_admin.extensions import db
from webhook_admin.services.endpoints import EndpointInput, create_endpoint
from webhook_admin.shared.signing import sign

from .payload import EVENT_TYPE, PAYLOAD
from .procs import INGEST_KEY

KEEP_TABLES = {"categories", "event_types", "users", "alembic_version"}


@dataclass
class Sent:
    event_id: str
    sent_at: float  # time.time() before the request
    answered_at: float  # time.time() when the 202 came back
    status: int

    @property
    def response_ms(self) -> float:
        return (self.answered_at - self.sent_at) * 1000


def signed_headers(event_id: str, body: bytes, key: bytes = INGEST_KEY) -> dict[str, str]:
    """Standard Webhooks headers for an ingest request, signed now."""
    ts = int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(key, event_id, ts, body),
    }


class IngestClient:
    """One connection's worth of ingest requests over `http.client`: the load generator runs
    on the same cores as the system under test, and requests' session layer cost ~0.7 ms of
    CPU per request (~1/5 of the machine at 300 events/s) where this costs ~0.15 ms."""

    def __init__(self, base_url: str):
        url = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        # gunicorn closes an idle keep-alive connection (and sync workers close every one
        # after their answer); http.client opens a new one on the next request by itself.
        for last_try in (False, True):
            try:
                self._connection.request("POST", path, body, headers)
                response = self._connection.getresponse()
                response.read()
                return response.status
            except (http.client.HTTPException, OSError):
                self._connection.close()
                if last_try:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._connection.close()


def post_event(client: IngestClient, event_id: str | None = None) -> Sent:
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    body = json.dumps({"type": EVENT_TYPE, "data": PAYLOAD}).encode()
    headers = signed_headers(event_id, body)
    sent = time.time()
    status = client.post("/api/v1/events", body, headers)
    answered = time.time()
    return Sent(event_id, sent, answered, status)


def ingest_many(
    base_url: str, count: int, threads: int = 4, rate: float | None = None
) -> list[Sent]:
    """Send `count` events from `threads` keep-alive sessions, as fast as possible or paced at
    `rate` events/s (open loop: event i is due at start + i / rate)."""
    results: list[Sent] = []
    lock = threading.Lock()
    counter = itertools.count()
    start = time.monotonic() + 0.05

    def run() -> None:
        client = IngestClient(base_url)
        try:
            while True:
                i = next(counter)
                if i >= count:
                    return
                if rate:
                    delay = start + i / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                sent = post_event(client)
                with lock:
                    results.append(sent)
        finally:
            client.close()

    pool = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=600)
    bad = [s for s in results if s.status != 202]
    if bad:
        raise RuntimeError(f"{len(bad)} ingest requests failed, first status {bad[0].status}")
    return results


class Database:
    """The app's database from the bench process (an app context of its own)."""

    def __init__(self, environ: dict[str, str]):
        self.app = create_app(environ)
        self.ctx = self.app.app_context()
        self.ctx.push()

    def reset(self) -> None:
        tables = [t.name for t in reversed(db.metadata.sorted_tables) if t.name not in KEEP_TABLES]
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                db.session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (our table names)
        db.session.commit()

    def add_endpoints(self, urls: list[str], timeout: float | None = None) -> list[int]:
        ids = []
        for n, url in enumerate(urls, 1):
            endpoint, _ = create_endpoint(
                EndpointInput(url=url, event_types=[EVENT_TYPE], timeout_seconds=timeout), "bench"
            )
            ids.append(endpoint.id)
            if n % 200 == 0:
                db.session.commit()
        db.session.commit()
        return ids

    def scalar(self, sql: str, **params) -> int:
        value = db.session.execute(text(sql), params).scalar()
        db.session.commit()
        return value or 0

    def succeeded(self) -> int:
        return self.scalar("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")

    def column(self, sql: str) -> list[float]:
        values = [float(v) for v in db.session.execute(text(sql)).scalars()]
        db.session.commit()
        return values

    def deliveries(self) -> int:
        return self.scalar("SELECT count(*) FROM deliveries")

    def close(self) -> None:
        db.session.remove()
        db.engine.dispose()
        self.ctx.pop()
