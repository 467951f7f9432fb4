"""Admin edits of the event catalog: add categories, add / edit / archive event types."""

from __future__ import annotations

from sqlalchemy import and_, exists, func, or_, select

from ..extensions import db
from ..models import Category, Endpoint, EventType, endpoint_event_types
from . import event_schemas
from .audit import record_audit

KEEP = object()  # update_event_type: leave the schema as it is


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
        "trigger_condition": event_type.trigger_condition or "",
        "archived": event_type.archived,
        "json_schema": event_type.json_schema,
        "expires_after_seconds": event_type.expires_after_seconds,
    }


def check_schema_and_example(schema: dict | None, example: dict) -> None:
    """CatalogError unless `schema` is a valid Draft 2020-12 schema (or None: a type without
    one accepts any object) and `example` matches it."""
    if schema is not None:
        problems = event_schemas.schema_problems(schema)
        if problems:
            raise CatalogError({"json_schema": "not a valid JSON Schema: " + "; ".join(problems)})
    violations = event_schemas.example_violations(schema, example)
    if violations:
        raise CatalogError(
            {
                "example_payload": "the example does not match the schema: "
                + "; ".join(str(v) for v in violations)
            }
        )


def subscribed_endpoints(event_type: EventType) -> list[Endpoint]:
    """Live endpoints that receive this type: subscribed by name or to its whole category
    (enabled or not: a disabled one receives it again once enabled)."""
    by_name = exists().where(
        endpoint_event_types.c.endpoint_id == Endpoint.id,
        endpoint_event_types.c.event_type_id == event_type.id,
    )
    whole_category = and_(
        Endpoint.all_category_events.is_(True), Endpoint.category_id == event_type.category_id
    )
    return list(
        db.session.scalars(
            select(Endpoint)
            .where(Endpoint.deleted_at.is_(None), or_(by_name, whole_category))
            .order_by(Endpoint.id)
        )
    )


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
    json_schema: dict | None = None,
    trigger_condition: str = "",
    expires_after_seconds: int | None = None,
) -> EventType:
    if db.session.scalar(select(EventType).where(EventType.name == name)):
        raise CatalogError({"name": f"an event type named {name!r} already exists"})
    check_schema_and_example(json_schema, example)
    event_type = EventType(
        name=name,
        category=_category(category),
        description=description.strip(),
        trigger_condition=trigger_condition.strip(),
        example_payload=example,
        json_schema=json_schema,
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
    json_schema=KEEP,
    trigger_condition: str | None = None,
    expires_after_seconds: int | None | object = ...,
) -> EventType:
    """The name stays: producers and receivers know event types by it. `json_schema` None
    removes the schema (the type then accepts any object); KEEP leaves it. The deadline is
    left as it is unless given (None clears it)."""
    schema = event_type.json_schema if json_schema is KEEP else json_schema
    check_schema_and_example(schema, example)
    before = _snapshot(event_type)
    if expires_after_seconds is not ...:
        event_type.expires_after_seconds = check_deadline(expires_after_seconds)
    event_type.category = _category(category)
    event_type.description = description.strip()
    if trigger_condition is not None:
        event_type.trigger_condition = trigger_condition.strip()
    event_type.example_payload = example
    event_type.json_schema = schema
    event_type.archived = archived
    db.session.flush()
    action = "catalog.event_type_update"
    if archived != before["archived"]:
        action = "catalog.event_type_archive" if archived else "catalog.event_type_unarchive"
    record_audit(actor, action, "event_type", event_type.id, before, _snapshot(event_type))
    return event_type
