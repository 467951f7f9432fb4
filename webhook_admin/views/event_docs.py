"""/docs/events: the event catalog as documentation for receivers' developers (any role)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from ..services.catalog import list_catalog
from ..services.catalog_docs import EXAMPLE_SECRET, catalog_docs

bp = Blueprint("event_docs", __name__, url_prefix="/docs")


@bp.get("/events")
@login_required
def index():
    return render_template(
        "catalog/docs.html", catalog=catalog_docs(list_catalog()), example_secret=EXAMPLE_SECRET
    )
