"""The ingest API: SoftPOS posts signed events here (Standard Webhooks)."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import OperationalError

from ..extensions import csrf, db
from ..queues import enqueue_deliveries
from ..services.ingest import IngestError, ingest_event
from ..shared.signing import SignatureError, verify

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_BODY_BYTES = 256 * 1024
DB_RETRY_AFTER_SECONDS = "5"


def error(message: str, status: int, violations: list | None = None, **headers: str):
    body = {"error": message}
    if violations:
        body["violations"] = violations
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


def read_body() -> bytes | None:
    """The raw body, or None if it is larger than the limit (read no further than that)."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return None
    body = request.stream.read(MAX_BODY_BYTES + 1)
    return None if len(body) > MAX_BODY_BYTES else body


@bp.post("/events")
@csrf.exempt
def ingest():
    body = read_body()
    if body is None:
        return error(f"body is larger than {MAX_BODY_BYTES // 1024} KiB", 413)
    settings = current_app.config["SETTINGS"]
    event_id = request.headers.get("webhook-id")
    try:
        verify(
            settings.ingest_keys,
            event_id,
            request.headers.get("webhook-timestamp"),
            request.headers.get("webhook-signature"),
            body,
            now=int(time.time()),
        )
    except SignatureError as exc:
        return error(str(exc), 401)
    if request.mimetype != "application/json":
        return error(f"content-type must be application/json, got {request.mimetype!r}", 415)
    try:
        result = ingest_event(event_id, body)
        db.session.commit()
    except IngestError as exc:
        db.session.rollback()
        return error(str(exc), exc.status, exc.violations)
    except OperationalError:
        db.session.rollback()
        log.exception("database unavailable during ingest event_id=%s", event_id)
        return error(
            "database unavailable, retry later", 503, **{"Retry-After": DB_RETRY_AFTER_SECONDS}
        )
    if result.created:
        enqueue_deliveries([(i, 0) for i in result.delivery_ids])
    return jsonify(result.as_json()), 202 if result.created else 200
