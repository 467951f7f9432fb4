"""The audit log: every change and login, filterable by action, actor and target."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import login_required

from ..services.queries import AuditFilters, audit_actions, audit_page
from .common import render

bp = Blueprint("audit", __name__, url_prefix="/audit")


@bp.get("")
@login_required
def index():
    args = request.args
    filters = AuditFilters(args.get("action", ""), args.get("actor", ""), args.get("target", ""))
    page = audit_page(filters, args.get("cursor", type=int))
    return render(
        "audit/index.html", "audit/_rows.html", page=page, filters=filters, actions=audit_actions()
    )
