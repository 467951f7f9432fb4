"""Domain objects as the management API's JSON (the shapes of schemas.py; never secrets)."""

from __future__ import annotations

from ...models import Attempt, Category, Delivery, Endpoint, Event, EventType
from ...services.serialize import iso


def endpoint_out(endpoint: Endpoint) -> dict:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description or "",
        "category": endpoint.category.name if endpoint.category else None,
        "all_category_events": endpoint.all_category_events,
        "event_types": [t.name for t in endpoint.event_types],
        "merchant_id": endpoint.merchant_id,
        "custom_headers": sorted((endpoint.custom_headers or {}).keys()),
        "timeout_seconds": endpoint.timeout_seconds,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_note": endpoint.disabled_note,
        "failing_since": iso(endpoint.failing_since),
        "created_at": iso(endpoint.created_at),
        "updated_at": iso(endpoint.updated_at),
    }


def delivery_out(delivery: Delivery) -> dict:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event.type,
        "endpoint_id": delivery.endpoint_id,
        "status": delivery.status,
        "attempt_count": delivery.attempts_count,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error_class": delivery.last_error_class,
        "created_at": iso(delivery.created_at),
        "completed_at": iso(delivery.completed_at),
    }


def attempt_out(attempt: Attempt) -> dict:
    """As stored: custom header values and marked fields were masked when it was recorded."""
    return {
        "number": attempt.number,
        "trigger": attempt.trigger,
        "started_at": iso(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "request_url": attempt.request_url,
        "request_headers": attempt.request_headers or {},
        "request_body": attempt.request_body or "",
        "response_status": attempt.response_status,
        "response_headers": attempt.response_headers,
        "response_body": attempt.response_body,
        "error_class": attempt.error_class,
        "error_message": attempt.error_message,
        "succeeded": bool(attempt.succeeded),
    }


def event_out(event: Event) -> dict:
    return {
        "id": event.id,
        "type": event.type,
        "merchant_id": event.merchant_id,
        "occurred_at": iso(event.occurred_at),
        "received_at": iso(event.received_at),
        "source": event.source,
        "data": event.data or {},
        "delivery_count": event.delivery_count,
    }


def event_type_out(event_type: EventType) -> dict:
    return {
        "name": event_type.name,
        "category": event_type.category.name,
        "description": event_type.description or "",
        "trigger_condition": event_type.trigger_condition or "",
        "archived": event_type.archived,
        "example_payload": event_type.example_payload or {},
        "json_schema": event_type.json_schema,
        "expires_after_seconds": event_type.expires_after_seconds,
    }


def category_out(category: Category) -> dict:
    return {
        "name": category.name,
        "description": category.description or "",
        "event_types": [t.name for t in category.event_types],
    }
