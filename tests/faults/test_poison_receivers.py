"""Receivers that answer what no database column takes, against a real worker process.

Each poisoned answer must end its own delivery cleanly: recorded once, made storable, and
never take another endpoint's attempt down with it. Before, a NUL byte in one body made
PostgreSQL refuse the whole batch of attempts; the innocent endpoint's recorded success was
rolled back, its lease expired, and its receiver got the same event again."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from tests.faults.fault_server import FaultServer, endless, raw
from tests.support.processes import wait_until
from tests.views.conftest import Session, make_user
from webhook_admin.delivery.storable import HEADERS_LIMIT, TRUNCATED_HEADER
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus

EVENTS = 8
LEASE = 6.0  # twice the delivery timeout: a slow, loaded machine must not expire a live try

# Each server closes the connection after its answer; saying so (`connection: close`) keeps
# the worker from sending the next event on that connection while its close is still in
# flight: that try would fail to connect and never reach the server (a CI run lost one).
CLOSE = b"connection: close\r\n"
HUGE_HEADERS = b"".join(b"x-big-%d: %s\r\n" % (n, b"h" * 65_000) for n in range(98))
POISONS = {
    "nul in the body": raw(
        b"HTTP/1.1 200 OK\r\n" + CLOSE + b"content-length: 8\r\n\r\nok\x00\x00\x00end"
    ),
    "nul in a header": raw(
        b"HTTP/1.1 200 OK\r\n" + CLOSE + b"x-odd: a\x00b\r\ncontent-length: 2\r\n\r\nok"
    ),
    "invalid utf-8": raw(
        b"HTTP/1.1 200 OK\r\n" + CLOSE + b"content-length: 6\r\n\r\n\xff\xfe\xc3(\xed\xa0"
    ),
    # No room for CLOSE: http.client takes at most 100 header lines.
    "huge headers": raw(b"HTTP/1.1 200 OK\r\n" + HUGE_HEADERS + b"content-length: 2\r\n\r\nok"),
    "a body that never ends": endless(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n"),
    "deeply nested json": raw(
        b"HTTP/1.1 200 OK\r\n"
        + CLOSE
        + b"content-type: application/json\r\ncontent-length: 200000\r\n\r\n"
        + b"[" * 100_000
        + b"]" * 100_000
    ),
}


def settled(delivery_count: int) -> bool:
    """Every delivery tried at least once and none in flight."""
    db.session.rollback()
    rows = db.session.execute(select(Delivery.status, Delivery.attempts_count)).all()
    return len(rows) == delivery_count and all(
        status != DeliveryStatus.IN_FLIGHT and tries >= 1 for status, tries in rows
    )


@pytest.fixture
def poison_servers():
    servers = {
        name: FaultServer(lambda webhook_id, nth, f=fault: f) for name, fault in POISONS.items()
    }
    for server in servers.values():
        server.__enter__()
    yield servers
    for server in servers.values():
        server.__exit__(None, None, None)


def test_poisoned_answers_are_stored_once_and_never_resend_an_innocent_endpoint(
    app, post_event, receiver, start_worker, add_endpoint, poison_servers, client
):
    add_endpoint(receiver.url)  # the innocent endpoint
    poisoned = {name: add_endpoint(server.url) for name, server in poison_servers.items()}
    worker = start_worker(
        WEBHOOK_LEASE_SECONDS=str(LEASE), WEBHOOK_DELIVERY_TIMEOUT="3", WEBHOOK_RETRY_SCHEDULE="60"
    )
    event_ids = [f"evt_poison_{n}" for n in range(EVENTS)]
    for event_id in event_ids:
        assert post_event(event_id=event_id).status_code == 202
    total = EVENTS * (1 + len(poisoned))
    wait_until(lambda: settled(total), timeout=30, message=worker.output())
    # Long enough for a lost attempt's lease to expire and the sweeper (every 0.5 s) to
    # send it again: the leases were taken before `settled` held.
    threading.Event().wait(LEASE + 1.5)

    assert Counter(r.headers["webhook-id"] for r in receiver.requests) == Counter(event_ids)
    for name, server in poison_servers.items():
        per_event = Counter(hit.webhook_id for hit in server.hits)
        assert per_event == Counter(event_ids), f"{name}: {per_event}"

    db.session.rollback()
    attempts = db.session.scalars(select(Attempt)).all()
    assert len(attempts) == total, worker.output()
    assert all(a.number == 1 for a in attempts)
    by_endpoint = {endpoint.id: name for name, endpoint in poisoned.items()}
    for attempt in attempts:
        name = by_endpoint.get(attempt.endpoint_id, "innocent")
        stored = (attempt.response_body or "") + repr(attempt.response_headers)
        assert "\x00" not in stored, name
        assert attempt.succeeded, (name, attempt.error_class, attempt.error_message)
        headers = attempt.response_headers or {}
        assert sum(len(k) + len(v) for k, v in headers.items()) <= HEADERS_LIMIT + 200, name
    statuses = set(db.session.scalars(select(Delivery.status)))
    assert statuses == {DeliveryStatus.SUCCEEDED}

    huge = next(a for a in attempts if a.endpoint_id == poisoned["huge headers"].id)
    assert "98 header(s) not stored" in huge.response_headers[TRUNCATED_HEADER]
    nul = next(a for a in attempts if a.endpoint_id == poisoned["nul in the body"].id)
    assert nul.response_body == "ok\ufffd\ufffd\ufffdend"
    utf8 = next(a for a in attempts if a.endpoint_id == poisoned["invalid utf-8"].id)
    assert "\ufffd" in utf8.response_body and utf8.response_body.encode("utf-8")
    endless_body = next(
        a for a in attempts if a.endpoint_id == poisoned["a body that never ends"].id
    )
    assert len(endless_body.response_body) == 64 * 1024

    # The delivery timeline shows the nested body as it came (too deep to pretty-print).
    make_user("viewer@example.com", "viewer")
    viewer = Session(client)
    assert viewer.login("viewer@example.com").status_code == 302
    nested = next(a for a in attempts if a.endpoint_id == poisoned["deeply nested json"].id)
    page = viewer.get(f"/deliveries/{nested.delivery_id}")
    assert page.status_code == 200 and "[[[[" in page.get_data(as_text=True)
