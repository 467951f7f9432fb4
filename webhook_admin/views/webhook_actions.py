"""One endpoint: its page, enable / disable, test events and its signing secret."""

from __future__ import annotations

import json

from flask import make_response, render_template, request, url_for
from flask_login import login_required

from ..auth import actor, admin_required
from ..extensions import db
from ..models import Event
from ..queues import enqueue_deliveries
from ..security_headers import no_store
from ..services.endpoint_secrets import (
    ROTATION_OVERLAPS,
    reveal_header_values,
    reveal_secret,
    rotate_secret,
)
from ..services.endpoint_stats import CHART_HEIGHT, CHART_WIDTH, endpoint_stats
from ..services.endpoint_test_event import TestEventRefused, send_test_event, subscribed_types
from ..services.endpoints import enable_endpoint
from ..services.explain import explain_for_endpoint
from ..services.live import endpoint_version, feed_start
from ..services.queries import DeliveryFilters, deliveries_page
from .common import done, is_htmx, render_error
from .webhooks import bp, load, row_context


@bp.get("/<int:endpoint_id>")
@login_required
def show(endpoint_id: int):
    endpoint = load(endpoint_id)
    filters = DeliveryFilters(
        status=request.args.get("status", ""),
        endpoint_id=endpoint.id,
        event_type=request.args.get("event_type", ""),
    )
    page = deliveries_page(filters, limit=25)
    return render_template(
        "webhooks/show.html",
        test_types=subscribed_types(endpoint),
        stats=endpoint_stats(endpoint.id),
        chart_width=CHART_WIDTH,
        chart_height=CHART_HEIGHT,
        page=page,
        filters=filters,
        live_after=feed_start(page.items, False),
        live_paged=False,
        live_version=endpoint_version(endpoint),
        **row_context(endpoint),
    )


@bp.get("/<int:endpoint_id>/explain")
@login_required
def explain(endpoint_id: int):
    """The "Explain an event" box: why this endpoint did or did not get one event."""
    endpoint = load(endpoint_id)
    event_id = request.args.get("event_id", "").strip()
    event = db.session.get(Event, event_id) if 0 < len(event_id) <= 255 else None
    answer = explain_for_endpoint(event, endpoint.id) if event is not None else None
    template = "webhooks/_explain.html" if is_htmx() else "webhooks/explain.html"
    return render_template(
        template, endpoint=endpoint, event_id=event_id, event=event, answer=answer
    )


@bp.post("/<int:endpoint_id>/enable")
@admin_required
def enable(endpoint_id: int):
    endpoint = load(endpoint_id)
    disabled_at = endpoint.disabled_at
    held = enable_endpoint(endpoint, actor())
    db.session.commit()
    enqueue_deliveries(held)  # after the commit: a worker must find the endpoint enabled
    return done(
        f"Webhook enabled; {len(held)} held deliveries sent.",
        request.referrer or url_for("webhooks.index"),
        "webhooks/_row.html",
        held_count=len(held),
        retry_since=disabled_at,
        **row_context(endpoint),
    )


@bp.post("/<int:endpoint_id>/test")
@admin_required
def send_test(endpoint_id: int):
    endpoint = load(endpoint_id)
    data = None
    if request.form.get("data", "").strip():
        try:
            data = json.loads(request.form["data"])
        except ValueError as exc:
            message = f"The payload data is not valid JSON: {exc}."
            return render_error(422, "Test event not sent", message)
    try:
        delivery_id = send_test_event(endpoint, actor(), request.form.get("event_type"), data)
    except TestEventRefused as exc:
        db.session.rollback()
        return render_error(409, "Test event not sent", str(exc).capitalize() + ".")
    db.session.commit()
    enqueue_deliveries([(delivery_id, 0)])
    return done(
        "Test event sent.",
        url_for("deliveries.timeline", delivery_id=delivery_id),
        "webhooks/_test_sent.html",
        endpoint=endpoint,
        delivery_id=delivery_id,
        event_type=request.form.get("event_type") or "webhook.test",
    )


@bp.get("/<int:endpoint_id>/test/example")
@admin_required
def test_example(endpoint_id: int):
    """The payload editor again, filled with the chosen type's catalog example."""
    endpoint = load(endpoint_id)
    return render_template(
        "webhooks/_test_data.html", example=test_example_data(endpoint, request.args)
    )


def test_example_data(endpoint, args) -> dict | None:
    """The catalog example of the chosen subscribed type (None: the default test note)."""
    chosen = args.get("event_type", "")
    for event_type in subscribed_types(endpoint):
        if event_type.name == chosen:
            example = event_type.example_payload or {}
            return example.get("data", example) if isinstance(example, dict) else {}
    return None


def secret_response(template: str, **context):
    body = render_template(template, **context)
    return no_store(make_response(body))


@bp.post("/<int:endpoint_id>/secret/reveal")
@admin_required
def reveal(endpoint_id: int):
    endpoint = load(endpoint_id)
    secret = reveal_secret(endpoint, actor(), request.remote_addr)
    db.session.commit()
    template = "webhooks/_secret.html" if is_htmx() else "webhooks/secret.html"
    return secret_response(template, endpoint=endpoint, secret=secret, rotated=False)


@bp.post("/<int:endpoint_id>/secret/rotate")
@admin_required
def rotate(endpoint_id: int):
    endpoint = load(endpoint_id)
    overlap = ROTATION_OVERLAPS.get(request.form.get("overlap", "24h"))
    if overlap is None:
        return render_error(400, "Unknown overlap", "Choose 0 h, 24 h or 7 days.")
    secret = rotate_secret(endpoint, actor(), request.remote_addr, overlap)
    db.session.commit()
    template = "webhooks/_secret.html" if is_htmx() else "webhooks/secret.html"
    return secret_response(template, endpoint=endpoint, secret=secret, rotated=True)


@bp.get("/<int:endpoint_id>/secret")
@login_required
def secret_masked(endpoint_id: int):
    """The masked secret panel again (the 'Hide' button)."""
    return render_template("webhooks/_secret.html", endpoint=load(endpoint_id), secret=None)


@bp.post("/<int:endpoint_id>/headers/reveal")
@admin_required
def reveal_headers(endpoint_id: int):
    """Custom header values in clear, for an admin, audited (names only in the entry)."""
    endpoint = load(endpoint_id)
    values = reveal_header_values(endpoint, actor(), request.remote_addr)
    db.session.commit()
    template = "webhooks/_headers.html" if is_htmx() else "webhooks/headers.html"
    return secret_response(template, endpoint=endpoint, header_values=values)


@bp.get("/<int:endpoint_id>/headers")
@login_required
def headers_masked(endpoint_id: int):
    """The masked headers panel again (the 'Hide' button)."""
    return render_template("webhooks/_headers.html", endpoint=load(endpoint_id), header_values=None)
