"""The event catalog: categories and the event types SoftPOS can emit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db


class Category(db.Model):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")

    event_types: Mapped[list[EventType]] = relationship(
        back_populates="category", order_by="EventType.name"
    )

    def __repr__(self) -> str:
        return f"<Category {self.name}>"


class EventType(db.Model):
    __tablename__ = "event_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # When the event fires, written for a merchant's developer (the docs page shows it).
    trigger_condition: Mapped[str] = mapped_column(Text, default="", server_default="")
    example_payload: Mapped[dict] = mapped_column(JSON, default=dict)
    json_schema: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # Refuse an event whose data holds a card-like number outside a field marked `pan`.
    pan_guard: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Erase the sensitive values once every delivery of an event is final.
    purge_after_delivery: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # The deadline: a delivery not made by occurred_at + this many seconds gets no more
    # automatic tries and becomes `expired`. NULL: no deadline (the retry schedule alone).
    expires_after_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    category: Mapped[Category] = relationship(back_populates="event_types")

    def __repr__(self) -> str:
        return f"<EventType {self.name}>"
