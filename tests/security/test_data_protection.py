"""Card and personal data (issue 18): encrypted at rest, masked wherever a person or a log can
see it, in clear only on the wire to the receiver (signed over exactly those bytes) and in an
admin's audited reveal."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import zlib

import pytest
from sqlalchemy import select, text
from standardwebhooks import Webhook

from tests.conftest import valid_data
from tests.management.conftest import Api, token_for
from tests.support.processes import wait_until
from tests.support.receiver import Receiver, Reply
from tests.support.work import run_queued_jobs
from tests.views.conftest import Session, fresh_login_per_request, make_user  # noqa: F401
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, Delivery, DeliveryStatus, Event
from webhook_admin.queues import get_redis

PAN = "4111 1111 1111 1111"
NAME = "Jane Q. Cardholder"
EMAIL = "jane.cardholder@example.org"
CLEAR = [PAN, PAN.replace(" ", ""), NAME, EMAIL]
DATA = valid_data(
    transaction_id="txn_pii_1",
    amount=2599,
    currency="EUR",
    card={"brand": "visa", "last4": "1111", "number": PAN, "cardholder_name": NAME},
    customer={"email": EMAIL},
)


def echo(request):
    """A careless receiver: it echoes the card number and the email back."""
    return Reply(200, f"got card {PAN.replace(' ', '-')} for {EMAIL}".encode())


@pytest.fixture
def echo_receiver():
    with Receiver(echo) as receiver:
        yield receiver


def fresh_database_file() -> None:
    """SQLite keeps deleted rows of earlier tests in free pages (some stored card-like
    numbers on purpose): start from a file holding only what this test writes."""
    if db.engine.dialect.name == "sqlite":
        db.session.commit()
        with db.engine.connect() as connection:
            connection.exec_driver_sql("VACUUM")
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def absent(haystack: str, where: str) -> None:
    for value in CLEAR:
        assert value not in haystack, f"{value!r} in clear in {where}"


def database_text() -> str:
    """Everything the database holds, as text: the SQLite file and its WAL, or every row of
    every table on PostgreSQL."""
    db.session.commit()
    if db.engine.dialect.name == "sqlite":
        db.session.execute(text("PRAGMA wal_checkpoint(FULL)"))
        path = db.engine.url.database
        # Read by another process: closing a descriptor of the file in this one would drop
        # the POSIX locks SQLite's own connections hold on it.
        return "".join(
            subprocess.run(["cat", p], capture_output=True, check=True).stdout.decode(
                "utf-8", errors="replace"
            )
            for p in (path, path + "-wal")
            if os.path.exists(p)
        )
    tables = db.session.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ).scalars()
    return "\n".join(
        row
        for table in list(tables)
        for row in db.session.execute(
            text(f'SELECT row_to_json(t)::text FROM "{table}" t')
        ).scalars()
    )


def redis_text() -> str:
    """Every key and value in Redis, RQ's compressed job payloads decompressed."""
    redis = get_redis()
    dumped = []
    for key in redis.keys("*"):
        dumped.append(key)
        kind = redis.type(key)
        if kind == b"string":
            dumped.append(redis.get(key))
        elif kind == b"hash":
            for field, value in redis.hgetall(key).items():
                dumped += [field, value]
                if field == b"data":
                    dumped.append(zlib.decompress(value))
        elif kind == b"list":
            dumped += redis.lrange(key, 0, -1)
        elif kind == b"set":
            dumped += list(redis.smembers(key))
        elif kind == b"zset":
            dumped += [m for m, _ in redis.zrange(key, 0, -1, withscores=True)]
    return b"\n".join(dumped).decode("utf-8", errors="replace")


LINK = re.compile(r'(?:href|hx-get)="(/[^"#]*)"')


def crawl(get, start: list[str], limit: int = 300) -> dict[str, str]:
    """Every page reachable by GET from `start` through links and hx-get (same site)."""
    seen: dict[str, str] = {}
    queue = list(start)
    while queue and len(seen) < limit:
        url = queue.pop(0).replace("&amp;", "&")
        if url in seen or url.startswith(("/logout", "/static/")):
            continue
        response = get(url)
        seen[url] = f"{response.status_code} {response.get_data(as_text=True)}"
        if response.status_code == 200 and response.mimetype == "text/html":
            queue += LINK.findall(response.get_data(as_text=True))
    return seen


def ingest(post_event, event_id="evt_pii_1", data=None, **extra):
    response = post_event(data=data or DATA, event_id=event_id, merchant_id="m_1042", **extra)
    assert response.status_code == 202, response.get_json()
    return response


def test_card_and_personal_data_are_nowhere_in_clear_but_on_the_wire(
    app, client, post_event, echo_receiver, add_endpoint, start_worker, caplog
):
    endpoint = add_endpoint(echo_receiver.url)
    fresh_database_file()
    with caplog.at_level(logging.DEBUG):
        ingest(post_event)
        ingest(post_event, event_id="evt_pii_2", data=DATA | {"transaction_id": "txn_pii_2"})
        redis_before = redis_text()  # the jobs, before a worker takes them
        worker = start_worker("--processes", "1", "--threads", "2", LOG_LEVEL="DEBUG")
        received = echo_receiver.wait_for(2)
        wait_until(
            lambda: (
                db.session.scalar(
                    select(db.func.count())
                    .select_from(Delivery)
                    .where(Delivery.status == DeliveryStatus.SUCCEEDED)
                )
                == 2
            ),
            message="both deliveries succeed",
        )
        db.session.rollback()
    # The receiver got everything, signed over exactly the bytes it got.
    for request in received:
        payload = Webhook(endpoint.test_secret).verify(request.body, request.headers)
        assert payload["data"]["card"] == DATA["card"]  # the number and name in clear
        assert payload["data"]["customer"] == {"email": EMAIL}
    assert "event accepted" in caplog.text and "DEBUG" in worker.output()

    absent(database_text(), "the database")
    absent(redis_before + redis_text(), "Redis")
    absent(caplog.text, "the web app's DEBUG logs")
    absent(worker.output(), "the worker's DEBUG logs")

    make_user("viewer@example.com", "viewer")
    viewer = Session(app.test_client())
    assert viewer.login("viewer@example.com").status_code == 302
    delivery_ids = list(db.session.scalars(select(Delivery.id)))
    pages = crawl(
        viewer.get,
        ["/webhooks", "/deliveries", "/events", "/catalog", "/audit", "/system", "/account"]
        + [f"/events/evt_pii_{n}" for n in (1, 2)]
        + [f"/deliveries/{d}" for d in delivery_ids],
    )
    # 204: a live page's poll with nothing new (the pages' hx-get links are crawled too).
    assert len(pages) > 20 and all(b.startswith(("200", "204", "3")) for b in pages.values())
    assert any("411111••••••1111" in body for body in pages.values())  # shown, masked
    for url, body in pages.items():
        absent(body, f"page {url}")

    raw, _ = token_for("viewer@example.com", "viewer", "read")
    api = Api(app.test_client(), raw)
    answers = [
        api.get(url)
        for url in [
            "/api/v1/events",
            "/api/v1/events/evt_pii_1",
            "/api/v1/deliveries",
            *(f"/api/v1/deliveries/{d}" for d in delivery_ids),
            "/api/v1/event-types",
            "/api/v1/event-types/transaction.approved",
            "/api/v1/openapi.json",  # publishes the catalog (there is no other export)
        ]
    ]
    assert all(a.status_code == 200 for a in answers), [a.status_code for a in answers]
    for answer in answers:
        absent(answer.get_data(as_text=True), answer.request.path)


def test_attempts_record_the_request_masked_and_the_receivers_echo_masked(
    app, post_event, echo_receiver, add_endpoint
):
    add_endpoint(echo_receiver.url)
    ingest(post_event)
    run_queued_jobs(app)
    attempt = db.session.scalars(select(Delivery)).one().attempts[0]
    sent = json.loads(attempt.request_body)
    assert sent["data"]["card"] == {
        **DATA["card"],
        "number": "411111••••••1111",
        "cardholder_name": "••••",
    }
    assert attempt.response_body == "got card 411111••••••1111 for ••••@example.org"


def test_ingest_refuses_a_card_number_outside_a_pan_field_naming_only_the_path(post_event):
    response = post_event(data={"order_no": "4111-1111-1111-1111"}, event_id="evt_guard")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "data.order_no" in error and "4111" not in error
    assert db.session.get(Event, "evt_guard") is None


def test_the_pan_guard_can_be_turned_off_per_event_type(cli, post_event):
    result = cli.invoke(args=["catalog", "protect", "transaction.approved", "--no-pan-guard"])
    assert result.exit_code == 0 and "PAN guard off" in result.output, result.output
    response = post_event(data=valid_data(order_no="4111111111111111"), event_id="evt_unguarded")
    assert response.status_code == 202
    assert (
        post_event(
            "refund.created", data=valid_data("refund.created", ref="4111111111111111")
        ).status_code
        == 400
    )
    assert "catalog.event_type_protection" in db.session.scalars(select(AuditEntry.action)).all()


def test_an_admin_reveals_one_events_data_audited_and_never_cached(app, post_event):
    ingest(post_event)
    make_user("admin@example.com", "admin")
    admin = Session(app.test_client())
    assert admin.login("admin@example.com").status_code == 302
    page = admin.get("/events/evt_pii_1").get_data(as_text=True)
    assert "Reveal card and personal data" in page and NAME not in page
    response = admin.post("/events/evt_pii_1/reveal", htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert PAN in html and NAME in html and EMAIL in html
    assert response.headers["Cache-Control"] == "no-store"
    assert 'hx-history="false"' in html
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "event.sensitive_reveal")
    )
    assert entry.actor == "admin@example.com" and entry.target_id == "evt_pii_1"
    absent(json.dumps(entry.after), "the audit entry")


def test_a_viewer_cannot_reveal(app, post_event):
    ingest(post_event)
    make_user("viewer@example.com", "viewer")
    viewer = Session(app.test_client())
    assert viewer.login("viewer@example.com").status_code == 302
    assert "Reveal card" not in viewer.get("/events/evt_pii_1").get_data(as_text=True)
    response = viewer.post("/events/evt_pii_1/reveal", htmx=True)
    assert response.status_code == 403
    absent(response.get_data(as_text=True), "the 403")


def test_reencrypt_covers_event_values(environ, app, post_event):
    from cryptography.fernet import Fernet

    from webhook_admin import create_app
    from webhook_admin.services.data_protection import reveal_event_data

    ingest(post_event)
    newest = Fernet.generate_key().decode()
    keys = f"{newest} {environ['WEBHOOK_ENCRYPTION_KEYS']}"
    rotated = create_app(environ | {"WEBHOOK_ENCRYPTION_KEYS": keys})
    with rotated.app_context():
        result = rotated.test_cli_runner().invoke(args=["secrets", "reencrypt"])
        assert "the sensitive values of 1 events" in result.output
    only_newest = create_app(environ | {"WEBHOOK_ENCRYPTION_KEYS": newest})
    with only_newest.app_context():
        data = reveal_event_data(db.session.get(Event, "evt_pii_1"), "test")
        assert data == DATA


def test_a_type_that_asks_for_it_has_its_values_erased_once_delivered_and_no_retry(
    app, cli, post_event, echo_receiver, add_endpoint
):
    from webhook_admin.services.bulk_retry import RetryRefused, retry_delivery
    from webhook_admin.services.data_protection import purge_delivered

    protect = ["catalog", "protect", "transaction.approved", "--purge-after-delivery"]
    assert cli.invoke(args=protect).exit_code == 0
    add_endpoint(echo_receiver.url)
    fresh_database_file()
    ingest(post_event)
    assert purge_delivered() == 0  # not delivered yet: kept
    run_queued_jobs(app)
    assert purge_delivered() == 1
    event = db.session.get(Event, "evt_pii_1")
    assert event.sensitive_encrypted is None and event.sensitive_purged_at is not None
    absent(database_text(), "the database after the purge")
    delivery = db.session.scalars(select(Delivery)).one()
    with pytest.raises(RetryRefused, match="erased after delivery"):
        retry_delivery(delivery, "test")
    assert delivery.status == DeliveryStatus.SUCCEEDED


def test_a_delivery_made_after_the_purge_fails_unsent(
    app, cli, post_event, echo_receiver, add_endpoint
):
    """Whatever path makes a new delivery of a purged event (a replay), the worker never
    sends the masked values as if they were real."""
    from webhook_admin.delivery.runner import DeliveryRunner
    from webhook_admin.queues import enqueue_deliveries
    from webhook_admin.services.data_protection import purge_delivered
    from webhook_admin.services.fanout import EventRef, create_deliveries

    protect = ["catalog", "protect", "transaction.approved", "--purge-after-delivery"]
    assert cli.invoke(args=protect).exit_code == 0
    add_endpoint(echo_receiver.url)
    ingest(post_event)
    runner = DeliveryRunner(app, threads=1)  # one runner: its envelope cache holds the event
    run_queued_jobs(app, runner=runner)
    assert purge_delivered() == 1
    second = add_endpoint(echo_receiver.url)
    [delivery_id] = create_deliveries(EventRef.of(db.session.get(Event, "evt_pii_1")), [second.id])
    db.session.commit()
    enqueue_deliveries([(delivery_id, 0)])
    run_queued_jobs(app, runner=runner)
    assert len(echo_receiver.requests) == 1
    delivery = db.session.get(Delivery, delivery_id)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts[0].error_class == "envelope"
    assert "erased after delivery" in delivery.attempts[0].error_message


def test_purge_merchant_erases_its_events_deliveries_and_attempts(
    app, cli, post_event, echo_receiver, add_endpoint
):
    add_endpoint(echo_receiver.url)
    ingest(post_event)
    assert post_event(event_id="evt_other", merchant_id="m_other").status_code == 202
    run_queued_jobs(app)
    result = cli.invoke(args=["events", "purge-merchant", "m_1042", "--yes", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) | {} == {
        "events": 1,
        "deliveries": 1,
        "attempts": 1,
        "cancelled": 0,
        "left": 0,
    }
    assert db.session.get(Event, "evt_pii_1") is None
    assert db.session.get(Event, "evt_other") is not None
    assert "merchant.data_purge" in db.session.scalars(select(AuditEntry.action)).all()
