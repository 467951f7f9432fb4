"""RFC 9457 problem details: every 4xx and 5xx of the management API is one of these."""

from __future__ import annotations

import logging

from flask import Response, json, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
PROBLEM_MIME = "application/problem+json"
TYPE_BASE = "https://softpos.example/problems/"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
SLUGS = {422: "validation", 401: "unauthorized", 403: "forbidden", 404: "not-found"}


class ApiProblem(Exception):
    """Raised anywhere in a management view: answered as problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.errors, self.headers = errors or [], headers or {}


def field_errors(errors: dict[str, str]) -> list[dict]:
    """A service's field -> message mapping as the problem's `errors` list."""
    return [{"field": name, "message": message} for name, message in errors.items()]


def problem_response(
    status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None
) -> Response:
    title = TITLES.get(status, "Error")
    slug = SLUGS.get(status, title.lower().replace(" ", "-"))
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    if errors is not None or status == 422:
        body["errors"] = errors or []
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIME)
    response.headers.update(headers or {})
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="webhook-admin"'
    return response


def from_exception(exc: Exception) -> Response:
    if isinstance(exc, ApiProblem):
        return problem_response(exc.status, exc.detail, exc.errors or None, exc.headers)
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        headers = {}
        valid_methods = getattr(exc, "valid_methods", None)
        if status == 405 and valid_methods:
            headers["Allow"] = ", ".join(valid_methods)
        detail = exc.description or TITLES.get(status, "Error")
        return problem_response(status, str(detail), headers=headers)
    log.exception("management API error path=%s", request.path)
    return problem_response(500, "an unexpected error; it was logged")


def is_management_request() -> bool:
    """Every /api/ address except the signed ingest, `POST /api/v1/events`, which keeps its
    own JSON errors (SoftPOS's producers parse them)."""
    path = request.path
    if not (path.startswith("/api/") or path == "/api"):
        return False
    return not (path.rstrip("/") == "/api/v1/events" and request.method == "POST")
