"""The data model; one aggregate per module, all re-exported here."""

from .api_token import SCOPE_ADMIN, SCOPE_READ, SCOPES, ApiToken, IdempotencyRecord
from .catalog import Category, EventType
from .endpoint import (
    DISABLED_AUTO,
    DISABLED_GONE,
    DISABLED_MANUAL,
    Endpoint,
    endpoint_event_types,
)
from .event import Attempt, Delivery, DeliveryStatus, ErrorClass, Event, Trigger
from .user import ROLE_ADMIN, ROLE_VIEWER, ROLES, AppSetting, AuditEntry, RecoveryCode, User

__all__ = [
    "DISABLED_AUTO",
    "DISABLED_GONE",
    "DISABLED_MANUAL",
    "ROLES",
    "ROLE_ADMIN",
    "ROLE_VIEWER",
    "SCOPES",
    "SCOPE_ADMIN",
    "SCOPE_READ",
    "ApiToken",
    "AppSetting",
    "Attempt",
    "AuditEntry",
    "Category",
    "Delivery",
    "DeliveryStatus",
    "Endpoint",
    "ErrorClass",
    "Event",
    "EventType",
    "IdempotencyRecord",
    "RecoveryCode",
    "Trigger",
    "User",
    "endpoint_event_types",
]
