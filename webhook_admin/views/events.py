"""Received events: their payload and where each went (the fan-out)."""

from __future__ import annotations

from flask import Blueprint, abort, make_response, render_template, request
from flask_login import login_required

from ..auth import actor, admin_required
from ..extensions import db
from ..models import Event
from ..security_headers import no_store
from ..services.data_protection import reveal_event_data
from ..services.explain import explain_event
from ..services.queries import event_type_names, events_page
from .common import render

bp = Blueprint("events", __name__, url_prefix="/events")


@bp.get("")
@login_required
def index():
    event_type = request.args.get("type", "")
    page = events_page(event_type, request.args.get("cursor") or None)
    return render(
        "events/index.html",
        "events/_rows.html",
        page=page,
        event_type=event_type,
        event_types=event_type_names(),
    )


def load(event_id: str) -> Event:
    event = db.session.get(Event, event_id)
    if event is None:
        abort(404)
    return event


@bp.post("/<path:event_id>/reveal")
@admin_required
def reveal(event_id: str):
    """The payload with its card and personal data in clear, for an admin, audited; never
    cached (no-store, and hx-history="false" keeps it out of htmx's history)."""
    event = load(event_id)
    data = reveal_event_data(event, actor(), request.remote_addr)
    db.session.commit()
    body = render_template("events/_payload.html", event=event, revealed=data)
    return no_store(make_response(body))


@bp.get("/<path:event_id>/payload")
@login_required
def payload(event_id: str):
    """The masked payload panel again (the 'Hide' button)."""
    return render_template("events/_payload.html", event=load(event_id), revealed=None)


@bp.get("/<path:event_id>")
@login_required
def show(event_id: str):
    event = load(event_id)
    return render(
        "events/show.html", "events/show.html", event=event, explanations=explain_event(event)
    )
