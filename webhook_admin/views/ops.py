"""Operations: liveness and readiness probes, Prometheus metrics, and the System page."""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Response, current_app, jsonify, request
from flask_login import login_required

from ..extensions import csrf
from ..services.metrics import (
    read_database_figures,
    read_redis_figures,
    readiness,
    render_prometheus,
    sweeper_age,
)
from .common import render

bp = Blueprint("ops", __name__)
csrf.exempt(bp)  # probes and scrapers carry no session and change nothing
LOOPBACK = {"127.0.0.1", "::1"}
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@bp.get("/healthz")
def healthz():
    """The process answers: nothing else is checked (a liveness probe must not flap)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready for traffic: database and Redis reachable, schema at the migrations' head."""
    ok, checks = readiness()
    response = jsonify(status="ok" if ok else "unavailable", checks=checks)
    response.status_code = 200 if ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def metrics_allowed() -> bool:
    """A bearer token when METRICS_TOKEN is set; otherwise loopback only in production."""
    settings = current_app.config["SETTINGS"]
    if settings.metrics_token:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), settings.metrics_token.encode()
        )
    return settings.env != "production" or request.remote_addr in LOOPBACK


@bp.get("/metrics")
def metrics():
    if not metrics_allowed():
        return Response(
            "metrics need Authorization: Bearer <METRICS_TOKEN>\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"},
        )
    body = render_prometheus(read_database_figures(), read_redis_figures())
    return Response(body, 200, {"Content-Type": PROMETHEUS_TYPE, "Cache-Control": "no-store"})


@bp.get("/system")
@login_required
def system():
    """Workers, queues and the sweeper; the status block refreshes itself every 5 s."""
    figures = read_redis_figures()
    database = read_database_figures()
    return render(
        "system/index.html",
        "system/_status.html",
        redis=figures,
        database=database,
        sweeper_age=sweeper_age(figures),
        now=time.time(),
    )
