"""/api/v1/deliveries and /api/v1/events: the delivery monitor and event log, read-only
except a delivery's retry. Emitting events stays on the signed ingest."""

from __future__ import annotations

from flask import request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ...extensions import db
from ...models import Delivery, Event
from ...queues import enqueue_deliveries
from ...services.bulk_retry import RetryRefused, retry_delivery
from ...services.explain import explain_event
from ...services.queries import DeliveryFilters, deliveries_page, events_page
from . import bp
from . import schemas as s
from .core import actor, after_commit, api
from .cursors import encode_event_cursor, event_cursor, id_cursor, naive_utc
from .out import attempt_out, delivery_out, event_out
from .problems import ApiProblem

BIGINT_MAX = 2**63 - 1


def load_delivery(delivery_id: int) -> Delivery:
    delivery = db.session.get(Delivery, delivery_id) if 0 < delivery_id <= BIGINT_MAX else None
    if delivery is None:
        raise ApiProblem(404, f"no delivery with id {delivery_id}")
    return delivery


@bp.get("/deliveries")
@api(query=s.DeliveryQuery, resp={200: s.DeliveryPage}, tags=("deliveries",))
def list_deliveries(query: s.DeliveryQuery):
    """Deliveries, newest first (keyset pages), filtered."""
    filters = DeliveryFilters(
        status=query.status or "",
        endpoint_id=query.endpoint_id,
        event_type=query.event_type or "",
        category=query.category or "",
        merchant_id=query.merchant_id or "",
        event_id=query.event_id or "",
        created_since=naive_utc(query.since),
        created_until=naive_utc(query.until),
    )
    page = deliveries_page(filters, id_cursor(query.after), limit=query.limit)
    next_cursor = str(page.next_cursor) if page.next_cursor is not None else None
    return {"data": [delivery_out(d) for d in page.items], "next": next_cursor}


@bp.get("/deliveries/<int:delivery_id>")
@api(resp={200: s.DeliveryDetail}, tags=("deliveries",))
def get_delivery(delivery_id: int):
    """One delivery with its attempts, oldest first."""
    delivery = load_delivery(delivery_id)
    attempts = sorted(delivery.attempts, key=lambda a: a.number)
    return delivery_out(delivery) | {"attempts": [attempt_out(a) for a in attempts]}


@bp.post("/deliveries/<int:delivery_id>/retry")
@api(admin=True, resp={202: s.RetryQueued}, tags=("deliveries",))
def retry(delivery_id: int):
    """Send the delivery again now (a manual attempt); 409 while it is in flight."""
    delivery = load_delivery(delivery_id)
    try:
        attempts_made = retry_delivery(delivery, actor(), request.remote_addr)
    except RetryRefused as exc:
        raise ApiProblem(409, str(exc)) from None
    after_commit(lambda: enqueue_deliveries([(delivery_id, attempts_made)]))
    return {"delivery_id": delivery_id, "status": delivery.status}, 202


@bp.get("/events")
@api(query=s.EventQuery, resp={200: s.EventPage}, tags=("events",))
def list_events(query: s.EventQuery):
    """Received events, newest first (keyset pages)."""
    page = events_page(query.event_type or "", event_cursor(query.after), limit=query.limit)
    return {
        "data": [event_out(e) for e in page.items],
        "next": encode_event_cursor(page.next_cursor),
    }


def find_event(event_id: str, *options) -> Event | None:
    if len(event_id) > 255 or "\x00" in event_id:
        return None
    return db.session.scalar(select(Event).where(Event.id == event_id).options(*options))


def load_event(event_id: str, *options) -> Event:
    event = find_event(event_id, *options)
    if event is None:
        raise ApiProblem(404, f"no event with id {event_id!r}")
    return event


@bp.get("/events/<event_id>")
@api(resp={200: s.EventDetail}, tags=("events",))
def get_event(event_id: str):
    """One event with its deliveries."""
    event = load_event(event_id, selectinload(Event.deliveries).selectinload(Delivery.event))
    deliveries = sorted(event.deliveries, key=lambda d: d.id)
    return event_out(event) | {"deliveries": [delivery_out(d) for d in deliveries]}


@bp.get("/events/<event_id>/explain")
@api(resp={200: s.EventExplanation}, tags=("events",))
def explain_event_api(event_id: str):
    """Every endpoint, with why it got or did not get a delivery of the event (fan-out's
    own rules; a delivery, when there is one, is the answer)."""
    event = load_event(event_id)
    answers = [a.as_json() for a in explain_event(event)]
    return {"event_id": event.id, "event_type": event.type, "endpoints": answers}
