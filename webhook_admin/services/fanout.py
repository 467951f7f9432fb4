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


def subscription_matches(type_id, category_id, merchant_id):
    """The endpoint subscribes to the type (by name or by whole category) and its merchant
    filter, if any, is the event's merchant; enabled or not (a replay asks while it was off)."""
    return and_(
        or_(
            exists().where(
                endpoint_event_types.c.endpoint_id == Endpoint.id,
                endpoint_event_types.c.event_type_id == type_id,
            ),
            and_(Endpoint.all_category_events.is_(True), Endpoint.category_id == category_id),
        ),
        # A NULL merchant compares false here, leaving only endpoints without a filter.
        or_(Endpoint.merchant_id.is_(None), Endpoint.merchant_id == merchant_id),
    )


def _subscribed(type_id, category_id, merchant_id):
    """Enabled, live endpoints that subscribe to the event (the rule of every new event)."""
    return and_(
        Endpoint.enabled.is_(True),
        Endpoint.deleted_at.is_(None),
        subscription_matches(type_id, category_id, merchant_id),
    )


# Built once, for ingest (the hottest request of the web app): the event type by name with
# its subscribers. No row: unknown type; one row with a NULL endpoint: nobody subscribes.
TYPE_AND_SUBSCRIBERS = (
    select(event_types.c.archived, Endpoint.id)
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


def type_and_subscribers(connection, name: str, merchant_id: str | None):
    """The event type `name` and the endpoints its events go to; None if no such type."""
    rows = connection.execute(
        TYPE_AND_SUBSCRIBERS, {"name": name, "merchant_id": merchant_id}
    ).all()
    if not rows:
        return None
    ids = [endpoint_id for _, endpoint_id in rows if endpoint_id is not None]
    return TypeAndSubscribers(rows[0].archived, ids)


# Built once: one multi-row INSERT ... RETURNING (SQLAlchemy's insertmanyvalues), no read-back
# query. The ids come back in any order (their jobs are queued together); asking for the
# parameters' order made PostgreSQL's form an INSERT ... SELECT with a sort.
INSERT_DELIVERIES = insert(Delivery.__table__).returning(Delivery.__table__.c.id)


def create_deliveries(
    event_id: str, endpoint_ids: list[int], trigger: str = Trigger.AUTOMATIC
) -> list[int]:
    """Insert one waiting delivery per endpoint with a single multi-row INSERT; return their
    ids (in no particular order)."""
    return _insert_deliveries([(event_id, endpoint_id) for endpoint_id in endpoint_ids], trigger)


def create_endpoint_deliveries(
    endpoint_id: int, event_ids: list[str], trigger: str = Trigger.MANUAL
) -> list[int]:
    """One waiting delivery per event for one endpoint (a replay): the same INSERT."""
    return _insert_deliveries([(event_id, endpoint_id) for event_id in event_ids], trigger)


def _insert_deliveries(pairs: list[tuple[str, int]], trigger: str) -> list[int]:
    if not pairs:
        return []
    now = utcnow()
    rows = [
        {
            "event_id": event_id,
            "endpoint_id": endpoint_id,
            "status": DeliveryStatus.PENDING,
            "attempts_count": 0,
            "next_trigger": trigger,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event_id, endpoint_id in pairs
    ]
    # On the session's connection: a Core statement needs none of Session.execute's ORM steps.
    return list(db.session.connection().execute(INSERT_DELIVERIES, rows).scalars())
