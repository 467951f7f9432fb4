"""Which endpoints an event goes to, and the delivery rows that say so."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, exists, insert, or_, select

from ..clock import utcnow
from ..extensions import db
from ..models import (
    Delivery,
    DeliveryStatus,
    Endpoint,
    EventType,
    Trigger,
    endpoint_event_types,
)

event_types = EventType.__table__


# Why an endpoint gets no delivery of an event, one code per rule of fan-out (explain.py
# names them to operators). The rules themselves are the SQL clauses below: fan-out ANDs
# them, explain selects each one, so the two cannot drift apart.
NOT_SUBSCRIBED = "not_subscribed"
MERCHANT_MISMATCH = "merchant_mismatch"
DELETED = "deleted"
DISABLED = "disabled"
CREATED_AFTER_EVENT = "created_after_event"


def _subscribes(type_id, category_id):
    """The endpoint names the type, or takes its whole category."""
    return or_(
        exists().where(
            endpoint_event_types.c.endpoint_id == Endpoint.id,
            endpoint_event_types.c.event_type_id == type_id,
        ),
        and_(Endpoint.all_category_events.is_(True), Endpoint.category_id == category_id),
    )


def _merchant_matches(merchant_id):
    # A NULL merchant compares false here, leaving only endpoints without a filter.
    return or_(Endpoint.merchant_id.is_(None), Endpoint.merchant_id == merchant_id)


def subscription_rules(type_id, category_id, merchant_id) -> list[tuple[str, object]]:
    """(reason when false, clause): what the endpoint wants, enabled or not."""
    return [
        (NOT_SUBSCRIBED, _subscribes(type_id, category_id)),
        (MERCHANT_MISMATCH, _merchant_matches(merchant_id)),
    ]


def routing_rules(type_id, category_id, merchant_id, received_at=None) -> list[tuple[str, object]]:
    """Every rule an endpoint must pass to get a new event's delivery, in the order an
    operator reads them. `received_at`: asked about an event received then (explain), the
    endpoint must have existed; at ingest every endpoint there is did, so no clause."""
    rules = [
        (DELETED, Endpoint.deleted_at.is_(None)),
        *subscription_rules(type_id, category_id, merchant_id),
        (DISABLED, Endpoint.enabled.is_(True)),
    ]
    if received_at is not None:
        rules.insert(1, (CREATED_AFTER_EVENT, Endpoint.created_at <= received_at))
    return rules


def subscription_matches(type_id, category_id, merchant_id):
    """The endpoint subscribes to the type (by name or by whole category) and its merchant
    filter, if any, is the event's merchant; enabled or not (a replay asks while it was off)."""
    return and_(*(clause for _, clause in subscription_rules(type_id, category_id, merchant_id)))


def _subscribed(type_id, category_id, merchant_id):
    """Enabled, live endpoints that subscribe to the event (the rule of every new event)."""
    return and_(*(clause for _, clause in routing_rules(type_id, category_id, merchant_id)))


# Built once, for ingest (the hottest request of the web app): the event type by name with
# its subscribers. No row: unknown type; one row with a NULL endpoint: nobody subscribes.
TYPE_AND_SUBSCRIBERS = (
    select(event_types.c.archived, event_types.c.expires_after_seconds, Endpoint.id)
    .select_from(event_types)
    .outerjoin(
        Endpoint,
        _subscribed(event_types.c.id, event_types.c.category_id, bindparam("merchant_id")),
    )
    .where(event_types.c.name == bindparam("name"))
    .order_by(Endpoint.id)
)


@dataclass(frozen=True)
class TypeAndSubscribers:
    archived: bool
    endpoint_ids: list[int]
    expires_after_seconds: int | None = None


def type_and_subscribers(connection, name: str, merchant_id: str | None):
    """The event type `name` and the endpoints its events go to; None if no such type."""
    rows = connection.execute(
        TYPE_AND_SUBSCRIBERS, {"name": name, "merchant_id": merchant_id}
    ).all()
    if not rows:
        return None
    ids = [endpoint_id for *_, endpoint_id in rows if endpoint_id is not None]
    return TypeAndSubscribers(rows[0].archived, ids, rows[0].expires_after_seconds)


# Built once: one multi-row INSERT ... RETURNING (SQLAlchemy's insertmanyvalues), no read-back
# query. The ids come back in any order (their jobs are queued together); asking for the
# parameters' order made PostgreSQL's form an INSERT ... SELECT with a sort.
INSERT_DELIVERIES = insert(Delivery.__table__).returning(Delivery.__table__.c.id)


@dataclass(frozen=True)
class EventRef:
    """What each delivery copies from its event: the monitor filters deliveries by the
    event's type and merchant without looking the event up (migration 0011)."""

    id: str
    type: str
    merchant_id: str | None = None

    @classmethod
    def of(cls, event) -> EventRef:
        return cls(event.id, event.type, event.merchant_id)


def create_deliveries(
    event: EventRef,
    endpoint_ids: list[int],
    trigger: str = Trigger.AUTOMATIC,
    status: str = DeliveryStatus.PENDING,
) -> list[int]:
    """Insert one waiting delivery per endpoint with a single multi-row INSERT; return their
    ids (in no particular order). `status` expired: the event arrived past its deadline."""
    return _insert_deliveries(
        [(event, endpoint_id) for endpoint_id in endpoint_ids], trigger, status
    )


def create_endpoint_deliveries(
    endpoint_id: int, events: list[EventRef], trigger: str = Trigger.MANUAL
) -> list[int]:
    """One waiting delivery per event for one endpoint (a replay): the same INSERT."""
    return _insert_deliveries([(event, endpoint_id) for event in events], trigger)


def _insert_deliveries(
    pairs: list[tuple[EventRef, int]], trigger: str, status: str = DeliveryStatus.PENDING
) -> list[int]:
    if not pairs:
        return []
    now = utcnow()
    waiting = status == DeliveryStatus.PENDING
    rows = [
        {
            "event_id": event.id,
            "event_type": event.type,
            "merchant_id": event.merchant_id,
            "endpoint_id": endpoint_id,
            "status": status,
            "attempts_count": 0,
            "next_trigger": trigger,
            "next_attempt_at": now if waiting else None,
            "created_at": now,
            "completed_at": None if waiting else now,
        }
        for event, endpoint_id in pairs
    ]
    # On the session's connection: a Core statement needs none of Session.execute's ORM steps.
    return list(db.session.connection().execute(INSERT_DELIVERIES, rows).scalars())
