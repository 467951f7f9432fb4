"""The OpenAPI 3.1 document: spectree's, generated from the schemas that validate, with the
bearer scheme, problem+json error bodies, and a `webhooks` section built from the catalog."""

from __future__ import annotations

import copy

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ...extensions import db
from ...models import EventType
from ...shared.headers import USER_AGENT
from .core import spec
from .problems import PROBLEM_MIME

DESCRIPTION = (
    "Manage webhook endpoints, deliveries, events and the event catalog. Authenticate with "
    "`Authorization: Bearer whadm_...` (create a token on the API tokens page or with "
    "`flask tokens create`). Errors are RFC 9457 problem details. See docs/api.md."
)
WEBHOOK_HEADERS = [
    ("webhook-id", "The event id: the same on every try of one delivery (deduplicate on it)."),
    ("webhook-timestamp", "Unix seconds when this try was signed."),
    (
        "webhook-signature",
        "Space-separated `v1,<base64 HMAC-SHA256>` of `id.timestamp.body` under the endpoint's "
        "secret (two during a rotation). Standard Webhooks.",
    ),
]


def _base_document() -> dict:
    document = copy.deepcopy(spec.spec)
    document["info"]["description"] = DESCRIPTION
    components = document.setdefault("components", {})
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "whadm_... API token"}
    }
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            public = path.endswith("/openapi.json")
            if not public:
                operation["security"] = [{"bearer": []}]
            if method in ("post", "patch"):
                operation.setdefault("parameters", []).append(
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "Replays the first answer for 24 h (same body).",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    }
                )
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and "application/json" in content:
                    response["content"] = {PROBLEM_MIME: content["application/json"]}
    return document


def _webhook(event_type: EventType) -> dict:
    data_schema = event_type.json_schema or {"type": "object"}
    envelope = {
        "type": "object",
        "required": ["id", "type", "timestamp", "data"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "const": event_type.name},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": data_schema,
        },
    }
    operation = {
        "operationId": f"webhook_{event_type.name.replace('.', '_')}",
        "summary": event_type.description or event_type.name,
        "description": event_type.trigger_condition or event_type.description or "",
        "tags": [event_type.category.name],
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": text,
            }
            for name, text in WEBHOOK_HEADERS
        ]
        + [
            {
                "name": "user-agent",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "example": USER_AGENT},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": envelope}},
        },
        "responses": {
            "2XX": {"description": "Received; any 2xx within the timeout acknowledges it."},
            "410": {"description": "Gone: the endpoint is disabled and not tried again."},
        },
    }
    if event_type.example_payload:
        operation["requestBody"]["content"]["application/json"]["example"] = {
            "id": "evt_example",
            "type": event_type.name,
            "timestamp": "2026-01-01T00:00:00.000Z",
            "data": event_type.example_payload,
        }
    if event_type.archived:
        operation["deprecated"] = True
    return {"post": operation}


def openapi_document() -> dict:
    """The document as served; the webhooks are read from the catalog each time."""
    document = _base_document()
    types = db.session.scalars(
        select(EventType).options(selectinload(EventType.category)).order_by(EventType.name)
    )
    document["webhooks"] = {t.name: _webhook(t) for t in types}
    return document
