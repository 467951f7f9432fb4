"""Admin edits of the event catalog: add categories, add / edit / archive event types."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from ..extensions import db
from ..models import Category, EventType
from .audit import record_audit


class CatalogError(ValueError):
    """Field name -> message, like the endpoint form's validation errors."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _snapshot(event_type: EventType) -> dict:
    return {
        "name": event_type.name,
        "category": event_type.category.name,
        "description": event_type.description,
        "archived": event_type.archived,
        "expires_after_seconds": event_type.expires_after_seconds,
    }


# A deadline shorter than a minute leaves no room for a single retry; longer than the
# longest retry schedule anyone runs (30 days) is no deadline at all.
DEADLINE_MIN_SECONDS = 60
DEADLINE_MAX_SECONDS = 30 * 24 * 3600


def check_deadline(seconds: int | None) -> int | None:
    """The deadline as stored; CatalogError for one out of range. None: no deadline."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise CatalogError({"expires_after_seconds": "must be a whole number of seconds"})
    if not DEADLINE_MIN_SECONDS <= seconds <= DEADLINE_MAX_SECONDS:
        raise CatalogError(
            {
                "expires_after_seconds": f"must be {DEADLINE_MIN_SECONDS} to "
                f"{DEADLINE_MAX_SECONDS} seconds (30 days), or empty for no deadline"
            }
        )
    return seconds


def set_deadline(event_type: EventType, seconds: int | None, actor: str) -> EventType:
    """Set or clear the type's delivery deadline (applies to events received from now:
    an event's deadline is fixed when it arrives)."""
    before = _snapshot(event_type)
    event_type.expires_after_seconds = check_deadline(seconds)
    db.session.flush()
    if before["expires_after_seconds"] != event_type.expires_after_seconds:
        record_audit(
            actor,
            "catalog.event_type_deadline",
            "event_type",
            event_type.id,
            before,
            _snapshot(event_type),
        )
    return event_type


def add_category(name: str, description: str, actor: str) -> Category:
    name = name.strip()
    # Exact or case-insensitive: SQLite's lower() folds ASCII only, so a non-ASCII name
    # sent twice would pass the second check alone and hit the unique index (a 500).
    exists = db.session.scalar(
        select(Category).where(
            or_(Category.name == name, func.lower(Category.name) == name.lower())
        )
    )
    if exists:
        raise CatalogError({"name": f"a category named {name!r} already exists"})
    category = Category(name=name, description=description.strip())
    db.session.add(category)
    db.session.flush()
    record_audit(
        actor,
        "catalog.category_create",
        "category",
        category.id,
        None,
        {"name": name, "description": category.description},
    )
    return category


def _category(name: str) -> Category:
    category = db.session.scalar(select(Category).where(Category.name == name))
    if category is None:
        raise CatalogError({"category": f"unknown category {name!r}"})
    return category


def add_event_type(
    name: str,
    category: str,
    description: str,
    example: dict,
    actor: str,
    expires_after_seconds: int | None = None,
) -> EventType:
    if db.session.scalar(select(EventType).where(EventType.name == name)):
        raise CatalogError({"name": f"an event type named {name!r} already exists"})
    event_type = EventType(
        name=name,
        category=_category(category),
        description=description.strip(),
        example_payload=example,
        expires_after_seconds=check_deadline(expires_after_seconds),
    )
    db.session.add(event_type)
    db.session.flush()
    record_audit(
        actor, "catalog.event_type_create", "event_type", event_type.id, None, _snapshot(event_type)
    )
    return event_type


def update_event_type(
    event_type: EventType,
    category: str,
    description: str,
    example: dict,
    archived: bool,
    actor: str,
    expires_after_seconds: int | None | object = ...,
) -> EventType:
    """The name stays: producers and receivers know event types by it. The deadline is
    left as it is unless given (None clears it)."""
    before = _snapshot(event_type)
    if expires_after_seconds is not ...:
        event_type.expires_after_seconds = check_deadline(expires_after_seconds)
    event_type.category = _category(category)
    event_type.description = description.strip()
    event_type.example_payload = example
    event_type.archived = archived
    db.session.flush()
    action = "catalog.event_type_update"
    if archived != before["archived"]:
        action = "catalog.event_type_archive" if archived else "catalog.event_type_unarchive"
    record_audit(actor, action, "event_type", event_type.id, before, _snapshot(event_type))
    return event_type
