"""Webhook Management: the endpoint list, filters, and inline add / edit / delete."""

from __future__ import annotations

from flask import Blueprint, abort, make_response, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth import actor, admin_required
from ..extensions import db
from ..forms import parse_endpoint_form
from ..models import Endpoint
from ..security_headers import no_store
from ..services.catalog import list_catalog
from ..services.endpoints import (
    ValidationError,
    create_endpoint,
    delete_endpoint,
    get_live_endpoint,
    resolve_input,
    update_endpoint,
)
from ..services.live import endpoints_version, failing_endpoints
from ..services.queries import (
    EndpointFilters,
    auto_disabled_endpoints,
    list_endpoints_by_health,
    success_rates,
)
from .common import done, is_htmx, render

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def load(endpoint_id: int) -> Endpoint:
    endpoint = get_live_endpoint(endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


def row_context(endpoint: Endpoint) -> dict:
    return {"endpoint": endpoint, "rates": success_rates([endpoint.id])}


def form_context(endpoint: Endpoint | None = None, values=None, errors=None) -> dict:
    """What the add/edit form needs: the catalog, the submitted values, the errors."""
    if values is None and endpoint is not None:
        values = {
            "url": endpoint.url,
            "description": endpoint.description,
            "category": endpoint.category.name if endpoint.category else "",
            "event_types": [t.name for t in endpoint.event_types],
            "all_events": [endpoint.category.name]
            if endpoint.all_category_events and endpoint.category
            else [],
            "merchant_id": endpoint.merchant_id or "",
            # Names only: a value is shown by the audited reveal alone (blank keeps it).
            "headers": [(name, "") for name in endpoint.custom_headers or {}],
            "timeout_seconds": endpoint.timeout_seconds or "",
        }
    return {
        "endpoint": endpoint,
        "values": values or {},
        "errors": errors or {},
        "categories": list_catalog(),
    }


def submitted_values() -> dict:
    form = request.form
    return {
        "url": form.get("url", ""),
        "description": form.get("description", ""),
        "category": form.get("category", ""),
        "event_types": form.getlist("event_types"),
        "all_events": form.getlist("all_events"),
        "merchant_id": form.get("merchant_id", ""),
        # Typed values are not echoed back into the page (they are secrets): retype them.
        # Filled rows only: the form adds its own blank row (no new blank row per retry).
        "headers": [(name, "") for name in form.getlist("header_name") if name.strip()],
        "timeout_seconds": form.get("timeout_seconds", ""),
    }


def every_error(data, form_errors: dict, existing: Endpoint | None = None) -> ValidationError:
    """The form's shape errors and the service's field checks together, in one pass."""
    try:
        resolve_input(data, existing)
    except ValidationError as exc:
        return ValidationError(exc.errors | form_errors)
    return ValidationError(form_errors)


def filters_from_args() -> EndpointFilters:
    args = request.args
    return EndpointFilters(args.get("q", ""), args.get("category", ""), args.get("status", ""))


@bp.get("")
@login_required
def index():
    filters = filters_from_args()
    page = list_endpoints_by_health(filters, request.args.get("cursor"))
    return render(
        "webhooks/index.html",
        "webhooks/_rows.html",
        endpoints=page.items,
        next_cursor=page.next_cursor,
        rates=success_rates([e.id for e in page.items]),
        filters=filters,
        categories=list_catalog(),
        auto_disabled=auto_disabled_endpoints(),
        failing=failing_endpoints(),
        live_version=endpoints_version(),
    )


@bp.get("/new")
@admin_required
def new():
    return render("webhooks/new.html", "webhooks/_form.html", **form_context())


@bp.post("")
@admin_required
def create():
    data, errors = parse_endpoint_form(request.form)
    try:
        if errors:
            raise every_error(data, errors)
        endpoint, secret = create_endpoint(data, actor())
    except ValidationError as exc:
        db.session.rollback()
        context = form_context(values=submitted_values(), errors=errors | exc.errors)
        return render("webhooks/new.html", "webhooks/_form.html", 422, **context)
    db.session.commit()
    response = render_template(
        "webhooks/_created.html" if is_htmx() else "webhooks/created.html",
        secret=secret,
        **row_context(endpoint),
    )
    return no_store(make_response(response, 201))


@bp.get("/<int:endpoint_id>/row")
@login_required
def row(endpoint_id: int):
    return render_template("webhooks/_row.html", **row_context(load(endpoint_id)))


@bp.get("/<int:endpoint_id>/edit")
@admin_required
def edit(endpoint_id: int):
    return render(
        "webhooks/edit.html", "webhooks/_edit_row.html", **form_context(load(endpoint_id))
    )


@bp.post("/<int:endpoint_id>")
@admin_required
def update(endpoint_id: int):
    endpoint = load(endpoint_id)
    data, errors = parse_endpoint_form(request.form)
    try:
        if errors:
            raise every_error(data, errors, endpoint)
        update_endpoint(endpoint, data, actor())
    except ValidationError as exc:
        db.session.rollback()
        context = form_context(load(endpoint_id), submitted_values(), errors | exc.errors)
        return render("webhooks/edit.html", "webhooks/_edit_row.html", 422, **context)
    db.session.commit()
    return done(
        "Webhook saved.",
        url_for("webhooks.show", endpoint_id=endpoint.id),
        "webhooks/_row.html",
        **row_context(endpoint),
    )


@bp.get("/<int:endpoint_id>/delete")
@admin_required
def confirm_delete(endpoint_id: int):
    return render_template("webhooks/confirm_delete.html", endpoint=load(endpoint_id))


@bp.post("/<int:endpoint_id>/delete")
@admin_required
def delete(endpoint_id: int):
    endpoint = load(endpoint_id)
    cancelled = delete_endpoint(endpoint, actor())
    db.session.commit()
    message = f"Webhook {endpoint.url} deleted; {cancelled} waiting deliveries cancelled."
    return done(message, url_for("webhooks.index"))


@bp.app_context_processor
def role_flags() -> dict:
    return {"can_edit": current_user.is_authenticated and current_user.is_admin}
