"""Endpoint lifecycle: create, edit, enable, disable, delete. Validation errors name the field."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import select

from ..clock import utcnow
from ..config import ENDPOINT_TIMEOUT_MAX
from ..extensions import db
from ..models import DISABLED_MANUAL, Category, Endpoint, EventType
from ..shared.destination import DestinationRejected, check_url
from ..shared.headers import RESERVED_HEADERS
from . import operational_events
from .audit import record_audit
from .delivery_state import cancel_waiting_deliveries, held_deliveries
from .endpoint_secrets import decrypt_header_values, encrypt_header_values, issue_secret

log = logging.getLogger(__name__)
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
MAX_CUSTOM_HEADERS = 20


class ValidationError(ValueError):
    """Field name -> message; shown next to each field (422) or printed by the CLI."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class EndpointInput:
    url: str
    event_types: list[str] = field(default_factory=list)
    category: str | None = None
    all_category_events: bool = False
    description: str = ""
    merchant_id: str | None = None
    custom_headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None


@dataclass
class ResolvedInput:
    url: str
    category: Category | None
    event_types: list[EventType]
    data: EndpointInput


def validate_custom_headers(headers: dict[str, str]) -> str | None:
    if len(headers) > MAX_CUSTOM_HEADERS:
        return f"at most {MAX_CUSTOM_HEADERS} custom headers"
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            return f"{name!r} is not a valid header name"
        if name.lower() in RESERVED_HEADERS:
            return f"{name!r} is set by the sender and cannot be overridden"
        if any(ch in str(value) for ch in "\r\n\0") or len(str(value)) > 1024:
            return f"the value of {name!r} must be one line of at most 1024 characters"
    return None


def resolve_input(data: EndpointInput, existing: Endpoint | None = None) -> ResolvedInput:
    """Check every field; raise ValidationError with all problems at once. An archived
    event type the endpoint already has may stay (it shows as archived), not be added."""
    errors: dict[str, str] = {}
    url = (data.url or "").strip()
    settings = current_app.config["SETTINGS"]
    try:
        check_url(url, allow_private=settings.allow_private_networks)
    except DestinationRejected as exc:
        errors["url"] = str(exc)
    category = None
    if data.category:
        category = db.session.scalar(select(Category).where(Category.name == data.category))
        if category is None:
            errors["category"] = f"unknown category {data.category!r}"
    types: list[EventType] = []
    if data.event_types:
        found = db.session.scalars(
            select(EventType).where(EventType.name.in_(data.event_types))
        ).all()
        by_name = {t.name: t for t in found}
        unknown = [n for n in data.event_types if n not in by_name]
        kept = {t.name for t in existing.event_types} if existing is not None else set()
        archived = [
            n for n in data.event_types if n in by_name and by_name[n].archived and n not in kept
        ]
        if unknown:
            errors["event_types"] = "unknown event type(s): " + ", ".join(unknown)
        elif archived:
            errors["event_types"] = "archived event type(s): " + ", ".join(archived)
        types = [by_name[n] for n in dict.fromkeys(data.event_types) if n in by_name]
    if data.all_category_events and category is None and "category" not in errors:
        errors["category"] = "choose a category to subscribe to all of its events"
    if not types and not data.all_category_events:
        errors.setdefault("event_types", "choose at least one event")
    header_problem = validate_custom_headers(data.custom_headers or {})
    if header_problem:
        errors["custom_headers"] = header_problem
    if data.timeout_seconds is not None and not 1 <= data.timeout_seconds <= ENDPOINT_TIMEOUT_MAX:
        errors["timeout_seconds"] = (
            f"timeout must be between 1 and {ENDPOINT_TIMEOUT_MAX:g} seconds"
        )
    if data.merchant_id is not None and len(data.merchant_id) > 120:
        errors["merchant_id"] = "merchant id must be at most 120 characters"
    if errors:
        raise ValidationError(errors)
    return ResolvedInput(url, category, types, data)


def endpoint_audit_dict(endpoint: Endpoint) -> dict:
    """The audited view of an endpoint: configuration only, never its secret."""
    return {
        "url": endpoint.url,
        "description": endpoint.description,
        "category": endpoint.category.name if endpoint.category else None,
        "all_category_events": endpoint.all_category_events,
        "event_types": [t.name for t in endpoint.event_types],
        "merchant_id": endpoint.merchant_id,
        "custom_headers": sorted((endpoint.custom_headers or {}).keys()),
        "timeout_seconds": endpoint.timeout_seconds,
        "enabled": endpoint.enabled,
    }


def _apply(endpoint: Endpoint, resolved: ResolvedInput) -> None:
    data = resolved.data
    endpoint.url = resolved.url
    endpoint.category = resolved.category
    endpoint.event_types = resolved.event_types
    endpoint.all_category_events = bool(data.all_category_events)
    endpoint.description = (data.description or "").strip()
    endpoint.merchant_id = (data.merchant_id or "").strip() or None
    endpoint.custom_headers = encrypt_header_values(_kept_values(endpoint, data.custom_headers))
    endpoint.timeout_seconds = data.timeout_seconds


def _kept_values(endpoint: Endpoint, headers: dict[str, str] | None) -> dict[str, str]:
    """Header values are never sent back to the edit form, so a blank value for a header
    the endpoint already has means: keep the saved value."""
    saved = decrypt_header_values(endpoint.custom_headers) if endpoint.custom_headers else {}
    return {name: value or saved.get(name, "") for name, value in (headers or {}).items()}


def create_endpoint(data: EndpointInput, actor: str) -> tuple[Endpoint, str]:
    """A new enabled endpoint and its signing secret in clear (to show once)."""
    resolved = resolve_input(data)
    endpoint = Endpoint(enabled=True)
    _apply(endpoint, resolved)
    secret = issue_secret(endpoint)
    db.session.add(endpoint)
    db.session.flush()
    record_audit(
        actor, "endpoint.create", "endpoint", endpoint.id, None, endpoint_audit_dict(endpoint)
    )
    log.info("endpoint created endpoint_id=%s", endpoint.id)
    operational_events.endpoint_changed(operational_events.ENDPOINT_CREATED, endpoint, actor)
    return endpoint, secret


def update_endpoint(endpoint: Endpoint, data: EndpointInput, actor: str) -> Endpoint:
    resolved = resolve_input(data, existing=endpoint)
    before = endpoint_audit_dict(endpoint)
    _apply(endpoint, resolved)
    db.session.flush()
    after = endpoint_audit_dict(endpoint)
    record_audit(actor, "endpoint.update", "endpoint", endpoint.id, before, after)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    operational_events.endpoint_changed(
        operational_events.ENDPOINT_UPDATED, endpoint, actor, {"changed": changed}
    )
    return endpoint


def disable_endpoint(endpoint: Endpoint, actor: str, note: str | None = None) -> None:
    """Hold new deliveries; what is already waiting stays waiting until enabled again."""
    if not endpoint.enabled:
        return
    endpoint.enabled = False
    endpoint.disabled_reason = DISABLED_MANUAL
    endpoint.disabled_note = note
    endpoint.disabled_by = actor
    endpoint.disabled_at = utcnow()
    db.session.flush()
    record_audit(
        actor,
        "endpoint.disable",
        "endpoint",
        endpoint.id,
        {"enabled": True},
        {"enabled": False, "reason": DISABLED_MANUAL},
    )
    operational_events.endpoint_disabled(endpoint.id, DISABLED_MANUAL, note, actor)


def enable_endpoint(endpoint: Endpoint, actor: str) -> list[tuple[int, int]]:
    """Enable again; returns the held deliveries for the caller to enqueue after commit."""
    if endpoint.enabled:
        return []
    before = {"enabled": False, "reason": endpoint.disabled_reason}
    endpoint.enabled = True
    endpoint.disabled_reason = endpoint.disabled_note = endpoint.disabled_by = None
    endpoint.disabled_at = None
    endpoint.failing_since = None
    endpoint.consecutive_failures = 0
    db.session.flush()
    record_audit(actor, "endpoint.enable", "endpoint", endpoint.id, before, {"enabled": True})
    return held_deliveries(endpoint.id)


def delete_endpoint(endpoint: Endpoint, actor: str) -> int:
    """Soft delete (history stays readable); waiting deliveries are cancelled. Returns count."""
    before = endpoint_audit_dict(endpoint)
    endpoint.deleted_at = utcnow()
    endpoint.enabled = False
    cancelled = cancel_waiting_deliveries(endpoint.id)
    db.session.flush()
    record_audit(
        actor,
        "endpoint.delete",
        "endpoint",
        endpoint.id,
        before,
        {"deleted": True, "cancelled_deliveries": cancelled},
    )
    operational_events.endpoint_changed(operational_events.ENDPOINT_DELETED, endpoint, actor)
    return cancelled


def get_live_endpoint(endpoint_id: int) -> Endpoint | None:
    endpoint = db.session.get(Endpoint, endpoint_id)
    return None if endpoint is None or endpoint.deleted_at is not None else endpoint
