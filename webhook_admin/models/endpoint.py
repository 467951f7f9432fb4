"""Endpoints: where operators want events delivered, and which events they want."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
    literal_column,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db
from .catalog import Category, EventType

endpoint_event_types = Table(
    "endpoint_event_types",
    db.Model.metadata,
    Column("endpoint_id", ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True),
    Column("event_type_id", ForeignKey("event_types.id"), primary_key=True, index=True),
)

# Why an endpoint is disabled; shown on its status badge.
DISABLED_MANUAL = "manual"
DISABLED_GONE = "gone"  # the receiver answered 410 Gone
DISABLED_AUTO = "auto"  # failed every attempt for too long
CERT_WARNING_DAYS = 14  # the pages warn when the receiver's certificate expires sooner
DNS_WARNING_AFTER = 2  # tries in a row whose host name did not resolve


class Endpoint(db.Model):
    __tablename__ = "endpoints"
    __table_args__ = (Index("ix_endpoints_live", "deleted_at", "enabled"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), nullable=True)
    # True: every event type of the category, including ones added to the catalog later.
    all_category_events: Mapped[bool] = mapped_column(Boolean, default=False)
    merchant_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    custom_headers: Mapped[dict] = mapped_column(JSON, default=dict)
    timeout_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)

    # Signing secrets, encrypted at rest (see secrets_box.py); never stored in clear.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    disabled_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    disabled_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    # Health: the first failure after the last success, for warnings and auto-disable.
    failing_since: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_attempt_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_attempt_error: Mapped[str | None] = mapped_column(String(20), nullable=True)
    # Operational events (services/operational_events.py): when endpoint.failing last went
    # out (at most once an hour), and whether the streak it announced still runs (the
    # first success after it sends endpoint.recovered).
    failing_notified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    failing_announced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The receiver's TLS certificate as the last new connection saw it (delivery/
    # certificates.py), and the warning stage (14, 3 days) already announced for it.
    cert_not_after: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    cert_issuer: Mapped[str | None] = mapped_column(String(500), nullable=True)
    cert_serial: Mapped[str | None] = mapped_column(String(100), nullable=True)
    cert_warned_days: Mapped[int | None] = mapped_column(Integer, nullable=True)

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # The configuration's version, which workers key their cached copy on
    # (delivery/send_cache.py): every UPDATE of the row moves it, in SQL (two writers never
    # both make the same version), unless the statement says otherwise. Only health writes
    # do, with HEALTH_ONLY below: those are not configuration.
    config_version: Mapped[int] = mapped_column(
        Integer,
        nullable=False,
        default=1,
        server_default="1",
        onupdate=literal_column("config_version + 1"),
    )
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    category: Mapped[Category | None] = relationship()
    event_types: Mapped[list[EventType]] = relationship(
        secondary=endpoint_event_types, order_by="EventType.name"
    )

    def __repr__(self) -> str:
        return f"<Endpoint {self.id} {self.url}>"

    @property
    def cert_days_left(self) -> int | None:
        """Whole days until the certificate expires (negative: expired); None: none seen."""
        if self.cert_not_after is None:
            return None
        return (self.cert_not_after - utcnow()).days

    @property
    def cert_expires_soon(self) -> bool:
        days = self.cert_days_left
        return days is not None and days < CERT_WARNING_DAYS

    @property
    def dns_failing(self) -> bool:
        """The host name did not resolve on the last tries: its own warning, not a 5xx."""
        return (
            self.last_attempt_error == "dns"
            and (self.consecutive_failures or 0) >= DNS_WARNING_AFTER
        )


# The SET values that say an UPDATE writes an endpoint's health and nothing of its
# configuration (services/endpoint_health.py): the configuration's version, and the time an
# operator last changed it, stay, so no worker re-reads the endpoint for it. Forgetting them
# costs re-reads, never a stale configuration.
HEALTH_ONLY = {"config_version": Endpoint.config_version, "updated_at": Endpoint.updated_at}
