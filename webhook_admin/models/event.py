"""Events from SoftPOS, their deliveries to endpoints, and every attempt of each delivery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from .endpoint import Endpoint

# BigInteger ids on PostgreSQL; SQLite only autoincrements a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class DeliveryStatus:
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Not delivered by its event type's deadline (occurred_at + expires_after_seconds): no
    # more automatic tries. Counted apart from failed (the receiver may be fine).
    EXPIRED = "expired"

    ALL = (PENDING, IN_FLIGHT, RETRYING, SUCCEEDED, FAILED, CANCELLED, EXPIRED)
    # Waiting for a try: what a worker may claim and the sweeper watches.
    WAITING = (PENDING, RETRYING)
    FINAL = (SUCCEEDED, FAILED, CANCELLED, EXPIRED)


def rows_in(statuses: tuple[str, ...]) -> str:
    """`status IN ('a', 'b')`: the WHERE of a partial index on PostgreSQL (migration 0013)
    that holds only the deliveries in those statuses, so that a claim and a finish, which
    move a delivery out of them, write no entry there. A statement that should use one
    states the same literals (services/delivery_state.py: status_in), since a prepared
    statement's generic plan knows no parameter's value."""
    return f"status IN ({', '.join(repr(status) for status in statuses)})"


class Trigger:
    AUTOMATIC = "automatic"
    MANUAL = "manual"
    TEST = "test"


class ErrorClass:
    TIMEOUT = "timeout"
    CONNECT = "connect"
    DNS = "dns"
    TLS = "tls"
    BLOCKED = "blocked"
    HTTP = "http"
    INTERRUPTED = "interrupted"  # the worker died mid-attempt; found when its lease expired
    # The event cannot be encoded as a request (e.g. a lone surrogate in a string of an
    # event accepted before ingest refused those); waiting will not change it.
    ENVELOPE = "envelope"

    # Failures that no later try can mend: the delivery fails at once.
    NOT_RETRIED = (BLOCKED, ENVELOPE)


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_received", "received_at"),
        # The events whose sensitive values are still held, by type: the sweeper's erasure
        # after delivery looks only at those of the types that ask for it (without it, a scan
        # of every event every 30 s: bench/findings.md, "Scenario 8: history").
        Index(
            "ix_events_sensitive_pending",
            "type",
            postgresql_where=text("sensitive_encrypted IS NOT NULL"),
            sqlite_where=text("sensitive_encrypted IS NOT NULL"),
        ),
    )

    # The producer's idempotency key: the `webhook-id` of the ingest request.
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(120), index=True)
    data: Mapped[dict] = mapped_column(JSON)
    merchant_id: Mapped[str | None] = mapped_column(String(120), nullable=True, index=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # sha256 of the raw ingest body: the same id with another body is a conflict (409).
    body_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20), default="ingest")
    delivery_count: Mapped[int] = mapped_column(Integer, default=0)
    # `data` holds the marked sensitive values masked; the values themselves are here, one
    # MultiFernet token of [[path, value], ...] (services/sensitive.py). NULL: none, or erased
    # (then sensitive_purged_at says when).
    sensitive_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    sensitive_purged_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # occurred_at + its type's expires_after_seconds, fixed at ingest; NULL: no deadline.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="event")


class Delivery(db.Model):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_deliveries_event_endpoint"),
        # The sweeper: waiting deliveries by due time; expired leases of in-flight ones.
        # Partial on PostgreSQL (0013): a delivery has an entry only while it is what they find.
        Index(
            "ix_deliveries_due",
            "status",
            "next_attempt_at",
            postgresql_where=text(rows_in(DeliveryStatus.WAITING)),
        ),
        Index(
            "ix_deliveries_lease",
            "status",
            "lease_expires_at",
            postgresql_where=text(rows_in((DeliveryStatus.IN_FLIGHT,))),
        ),
        # The monitor and endpoint pages: newest first, per endpoint.
        Index("ix_deliveries_endpoint_id", "endpoint_id", "id"),
        # ...and by status within an endpoint (migration 0010): ?status=failed&endpoint_id=N.
        Index(
            "ix_deliveries_endpoint_status_id",
            "endpoint_id",
            "status",
            "id",
            postgresql_include=["created_at"],  # the endpoint's chart, index-only
        ),
        # The monitor's filters, newest first and counted by index (migration 0008, issue 16):
        # status, error class, the last answer's class, the time range; the event id prefix
        # on PostgreSQL (SQLite searches a range of the unique constraint's index, which leads
        # with event_id and also serves an event's deliveries: no index of event_id alone).
        Index("ix_deliveries_status_id", "status", "id"),
        Index("ix_deliveries_created", "created_at"),  # also retention's oldest-first batches
        # Partial on PostgreSQL (0013): nothing for a delivery without an error or an answer
        # (every new one, every success); their filters' `=` implies the IS NOT NULL.
        Index(
            "ix_deliveries_error_id",
            "last_error_class",
            "id",
            postgresql_where=text("last_error_class IS NOT NULL"),
        ),
        # INCLUDE: PostgreSQL answers from an expression index alone only with the column in it
        Index(
            "ix_deliveries_status_class_id",
            text("(last_status_code / 100)"),
            "id",
            postgresql_include=["last_status_code"],
            postgresql_where=text("last_status_code IS NOT NULL"),
        ),
        # The monitor's filters by the event's merchant and type (migration 0011): the two
        # columns are copies of the event's, written at fan-out, so those filters walk an
        # index of the delivery's own instead of looking up each delivery's event.
        Index("ix_deliveries_merchant_id", "merchant_id", "id"),
        Index("ix_deliveries_event_type_id", "event_type", "id"),
        # The rows from before 0011 left to fill, oldest first (empty once filled).
        Index(
            "ix_deliveries_unfilled",
            "id",
            postgresql_where=text("event_type IS NULL"),
            sqlite_where=text("event_type IS NULL"),
        ),
        Index(
            "ix_deliveries_event_id_pattern",
            "event_id",
            postgresql_ops={"event_id": "varchar_pattern_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id"))
    # Copies of the event's type and merchant (an event never changes either), for the
    # monitor's filters. NULL only on rows older than migration 0011 that the backfill
    # (services/delivery_event_columns.py) has not reached yet; merchant_id is also NULL for
    # an event without a merchant.
    event_type: Mapped[str | None] = mapped_column(String(120), nullable=True)
    merchant_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts_count: Mapped[int] = mapped_column(Integer, default=0)
    # How the next attempt was asked for (automatic, manual, test).
    next_trigger: Mapped[str] = mapped_column(String(20), default=Trigger.AUTOMATIC)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error_class: Mapped[str | None] = mapped_column(String(20), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    event: Mapped[Event] = relationship(back_populates="deliveries")
    endpoint: Mapped[Endpoint] = relationship()
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="delivery", order_by="Attempt.number.desc()"
    )


class Attempt(db.Model):
    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "number", name="uq_attempts_delivery_number"),
        Index("ix_attempts_started", "started_at"),
        # Success rates and response times per endpoint over the last 24 hours (0008).
        Index(
            "ix_attempts_endpoint_started",
            "endpoint_id",
            "started_at",
            # the endpoint page's durations and success rate read from the index alone
            postgresql_include=["duration_ms", "response_status", "succeeded"],
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    # Denormalised so health and charts per endpoint need no join over a big table.
    endpoint_id: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    request_url: Mapped[str] = mapped_column(String(2048))
    request_headers: Mapped[dict] = mapped_column(JSON, default=dict)
    request_body: Mapped[str] = mapped_column(Text, default="")
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_headers: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_class: Mapped[str | None] = mapped_column(String(20), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    succeeded: Mapped[bool] = mapped_column(default=False)

    delivery: Mapped[Delivery] = relationship(back_populates="attempts")


@event.listens_for(Delivery, "before_insert")
def _copy_event_columns(_mapper, connection, delivery: Delivery) -> None:
    """A delivery made through the ORM (fan-out inserts with Core and passes them) copies
    its event's type and merchant too, so no code path leaves the filters' columns empty."""
    if delivery.event_type is not None:
        return
    source = delivery.__dict__.get("event")  # the related object if set, without a lazy load
    if source is None:
        events = Event.__table__
        source = connection.execute(
            select(events.c.type, events.c.merchant_id).where(events.c.id == delivery.event_id)
        ).first()
    if source is not None:
        delivery.event_type, delivery.merchant_id = source.type, source.merchant_id
