"""Received events: their payload and where each went (the fan-out)."""

from __future__ import annotations

from flask import Blueprint, abort, request
from flask_login import login_required

from ..extensions import db
from ..models import Event
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


@bp.get("/<path:event_id>")
@login_required
def show(event_id: str):
    event = db.session.get(Event, event_id)
    if event is None:
        abort(404)
    return render("events/show.html", "events/show.html", event=event)
