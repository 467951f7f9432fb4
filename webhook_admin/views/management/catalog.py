"""/api/v1/event-types and /api/v1/categories: the catalog; admins add, change, archive."""

from __future__ import annotations

from sqlalchemy import select

from ...extensions import db
from ...models import Category, EventType
from ...services.catalog import list_catalog
from ...services.catalog_admin import (
    KEEP,
    CatalogError,
    add_category,
    add_event_type,
    subscribed_endpoints,
    update_event_type,
)
from . import bp
from . import schemas as s
from .core import actor, api
from .out import category_out, event_type_out
from .problems import ApiProblem, field_errors

TAGS = ("catalog",)


def load_type(name: str) -> EventType:
    event_type = None
    if len(name) <= 120 and "\x00" not in name:
        event_type = db.session.scalar(select(EventType).where(EventType.name == name))
    if event_type is None:
        raise ApiProblem(404, f"no event type named {name!r}")
    return event_type


def invalid(exc: CatalogError) -> ApiProblem:
    return ApiProblem(422, str(exc), field_errors(exc.errors))


@bp.get("/event-types")
@api(resp={200: s.EventTypeList}, tags=TAGS)
def list_types():
    """Every event type, archived ones included, by name."""
    types = db.session.scalars(select(EventType).order_by(EventType.name)).all()
    return {"data": [event_type_out(t) for t in types]}


@bp.get("/event-types/<name>")
@api(resp={200: s.EventType}, tags=TAGS)
def get_type(name: str):
    """One event type with its payload schema, example and the endpoints that receive it."""
    event_type = load_type(name)
    return event_type_out(event_type) | {
        "subscribed_endpoints": [e.id for e in subscribed_endpoints(event_type)]
    }


@bp.post("/event-types")
@api(admin=True, json=s.EventTypeCreate, resp={201: s.EventType}, tags=TAGS)
def create_type(json: s.EventTypeCreate):
    """Add an event type to a category."""
    try:
        event_type = add_event_type(
            json.name,
            json.category,
            json.description,
            json.example_payload,
            actor(),
            json_schema=json.json_schema,
            trigger_condition=json.trigger_condition,
            expires_after_seconds=json.expires_after_seconds,
        )
    except CatalogError as exc:
        raise invalid(exc) from None
    return event_type_out(event_type), 201


@bp.patch("/event-types/<name>")
@api(admin=True, json=s.EventTypePatch, resp={200: s.EventType}, tags=TAGS)
def update_type(name: str, json: s.EventTypePatch):
    """Change an event type's category, description, trigger condition, example or JSON
    Schema (refused unless valid Draft 2020-12, and the example must match it; `null`
    removes it); `archived: true` archives it (no new subscriptions; existing ones keep
    receiving it)."""
    event_type = load_type(name)
    sent = json.model_dump(exclude_unset=True)
    try:
        update_event_type(
            event_type,
            sent.get("category", event_type.category.name),
            sent.get("description", event_type.description or ""),
            sent.get("example_payload", event_type.example_payload or {}),
            sent.get("archived", event_type.archived),
            actor(),
            json_schema=sent.get("json_schema", KEEP),
            trigger_condition=sent.get("trigger_condition"),
            expires_after_seconds=sent.get("expires_after_seconds", ...),
        )
    except CatalogError as exc:
        raise invalid(exc) from None
    return event_type_out(event_type)


@bp.get("/categories")
@api(resp={200: s.CategoryList}, tags=TAGS)
def list_categories():
    """Categories with the names of their event types."""
    return {"data": [category_out(c) for c in list_catalog()]}


@bp.post("/categories")
@api(admin=True, json=s.CategoryCreate, resp={201: s.Category}, tags=TAGS)
def create_category(json: s.CategoryCreate):
    """Add a category."""
    try:
        category = add_category(json.name, json.description, actor())
    except CatalogError as exc:
        raise invalid(exc) from None
    db.session.refresh(category)
    return category_out(db.session.get(Category, category.id)), 201
