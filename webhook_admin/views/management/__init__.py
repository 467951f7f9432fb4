"""The management API, /api/v1/...: bearer tokens, RFC 9457 errors, OpenAPI 3.1.

Beside the signed ingest (`POST /api/v1/events`, views/api.py), which keeps its own auth and
errors. Routes live in endpoints.py, deliveries.py and catalog.py; core.py holds what they
share."""

from __future__ import annotations

import hashlib

from flask import Blueprint, Flask, jsonify, render_template, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from ...extensions import csrf

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


@bp.errorhandler(ApiProblem)
def api_problem(exc):
    return from_exception(exc)


@bp.errorhandler(HTTPException)
def http_problem(exc):
    return from_exception(exc)


@bp.errorhandler(Exception)
def unexpected_problem(exc):
    from ...extensions import db

    db.session.rollback()
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
        headers_enabled=True,
        swallow_errors=True,
    )
    limiter.limit(settings.api_rate_limit)(bp)
    limiter.limit(settings.api_rate_limit)(docs_bp)
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
