"""Plain dicts of domain objects for the CLI's --json and JSON views (never secrets)."""

from __future__ import annotations

from ..models import Delivery, Endpoint


def iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def endpoint_dict(endpoint: Endpoint) -> dict:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "category": endpoint.category.name if endpoint.category else None,
        "all_category_events": endpoint.all_category_events,
        "event_types": [t.name for t in endpoint.event_types],
        "merchant_id": endpoint.merchant_id,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": iso(endpoint.failing_since),
        "created_at": iso(endpoint.created_at),
    }


def delivery_dict(delivery: Delivery) -> dict:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event.type,
        "endpoint_id": delivery.endpoint_id,
        "status": delivery.status,
        "attempts": delivery.attempts_count,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error_class": delivery.last_error_class,
        "created_at": iso(delivery.created_at),
    }
