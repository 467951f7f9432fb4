"""Accepting an event from SoftPOS: validate, store, fan out. The caller commits, then enqueues."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Text, bindparam, cast, select
from sqlalchemy.dialects import postgresql, sqlite

from ..clock import utcnow
from ..extensions import db
from ..models import Delivery, DeliveryStatus, Event, EventType
from . import event_schemas, json_limits, sensitive
from .fanout import EventRef, TypeAndSubscribers, create_deliveries, type_and_subscribers

log = logging.getLogger(__name__)
MAX_ID_LENGTH = Event.id.type.length
EVENT_ID = re.compile(r"[!-~]+")  # printable ASCII, space excluded
COLUMN_LIMITS = {"type": Event.type.type.length, "merchant_id": Event.merchant_id.type.length}


class IngestError(ValueError):
    """The event is not acceptable; `status` is the HTTP status, the message says why."""

    def __init__(self, message: str, status: int = 400, violations: list | None = None):
        super().__init__(message)
        self.status = status
        # Schema violations ({"path", "reason"}), each also in the message.
        self.violations = violations or []


@dataclass(frozen=True)
class IngestResult:
    event_id: str
    delivery_ids: list[int]
    created: bool  # False when this webhook-id was already accepted

    def as_json(self) -> dict:
        return {"id": self.event_id, "deliveries": len(self.delivery_ids)}


def deadline_of(occurred_at: datetime, expires_after_seconds: int | None) -> datetime | None:
    """The event's delivery deadline; None without one. Beyond datetime's range (a far
    future occurred_at), none either."""
    if expires_after_seconds is None:
        return None
    try:
        return occurred_at + timedelta(seconds=expires_after_seconds)
    except OverflowError:
        return None


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def check_event_id(event_id: str) -> None:
    """The webhook-id becomes the `webhook-id` header of every delivery: printable ASCII,
    no spaces (HTTP strips them at the ends, and the id is signed), no control characters
    (CR/LF would make every send of the event fail)."""
    if not 0 < len(event_id) <= MAX_ID_LENGTH:
        raise IngestError(f"webhook-id must be 1 to {MAX_ID_LENGTH} characters")
    if not EVENT_ID.fullmatch(event_id):
        raise IngestError("webhook-id must be printable ASCII without spaces or control characters")


def parse_event_body(body: bytes) -> dict:
    try:
        payload = json_limits.loads(body)
    except json_limits.JSONLimitError as exc:
        raise IngestError(str(exc)) from None
    if not isinstance(payload, dict):
        raise IngestError(f"body must be a JSON object, got {type(payload).__name__}")
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise IngestError("'type' is required and must be a string naming an event type")
    data = payload.get("data", {})
    if not isinstance(data, dict):
        raise IngestError(f"'data' must be a JSON object, got {type(data).__name__}")
    merchant_id = payload.get("merchant_id")
    if merchant_id is not None and not isinstance(merchant_id, str):
        raise IngestError("'merchant_id' must be a string when given")
    # Longer than their columns, PostgreSQL refuses the insert (a DataError, a 500).
    for name, limit in COLUMN_LIMITS.items():
        if len(payload.get(name) or "") > limit:
            raise IngestError(f"'{name}' must be at most {limit} characters")
    return payload


def parse_occurred_at(raw: object) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise IngestError("'occurred_at' must be an ISO 8601 string when given")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(f"'occurred_at' is not ISO 8601: {raw[:64]!r}") from None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise IngestError(f"'occurred_at' is out of range in UTC: {raw!r}") from None
    return value


events = Event.__table__
deliveries = Delivery.__table__
# Core statements, built once: ingest is the hottest request the web app serves.
EXISTING_DIGEST = select(events.c.body_sha256).where(events.c.id == bindparam("event_id"))
DELIVERY_IDS = (
    select(deliveries.c.id)
    .where(deliveries.c.event_id == bindparam("event_id"))
    .order_by(deliveries.c.id)
)


def _insert_unless_taken(dialect_insert):
    """The event row, unless its id is taken: no row comes back then. One statement instead
    of "is the id taken?" and an INSERT (the columns come from the parameters' keys)."""
    return (
        dialect_insert(events)
        .on_conflict_do_nothing(index_elements=[events.c.id])
        .returning(events.c.id)
    )


INSERT_NEW_EVENT = {
    "postgresql": _insert_unless_taken(postgresql.insert),
    "sqlite": _insert_unless_taken(sqlite.insert),
}


def find_existing(event_id: str, digest: str) -> IngestResult | None:
    """The first result for this id; IngestError 409 if it came with another body."""
    stored_digest = db.session.scalar(EXISTING_DIGEST, {"event_id": event_id})
    if stored_digest is None:
        return None
    if stored_digest != digest:
        raise IngestError(
            f"event {event_id!r} was already accepted with a different body", status=409
        )
    ids = list(db.session.scalars(DELIVERY_IDS, {"event_id": event_id}))
    return IngestResult(event_id, ids, created=False)


def ingest_event(event_id: str, body: bytes, source: str = "ingest") -> IngestResult:
    """Store the event and its deliveries (flushed, not committed); for a webhook-id seen
    before, the first result (or IngestError 409 if it came with another body)."""
    check_event_id(event_id)
    digest = body_digest(body)
    connection = db.session.connection()
    try:
        payload, occurred_at, routing = _validated(connection, body)
        data, sealed = _protected(connection, payload)
    except IngestError:
        # A webhook-id seen before keeps its first answer even if its type was archived
        # since (or another body, invalid this time, came with it: 409).
        existing = find_existing(event_id, digest)
        if existing is None:
            raise
        return existing
    now = utcnow()
    occurred_at = occurred_at or now
    expires_at = deadline_of(occurred_at, routing.expires_after_seconds)
    inserted = connection.execute(
        INSERT_NEW_EVENT[connection.dialect.name],
        {
            "id": event_id,
            "type": payload["type"],
            "data": data,
            "sensitive_encrypted": sealed,
            "merchant_id": payload.get("merchant_id"),
            "occurred_at": occurred_at,
            "expires_at": expires_at,
            "received_at": now,
            "body_sha256": digest,
            "source": source,
            "delivery_count": len(routing.endpoint_ids),
        },
    ).first()
    if inserted is None:  # accepted before (or by a concurrent request, now committed)
        existing = find_existing(event_id, digest)
        if existing is None:
            raise IngestError(f"event {event_id!r} is being accepted, retry", status=409)
        return existing
    # Past its deadline already (it arrived late): kept and shown, never sent automatically.
    late = expires_at is not None and expires_at <= now
    status = DeliveryStatus.EXPIRED if late else DeliveryStatus.PENDING
    facts = EventRef(event_id, payload["type"], payload.get("merchant_id"))
    delivery_ids = create_deliveries(facts, routing.endpoint_ids, status=status)
    log.info(
        "event accepted event_id=%s type=%s deliveries=%d",
        event_id,
        payload["type"],
        len(delivery_ids),
    )
    return IngestResult(event_id, delivery_ids, created=True)


# The schema as its stored text: the text is the cache key of its compiled validator (and
# parsing it again on every ingest is what the cache saves).
TYPE_PROTECTION = select(
    cast(EventType.__table__.c.json_schema, Text).label("schema_text"),
    EventType.__table__.c.pan_guard,
).where(EventType.__table__.c.name == bindparam("name"))


def _protected(connection, payload: dict) -> tuple[dict, str | None]:
    """`data` as stored (marked values masked) and the marked values sealed (one MultiFernet
    token), or None when it has none; IngestError when the PAN guard or the type's JSON
    Schema refuses the data."""
    from flask import current_app

    data = payload.get("data", {})
    row = connection.execute(TYPE_PROTECTION, {"name": payload["type"]}).first()
    type_schema = event_schemas.compiled(payload["type"], row.schema_text if row else None)
    schema = type_schema.schema
    # The PAN guard first: its answer names the path without echoing the number, where a
    # schema violation would quote the value.
    if row is None or row.pan_guard:
        path = sensitive.find_unmarked_pan(schema, data)
        if path is not None:
            raise IngestError(
                f"{path} holds what looks like a card number (13-19 digits passing the Luhn "
                "check) in a field not marked as a card number; card numbers are refused "
                'outside fields marked "x-sensitive": "pan"'
            )
    check_schema(payload["type"], type_schema, data)
    masked, values = sensitive.split_sensitive(schema, data)
    if not values:
        return data, None
    box = current_app.extensions["secret_box"]
    return masked, box.encrypt(sensitive.dumps_values(values))


def check_schema(type_name: str, type_schema: event_schemas.CompiledSchema, data: dict) -> None:
    """IngestError (400) listing every violation of the type's schema, up to 20."""
    violations, more = type_schema.violations(data)
    if not violations:
        return
    summary = "; ".join(str(v) for v in violations)
    count = f"{len(violations)}{'+' if more else ''}"
    raise IngestError(
        f"'data' does not match the schema of {type_name!r} ({count} violations"
        f"{', the first 20 shown' if more else ''}): {summary}",
        violations=[v.as_json() for v in violations],
    )


def _validated(connection, body: bytes) -> tuple[dict, datetime | None, TypeAndSubscribers]:
    """The parsed body, its time if given, and its type's subscribers; IngestError (400) if
    any of them is refused."""
    payload = parse_event_body(body)
    occurred_at = parse_occurred_at(payload.get("occurred_at"))
    type_name = payload["type"]
    routing = type_and_subscribers(connection, type_name, payload.get("merchant_id"))
    if routing is None:
        raise IngestError(f"unknown event type {type_name!r}: add it to the catalog first")
    if routing.archived:
        raise IngestError(f"event type {type_name!r} is archived and no longer accepted")
    return payload, occurred_at, routing
