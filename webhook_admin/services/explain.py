"""Why an endpoint did or did not get a delivery of an event ("why wasn't this delivered?").

The answer comes from fan-out's own rules (fanout.routing_rules): each rule's SQL clause is
selected as a column per endpoint, so explain and fan-out cannot disagree. A delivery row,
when there is one, is history and wins; without one the rules are read against the
configuration as it is now (an endpoint edited since the event says so through the rules
it fails now, and "would deliver" with no delivery means it changed after the event)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, false, literal, select, true

from ..extensions import db
from ..models import Delivery, DeliveryStatus, Endpoint, Event, EventType
from . import fanout

# Outcomes beside fanout's rule codes.
DELIVERED = "delivered"
PENDING = "pending"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
WOULD_DELIVER = "would_deliver"
TYPE_ARCHIVED = "type_archived"
UNKNOWN_TYPE = "unknown_type"
TEST_EVENT = "test_event"
ABOUT_ITSELF = "about_itself"  # the operational events' loop guard
FANNED_OUT = ("ingest", "operational")  # test events go to one endpoint only

DELIVERY_OUTCOMES = {
    DeliveryStatus.SUCCEEDED: DELIVERED,
    DeliveryStatus.FAILED: FAILED,
    DeliveryStatus.CANCELLED: CANCELLED,
    "expired": EXPIRED,
}


@dataclass(frozen=True)
class Explanation:
    """One endpoint's answer. `outcome` is a delivery's (delivered, pending, failed,
    expired, cancelled) or the first rule it fails, or would_deliver; `reasons` every rule
    it fails now, in reading order; `detail` the sentence an operator reads."""

    endpoint_id: int
    endpoint_url: str
    outcome: str
    would_deliver: bool
    reasons: list[str]
    detail: str
    delivery_id: int | None = None
    delivery_status: str | None = None

    def as_json(self) -> dict:
        return {
            "endpoint_id": self.endpoint_id,
            "endpoint_url": self.endpoint_url,
            "outcome": self.outcome,
            "would_deliver": self.would_deliver,
            "reasons": list(self.reasons),
            "detail": self.detail,
            "delivery_id": self.delivery_id,
            "delivery_status": self.delivery_status,
        }


@dataclass(frozen=True)
class EventFacts:
    """What fan-out looked at: the type by name, the merchant, and when it arrived (None:
    a hypothetical event arriving now)."""

    type_name: str
    merchant_id: str | None
    received_at: datetime | None = None
    event_id: str | None = None
    source: str = "ingest"
    about_endpoint_id: int | None = None  # an operational event's endpoint


def facts_of(event: Event) -> EventFacts:
    about = (event.data or {}).get("endpoint_id") if event.source == "operational" else None
    return EventFacts(
        event.type, event.merchant_id, event.received_at, event.id, event.source, about
    )


def explain(facts: EventFacts, endpoint_id: int | None = None) -> list[Explanation]:
    """Every endpoint (deleted ones too), or only `endpoint_id`, with its answer; ordered by
    endpoint id."""
    event_type = db.session.execute(
        select(EventType.id, EventType.category_id, EventType.archived).where(
            EventType.name == facts.type_name
        )
    ).first()
    if event_type is None:
        # No type, no subscribers: every rule about subscribing fails.
        type_id, category_id, archived = literal(None), literal(None), None
    else:
        type_id, category_id, archived = event_type
    rules = fanout.routing_rules(type_id, category_id, facts.merchant_id, facts.received_at)
    rule_columns = [
        case((clause, true()), else_=false()).label(f"rule_{i}")
        for i, (_, clause) in enumerate(rules)
    ]
    delivery_join = and_(
        Delivery.endpoint_id == Endpoint.id,
        Delivery.event_id == (facts.event_id if facts.event_id is not None else literal(None)),
    )
    query = (
        select(Endpoint, Delivery.id, Delivery.status, *rule_columns)
        .outerjoin(Delivery, delivery_join)
        .order_by(Endpoint.id)
    )
    if endpoint_id is not None:
        query = query.where(Endpoint.id == endpoint_id)
    answers = []
    for row in db.session.execute(query):
        endpoint, delivery_id, delivery_status = row[0], row[1], row[2]
        failed = [code for (code, _), passed in zip(rules, row[3:], strict=True) if not passed]
        if event_type is None:
            failed.insert(0, UNKNOWN_TYPE)
        elif archived:
            failed.insert(0, TYPE_ARCHIVED)
        if facts.source not in FANNED_OUT:
            failed.insert(0, TEST_EVENT)
        elif facts.about_endpoint_id == endpoint.id:
            failed.insert(0, ABOUT_ITSELF)
        answers.append(_answer(endpoint, facts, failed, delivery_id, delivery_status))
    return answers


def _answer(endpoint, facts, failed, delivery_id, delivery_status) -> Explanation:
    would = not failed
    if delivery_id is not None:
        outcome = DELIVERY_OUTCOMES.get(delivery_status, PENDING)
        detail = _delivery_sentence(outcome, delivery_status)
    elif failed:
        outcome = failed[0]
        detail = _rule_sentence(outcome, endpoint, facts)
    else:
        outcome = WOULD_DELIVER
        detail = (
            "would get it now, but has no delivery: its configuration changed after the "
            "event arrived (replay or resend sends it)"
            if facts.event_id is not None
            else "would get a delivery"
        )
    return Explanation(
        endpoint.id, endpoint.url, outcome, would, failed, detail, delivery_id, delivery_status
    )


def _delivery_sentence(outcome: str, status: str) -> str:
    return {
        DELIVERED: "delivered",
        FAILED: "delivery failed: every scheduled try failed",
        EXPIRED: "delivery expired: not delivered before its event type's deadline",
        CANCELLED: "delivery cancelled (the endpoint was deleted while it waited)",
    }.get(outcome, f"delivery {status.replace('_', ' ')}")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "an unknown time"


def _rule_sentence(code: str, endpoint: Endpoint, facts: EventFacts) -> str:
    if code == fanout.DELETED:
        return f"deleted on {_when(endpoint.deleted_at)}"
    if code == fanout.CREATED_AFTER_EVENT:
        how = "subscribed to the category but " if endpoint.all_category_events else ""
        return f"{how}created on {_when(endpoint.created_at)}, after the event arrived"
    if code == fanout.NOT_SUBSCRIBED:
        return f"not subscribed to {facts.type_name}"
    if code == fanout.MERCHANT_MISMATCH:
        theirs = repr(facts.merchant_id) if facts.merchant_id else "no merchant"
        return f"merchant filter {endpoint.merchant_id!r} does not match the event's {theirs}"
    if code == fanout.DISABLED:
        who = {
            "gone": "by the receiver answering 410 Gone",
            "auto": f"automatically ({endpoint.disabled_note or 'persistent failures'})",
        }.get(endpoint.disabled_reason or "", f"by {endpoint.disabled_by or 'unknown'}")
        return f"disabled since {_when(endpoint.disabled_at)} {who}"
    if code == TYPE_ARCHIVED:
        return f"event type {facts.type_name} is archived: new events of it are refused at ingest"
    if code == UNKNOWN_TYPE:
        return f"event type {facts.type_name} is not in the catalog"
    if code == ABOUT_ITSELF:
        return "an operational event never goes to the endpoint it is about (loop guard)"
    if code == TEST_EVENT:
        return "a test event goes only to the endpoint it was sent to"
    return code


def explain_event(event: Event) -> list[Explanation]:
    return explain(facts_of(event))


def explain_for_endpoint(event: Event, endpoint_id: int) -> Explanation | None:
    answers = explain(facts_of(event), endpoint_id)
    return answers[0] if answers else None
