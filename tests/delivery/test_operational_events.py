"""Operational events through our own pipeline, on a real worker process (sweeper off) and
real receivers on 127.0.0.1: endpoint.failing / delivery.exhausted / endpoint.recovered /
endpoint.disabled (410 and operator) / created / updated / deleted / secret_rotated reach
an operations endpoint subscribed to the System category, signed with its secret; and the
loop guard holds when the operations endpoint itself fails."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from tests.support.receiver import Receiver, Reply
from webhook_admin.extensions import db
from webhook_admin.models import Delivery, Endpoint, Event
from webhook_admin.services import explain as ex
from webhook_admin.services.endpoint_secrets import rotate_secret
from webhook_admin.services.endpoints import (
    EndpointInput,
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
    update_endpoint,
)

THRESHOLD = 3
WORKER = {
    "WEBHOOK_RETRY_SCHEDULE": "0,0,0,0,0",  # 6 tries, at once
    "WEBHOOK_FAILING_THRESHOLD": str(THRESHOLD),
}


class Switchable(Receiver):
    """A receiver whose answer the test changes (500 until told otherwise)."""

    def __init__(self, status: int = 500):
        self.status = status
        super().__init__(lambda request: Reply(status=self.status))


@pytest.fixture
def merchant():
    with Switchable(500) as r:
        yield r


@pytest.fixture
def ops():
    with Switchable(200) as r:
        yield r


def add(url, **kwargs):
    endpoint, secret = create_endpoint(EndpointInput(url, **kwargs), "ops@example.com")
    db.session.commit()
    endpoint.test_secret = secret
    return endpoint


def add_ops(url):
    return add(url, category="System", all_category_events=True, description="ops relay")


def received(receiver, secret=None) -> list[dict]:
    """The events a receiver got (verified with `secret` when given), in arrival order."""
    out = []
    for request in list(receiver.requests):
        if secret is not None:
            Webhook(secret).verify(request.body, request.headers)
        out.append(json.loads(request.body))
    return out


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def types_of(events, endpoint_id=None) -> list[str]:
    return [
        e["type"]
        for e in events
        if endpoint_id is None or e["data"].get("endpoint_id") == endpoint_id
    ]


def test_each_operational_event_reaches_the_ops_endpoint_signed(
    app, post_event, start_worker, merchant, ops
):
    relay = add_ops(ops.url)
    shop = add(merchant.url, event_types=["transaction.approved"], merchant_id="m-1")
    start_worker("--no-sweeper", **WORKER)

    # endpoint.created, about the shop, from its creation above.
    wait_until(lambda: "endpoint.created" in types_of(received(ops), shop.id))

    # Six failed tries: endpoint.failing at the third, delivery.exhausted after the sixth.
    assert post_event(event_id="evt_ops_fail", merchant_id="m-1").status_code == 202
    wait_until(lambda: "delivery.exhausted" in types_of(received(ops), shop.id))
    events = received(ops, relay.test_secret)
    failing = [e for e in events if e["type"] == "endpoint.failing"]
    assert len(failing) == 1
    assert failing[0]["data"]["endpoint_id"] == shop.id
    assert failing[0]["data"]["streak"] == THRESHOLD
    assert failing[0]["data"]["last_status"] == 500 and failing[0]["data"]["failing_since"]
    exhausted = next(e for e in events if e["type"] == "delivery.exhausted")
    assert exhausted["data"]["event_id"] == "evt_ops_fail"
    assert exhausted["data"]["attempts"] == 6 and exhausted["data"]["last_status"] == 500

    # The first success after it: endpoint.recovered (once).
    merchant.status = 200
    assert post_event(event_id="evt_ops_ok", merchant_id="m-1").status_code == 202
    wait_until(lambda: "endpoint.recovered" in types_of(received(ops), shop.id))
    recovered = next(e for e in received(ops) if e["type"] == "endpoint.recovered")
    assert recovered["data"]["streak"] == 6

    # What operators do, with who did it.
    db.session.expire_all()
    shop = db.session.get(Endpoint, shop.id)
    rotate_secret(shop, "alice@example.com")
    db.session.commit()
    update_endpoint(
        shop,
        EndpointInput(merchant.url, ["transaction.approved", "refund.created"], merchant_id="m-1"),
        "bob@example.com",
    )
    db.session.commit()
    disable_endpoint(shop, "carol@example.com", "merchant asked for a pause")
    db.session.commit()
    delete_endpoint(shop, "dave@example.com")
    db.session.commit()
    wanted = [
        "endpoint.secret_rotated",
        "endpoint.updated",
        "endpoint.disabled",
        "endpoint.deleted",
    ]
    wait_until(lambda: set(wanted) <= set(types_of(received(ops), shop.id)))
    by_type = {e["type"]: e["data"] for e in received(ops, relay.test_secret)}
    assert by_type["endpoint.secret_rotated"]["actor"] == "alice@example.com"
    assert by_type["endpoint.updated"]["actor"] == "bob@example.com"
    assert "event_types" in by_type["endpoint.updated"]["changed"]
    assert by_type["endpoint.disabled"] | {"at": None} == {
        "endpoint_id": shop.id,
        "url": merchant.url,
        "description": "",
        "merchant_id": "m-1",
        "reason": "manual",
        "note": "merchant asked for a pause",
        "disabled_by": "carol@example.com",
        "at": None,
    }
    assert by_type["endpoint.deleted"]["actor"] == "dave@example.com"
    assert "whsec_" not in json.dumps(by_type)  # never a secret in a payload

    # Logged and visible like any other event: stored, with deliveries, explained.
    stored = db.session.scalar(select(Event).where(Event.type == "endpoint.failing"))
    assert stored.source == "operational"
    answers = {a.endpoint_id: a for a in ex.explain_event(stored)}
    assert answers[relay.id].outcome == ex.DELIVERED
    assert answers[shop.id].outcome in (ex.ABOUT_ITSELF, "deleted")


def test_a_410_disable_is_announced_with_its_reason(app, post_event, start_worker, ops):
    with Switchable(410) as gone:
        add_ops(ops.url)
        shop = add(gone.url, event_types=["transaction.approved"])
        start_worker("--no-sweeper", **WORKER)
        post_event(event_id="evt_ops_gone")
        wait_until(lambda: "endpoint.disabled" in types_of(received(ops), shop.id))
    disabled = next(e for e in received(ops) if e["type"] == "endpoint.disabled")
    assert disabled["data"]["reason"] == "gone" and disabled["data"]["disabled_by"] == "system"
    assert "410" in disabled["data"]["note"]


def test_the_loop_guard_holds_under_a_failing_ops_endpoint(
    app, post_event, start_worker, merchant, ops
):
    """Two ops endpoints, one of them failing (500) like the merchant: a storm of failures
    ends; the failing ops endpoint never gets events about itself; at most one
    endpoint.failing per endpoint per hour; no delivery.exhausted about ops deliveries."""
    with Switchable(500) as broken_ops:
        healthy = add_ops(ops.url)
        broken = add_ops(broken_ops.url)
        shop = add(merchant.url, event_types=["transaction.approved"])
        start_worker("--no-sweeper", **WORKER)
        for n in range(8):
            assert post_event(event_id=f"evt_storm_{n}").status_code == 202

        def quiet() -> bool:
            db.session.expire_all()
            waiting = db.session.scalar(
                select(Delivery.id)
                .where(Delivery.status.in_(("pending", "retrying", "in_flight")))
                .limit(1)
            )
            return waiting is None

        wait_until(quiet, timeout=60)
        time.sleep(1)  # nothing new appears once quiet: the storm ended
        assert quiet()
        to_broken = received(broken_ops)
        to_healthy = received(ops, healthy.test_secret)

    # The failing ops endpoint never hears about its own failures.
    assert [e for e in to_broken if e["data"].get("endpoint_id") == broken.id] == []
    assert [e for e in to_healthy if e["data"].get("endpoint_id") == healthy.id] == []
    # At most one endpoint.failing per endpoint (all of this is well within the hour).
    failing = Counter(
        e["data"]["endpoint_id"] for e in to_healthy if e["type"] == "endpoint.failing"
    )
    assert failing[shop.id] == 1 and failing[broken.id] == 1
    assert max(failing.values()) == 1
    # Exhausted: one per merchant delivery (8), none about ops events' own deliveries.
    exhausted = [e for e in to_healthy if e["type"] == "delivery.exhausted"]
    assert {e["data"]["event_type"] for e in exhausted} == {"transaction.approved"}
    assert len(exhausted) == 8
    ops_events = db.session.scalar(
        select(db.func.count()).select_from(Event).where(Event.source == "operational")
    )
    assert ops_events <= 8 + 2 + 3  # exhausted, failing, created: bounded, no loop
