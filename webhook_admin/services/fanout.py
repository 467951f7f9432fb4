"""Which endpoints an event goes to, and the delivery rows that say so."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, exists, insert, or_, select

from ..clock import utcnow
from ..extensions import db
from ..models import Delivery, DeliveryStatus, Endpoint, Trigger, endpoint_event_types

# Built once (ingest runs it for every event): enabled, live endpoints subscribed to the type
# (by name or by whole category) whose merchant filter, if any, is the event's merchant.
MATCHING_ENDPOINTS = (
    select(Endpoint.id)
    .where(
        Endpoint.enabled.is_(True),
        Endpoint.deleted_at.is_(None),
        or_(
            exists().where(
                endpoint_event_types.c.endpoint_id == Endpoint.id,
                endpoint_event_types.c.event_type_id == bindparam("type_id"),
            ),
            and_(
                Endpoint.all_category_events.is_(True),
                Endpoint.category_id == bindparam("category_id"),
            ),
        ),
        # A NULL merchant compares false here, leaving only endpoints without a filter.
        or_(Endpoint.merchant_id.is_(None), Endpoint.merchant_id == bindparam("merchant_id")),
    )
    .order_by(Endpoint.id)
)


def matching_endpoint_ids(event_type, merchant_id: str | None) -> list[int]:
    """The endpoints an event goes to. `event_type`: an EventType or a row with its id and
    category_id."""
    params = {
        "type_id": event_type.id,
        "category_id": event_type.category_id,
        "merchant_id": merchant_id,
    }
    return list(db.session.scalars(MATCHING_ENDPOINTS, params))


def create_deliveries(
    event_id: str, endpoint_ids: list[int], trigger: str = Trigger.AUTOMATIC
) -> list[int]:
    """Insert one waiting delivery per endpoint with a single multi-row INSERT; return ids."""
    if not endpoint_ids:
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
        for endpoint_id in endpoint_ids
    ]
    # One multi-row INSERT ... RETURNING (SQLAlchemy's insertmanyvalues): no read-back query.
    inserted = db.session.execute(
        insert(Delivery.__table__).returning(Delivery.__table__.c.id, sort_by_parameter_order=True),
        rows,
    )
    return [row.id for row in inserted]
