"""Disable with a reason (after a confirm), replay what an endpoint missed, and resend one
event to any endpoint."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import abort, render_template, request, url_for
from flask_login import login_required
from sqlalchemy import select

from ..auth import actor, admin_required
from ..clock import utcnow
from ..extensions import db
from ..models import Endpoint, Event
from ..queues import enqueue_deliveries, enqueue_replay
from ..services.endpoints import disable_endpoint
from ..services.replay import ResendRefused, count_missed, record_replay_request, resend_event
from .common import done, render, render_error
from .webhooks import bp, load, row_context

DEFAULT_REPLAY_WINDOW = timedelta(hours=24)
NOTE_LIMIT = 500


@bp.get("/<int:endpoint_id>/disable")
@admin_required
def confirm_disable(endpoint_id: int):
    """The confirm step: what disabling means, and an optional reason."""
    return render(
        "webhooks/confirm_disable.html",
        "webhooks/_disable_row.html",
        **row_context(load(endpoint_id)),
    )


@bp.post("/<int:endpoint_id>/disable")
@admin_required
def disable(endpoint_id: int):
    endpoint = load(endpoint_id)
    note = (request.form.get("note") or "").strip()[:NOTE_LIMIT] or None
    disable_endpoint(endpoint, actor(), note=note)
    db.session.commit()
    return done(
        "Webhook disabled.",
        url_for("webhooks.show", endpoint_id=endpoint.id),
        "webhooks/_row.html",
        **row_context(endpoint),
    )


def replay_since(endpoint, raw: str | None) -> datetime:
    """The `since` asked for, else when the endpoint was disabled, else 24 h ago."""
    if raw:
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=None)
        except ValueError:
            abort(400)
    return endpoint.disabled_at or utcnow() - DEFAULT_REPLAY_WINDOW


@bp.get("/<int:endpoint_id>/replay")
@login_required
def replay(endpoint_id: int):
    """How many events the endpoint missed since a time (the confirm step)."""
    endpoint = load(endpoint_id)
    since = replay_since(endpoint, request.args.get("since"))
    return render(
        "webhooks/replay.html",
        "webhooks/_replay.html",
        endpoint=endpoint,
        since=since,
        count=count_missed(endpoint.id, since),
    )


@bp.post("/<int:endpoint_id>/replay")
@admin_required
def start_replay(endpoint_id: int):
    """Audit the request, then create and queue the deliveries in a background job."""
    endpoint = load(endpoint_id)
    since = replay_since(endpoint, request.form.get("since"))
    count = count_missed(endpoint.id, since)
    record_replay_request(endpoint.id, since, count, actor(), request.remote_addr)
    db.session.commit()
    job = enqueue_replay(endpoint.id, since.isoformat(), actor()) if count else None
    return render(
        "webhooks/replay.html",
        "webhooks/_replay.html",
        202 if job else 200,
        endpoint=endpoint,
        since=since,
        count=count,
        started=job is not None,
        job_id=job.id if job else None,
        queue_failed=bool(count) and job is None,
    )


@bp.get("/resend")
@admin_required
def resend_form():
    """Pick the endpoint to send one event to (any live endpoint, subscribed or not)."""
    event = db.session.get(Event, request.args.get("event_id", ""))
    if event is None:
        abort(404)
    endpoints = db.session.scalars(
        select(Endpoint).where(Endpoint.deleted_at.is_(None)).order_by(Endpoint.id.desc())
    ).all()
    return render_template("webhooks/resend.html", event=event, endpoints=endpoints)


@bp.post("/resend")
@admin_required
def resend():
    endpoint = load(request.form.get("endpoint_id", 0, type=int))
    event = db.session.get(Event, request.form.get("event_id", ""))
    if event is None:
        abort(404)
    try:
        delivery_id, attempts_made = resend_event(event, endpoint, actor(), request.remote_addr)
    except ResendRefused as exc:
        db.session.rollback()
        return render_error(409, "Not sent", str(exc).capitalize() + ".")
    db.session.commit()
    enqueue_deliveries([(delivery_id, attempts_made)])
    return done(
        f"Event {event.id} queued for {endpoint.url}.",
        url_for("deliveries.timeline", delivery_id=delivery_id),
    )
