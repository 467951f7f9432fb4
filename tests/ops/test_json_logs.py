"""LOG_FORMAT=json in a real worker: one JSON object per line, ids in, secrets and bodies out."""

from __future__ import annotations

import json
import signal

from sqlalchemy import select

from tests.conftest import valid_data
from tests.support.processes import wait_until
from webhook_admin.extensions import db
from webhook_admin.models import Delivery

MARKER = "pan_4111111111111111_marker"


def test_worker_json_logs_carry_ids_and_never_the_secret_or_payload(
    app, post_event, receiver, add_endpoint, start_worker
):
    endpoint = add_endpoint(receiver.url)
    # In the field the catalog marks as a card number: unmarked, ingest refuses it (400).
    post_event(
        event_id="evt_json_log",
        data=valid_data(card={"brand": "visa", "last4": "4242", "number": MARKER}),
    )
    worker = start_worker(LOG_FORMAT="json", LOG_LEVEL="INFO")
    receiver.wait_for(1)
    assert MARKER in receiver.requests[0].body.decode()  # the body did travel, just not to logs
    delivery = wait_until(
        lambda: (
            db.session.rollback()
            or db.session.scalar(select(Delivery).where(Delivery.status == "succeeded"))
        )
    )
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    output = worker.output()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in lines)
    attempt_lines = [
        e
        for e in lines
        if f"delivery_id={delivery.id}" in e["message"]
        and "event_id=evt_json_log" in e["message"]
        and f"endpoint_id={endpoint.id}" in e["message"]
    ]
    assert attempt_lines, output
    secret = endpoint.test_secret
    for forbidden in (secret, secret.removeprefix("whsec_"), MARKER, "v1,"):
        assert forbidden not in output
