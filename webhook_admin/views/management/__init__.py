"""The management API, /api/v1/...: bearer tokens, RFC 9457 errors, OpenAPI 3.1.

Beside the signed ingest (`POST /api/v1/events`, views/api.py), which keeps its own auth and
errors. Routes live in endpoints.py, deliveries.py and catalog.py; core.py holds what they
share."""

from __future__ import annotations

import hashlib
import logging
import time

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from ...extensions import csrf

log = logging.getLogger(__name__)
bp = Blueprint("management", __name__, url_prefix="/api/v1")
docs_bp = Blueprint("api_docs", __name__)
csrf.exempt(bp)  # bearer tokens, never cookies: nothing for a cross-site form to ride on

from . import catalog, deliveries, endpoints  # noqa: E402,F401  (their routes)
from .problems import ApiProblem, from_exception, is_management_request  # noqa: E402


def rate_limit_key() -> str:
    """Per token (its hash: the limit holds before the token is looked up, and a flood of
    bad tokens is limited too); requests without one, per client address."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return (
            "token:"
            + hashlib.sha256(header[7:].strip().encode("utf-8", "replace")).hexdigest()[:32]
        )
    return "addr:" + (request.remote_addr or "unknown")


@bp.get("/openapi.json")
def openapi_json():
    """The OpenAPI 3.1 document (no token needed)."""
    from .openapi import openapi_document

    return jsonify(openapi_document())


@docs_bp.get("/api/docs")
def reference():
    """The human-readable reference: Swagger UI, vendored, under the strict CSP."""
    return render_template("api/docs.html")


@bp.after_request
def rate_limit_headers(response):
    """X-RateLimit-Limit, -Remaining and -Reset on every answer; Retry-After on a 429."""
    limiter = current_app.extensions.get("management_limiter")
    limit = limiter.current_limit if limiter is not None else None
    if limit is None:
        return response
    try:
        reset_at, remaining = limit.reset_at, limit.remaining
    except (RedisError, OSError):  # Redis went away: the answer goes without them
        return response
    response.headers["X-RateLimit-Limit"] = str(limit.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(remaining)
    response.headers["X-RateLimit-Reset"] = str(reset_at)
    if response.status_code == 429:
        response.headers["Retry-After"] = str(max(1, reset_at - int(time.time())))
    return response


@bp.errorhandler(ApiProblem)
def api_problem(exc):
    return from_exception(exc)


@bp.errorhandler(HTTPException)
def http_problem(exc):
    return from_exception(exc)


@bp.errorhandler(Exception)
def unexpected_problem(exc):
    from sqlalchemy.exc import OperationalError

    from ...extensions import db

    db.session.rollback()
    if isinstance(exc, OperationalError):  # the database is down or restarting: retry soon
        log.warning("database unavailable path=%s: %s", request.path, type(exc).__name__)
        return from_exception(
            ApiProblem(503, "database unavailable, retry later", headers={"Retry-After": "5"})
        )
    return from_exception(exc)


def install_limiter(app: Flask) -> Limiter:
    """Flask-Limiter on our Redis (queues.get_redis: Sentinel settings apply) under our
    namespace (queues.redis_key). If Redis is down requests go through: the API keeps
    working as ingest does, and the limit comes back with Redis."""
    from ...queues import get_redis, redis_key

    settings = app.config["SETTINGS"]
    with app.app_context():
        pool = get_redis().connection_pool
        prefix = redis_key("ratelimit")
    limiter = Limiter(
        rate_limit_key,
        app=app,
        storage_uri="redis://",
        storage_options={"connection_pool": pool, "key_prefix": prefix},
        strategy="moving-window",
        # Our own headers (rate_limit_headers): Flask-Limiter's put a Retry-After on every
        # answer, a 200 included, and over-wrote a 503's own.
        headers_enabled=False,
        swallow_errors=True,
    )
    # One count per token across every route (a per-route limit would multiply it by 23).
    limiter.shared_limit(settings.api_rate_limit, scope="management-api")(bp)
    limiter.shared_limit(settings.api_rate_limit, scope="management-api")(docs_bp)
    return limiter


def register_management(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(docs_bp)
    app.extensions["management_limiter"] = install_limiter(app)
    # Errors raised before a route matched (404, 405 for an unknown path or method) and the
    # body limit (413) are the app's to answer: problem+json there too.
    for status in (404, 405, 413):
        app.register_error_handler(status, _app_level(app.error_handler_spec, status))
    app.register_error_handler(RateLimitExceeded, from_exception)


def _app_level(spec, status):
    previous = spec[None][status].get(_exception_class(status))

    def handler(exc):
        if is_management_request():
            return from_exception(exc)
        return previous(exc) if previous else exc

    return handler


def _exception_class(status):
    from werkzeug.exceptions import default_exceptions

    return default_exceptions[status]
