"""The event catalog: categories and event types; admins add, edit and archive."""

from __future__ import annotations

import json

from flask import Blueprint, abort, render_template, url_for
from flask_login import login_required

from ..auth import actor, admin_required
from ..extensions import db
from ..forms import CategoryForm, EventTypeForm
from ..models import EventType
from ..services.catalog import list_catalog
from ..services.catalog_admin import (
    CatalogError,
    add_category,
    add_event_type,
    subscribed_endpoints,
    update_event_type,
)
from .common import done, render

bp = Blueprint("catalog", __name__, url_prefix="/catalog")


def event_type_form(event_type: EventType | None = None) -> EventTypeForm:
    form = EventTypeForm(obj=None)
    form.category.choices = [c.name for c in list_catalog()]
    if event_type is not None and not form.is_submitted():
        form.name.data = event_type.name
        form.category.data = event_type.category.name
        form.description.data = event_type.description
        form.trigger_condition.data = event_type.trigger_condition
        form.example_payload.data = json.dumps(event_type.example_payload or {}, indent=2)
        if event_type.json_schema is not None:
            form.json_schema.data = json.dumps(event_type.json_schema, indent=2)
        form.archived.data = event_type.archived
        form.expires_after_seconds.data = event_type.expires_after_seconds
    return form


def _json_object(form: EventTypeForm, field: str, what: str) -> dict | None:
    raw = (getattr(form, field).data or "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise CatalogError({field: f"not valid JSON: {exc}"}) from None
    if not isinstance(value, dict):
        raise CatalogError({field: f"the {what} must be a JSON object"})
    return value


def parse_example(form: EventTypeForm) -> dict:
    return _json_object(form, "example_payload", "example") or {}


def parse_schema(form: EventTypeForm) -> dict | None:
    """None when left empty: the type then accepts any object as its data."""
    return _json_object(form, "json_schema", "schema")


@bp.get("")
@login_required
def index():
    return render(
        "catalog/index.html",
        "catalog/index.html",
        categories=list_catalog(),
        category_form=CategoryForm(),
        type_form=event_type_form(),
    )


def _page_with_errors(errors: dict, category_form=None, type_form=None):
    return render_template(
        "catalog/index.html",
        categories=list_catalog(),
        category_form=category_form or CategoryForm(formdata=None),
        type_form=type_form or event_type_form(),
        category_errors=errors if category_form else {},
        type_errors=errors if type_form else {},
    ), 422


@bp.post("/categories")
@admin_required
def create_category():
    form = CategoryForm()
    try:
        if not form.validate():
            raise CatalogError({k: v[0] for k, v in form.errors.items()})
        add_category(form.name.data, form.description.data or "", actor())
    except CatalogError as exc:
        db.session.rollback()
        return _page_with_errors(exc.errors, category_form=form)
    db.session.commit()
    return done(f"Category {form.name.data} added.", url_for("catalog.index"))


@bp.post("/event-types")
@admin_required
def create_event_type():
    form = event_type_form()
    try:
        if not form.validate():
            raise CatalogError({k: v[0] for k, v in form.errors.items()})
        add_event_type(
            form.name.data,
            form.category.data,
            form.description.data or "",
            parse_example(form),
            actor(),
            json_schema=parse_schema(form),
            trigger_condition=form.trigger_condition.data or "",
            expires_after_seconds=form.expires_after_seconds.data,
        )
    except CatalogError as exc:
        db.session.rollback()
        return _page_with_errors(exc.errors, type_form=form)
    db.session.commit()
    return done(f"Event type {form.name.data} added.", url_for("catalog.index"))


@bp.route("/event-types/<int:type_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_event_type(type_id: int):
    event_type = db.session.get(EventType, type_id) or abort(404)
    form = event_type_form(event_type)
    errors: dict = {}
    if form.is_submitted():
        form.name.data = event_type.name  # the name never changes
        try:
            if not form.validate():
                raise CatalogError({k: v[0] for k, v in form.errors.items()})
            update_event_type(
                event_type,
                form.category.data,
                form.description.data or "",
                parse_example(form),
                form.archived.data,
                actor(),
                json_schema=parse_schema(form),
                trigger_condition=form.trigger_condition.data or "",
                expires_after_seconds=form.expires_after_seconds.data,
            )
            db.session.commit()
            return done(f"Event type {event_type.name} saved.", url_for("catalog.index"))
        except CatalogError as exc:
            db.session.rollback()
            errors = exc.errors
    status = 422 if errors else 200
    return render_template(
        "catalog/edit.html",
        form=form,
        event_type=event_type,
        errors=errors,
        subscribers=subscribed_endpoints(event_type),
    ), status
