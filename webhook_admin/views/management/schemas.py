"""The management API's request and response models: pydantic validates with them and
spectree writes the OpenAPI document from them. Bodies forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...config import ENDPOINT_TIMEOUT_MAX
from ...forms import EVENT_TYPE_NAME
from ...models import DeliveryStatus

MAX_LIMIT = 200
INT32_MAX = 2**31 - 1
Cursor = Annotated[
    str, Field(min_length=1, max_length=300, description="`next` of the previous page")
]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"page size, at most {MAX_LIMIT}")]
ShortText = Annotated[str, Field(max_length=255)]
HeaderValue = Annotated[str, Field(max_length=1024)]


class Body(BaseModel):
    """A request body: an unknown field is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


def _no_null_defaults(schema: dict) -> None:
    """A PATCH field that may be left out but not sent as null has no default to show."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None and "anyOf" not in prop:
            del prop["default"]


class Patch(BaseModel):
    """A PATCH body: fields left out keep their values; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


# Endpoints


class EndpointCreate(Body):
    url: str = Field(max_length=2048, description="https URL that receives the webhooks")
    event_types: list[Annotated[str, Field(max_length=120)]] = Field(
        default_factory=list, max_length=200
    )
    category: str | None = Field(None, max_length=80)
    all_category_events: bool = False
    description: str = Field("", max_length=2000)
    merchant_id: str | None = Field(None, max_length=120)
    custom_headers: dict[Annotated[str, Field(max_length=64)], HeaderValue] = Field(
        default_factory=dict, max_length=20
    )
    timeout_seconds: float | None = Field(None, ge=1, le=ENDPOINT_TIMEOUT_MAX)


class EndpointPatch(Patch):
    """Any field of the edit form; those left out keep their value. A custom header sent
    with an empty value keeps its saved value (as in the form)."""

    url: str = Field(None, max_length=2048)
    event_types: list[Annotated[str, Field(max_length=120)]] = Field(None, max_length=200)
    category: str | None = Field(None, max_length=80)
    all_category_events: bool = Field(None)
    description: str = Field(None, max_length=2000)
    merchant_id: str | None = Field(None, max_length=120)
    custom_headers: dict[Annotated[str, Field(max_length=64)], HeaderValue] = Field(
        None, max_length=20
    )
    timeout_seconds: float | None = Field(None, ge=1, le=ENDPOINT_TIMEOUT_MAX)


class EndpointDisable(Body):
    note: str | None = Field(None, max_length=2000)


class Endpoint(BaseModel):
    id: int
    url: str
    description: str
    category: str | None
    all_category_events: bool
    event_types: list[str]
    merchant_id: str | None
    custom_headers: list[str] = Field(description="names only; values are never shown")
    timeout_seconds: float | None
    enabled: bool
    disabled_reason: str | None
    disabled_note: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(Endpoint):
    secret: str = Field(description="the signing secret, shown this once")


class EndpointPage(BaseModel):
    data: list[Endpoint]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


class EndpointQuery(Query):
    limit: Limit = 50
    after: Cursor | None = None
    category: ShortText | None = None
    enabled: bool | None = None
    merchant_id: ShortText | None = None
    event_type: ShortText | None = None
    q: ShortText | None = Field(None, description="text in the URL or description")


class Secret(BaseModel):
    secret: str
    previous_secret_expires_at: datetime | None = Field(
        description="until then the previous secret signs too (24 h after a rotation)"
    )


class Recover(Body):
    since: datetime | None = Field(None, description="deliveries created at or after")
    until: datetime | None = Field(None, description="deliveries created before")
    dry_run: bool = False


class RecoverResult(BaseModel):
    count: int = Field(description="failed deliveries in the window")
    dry_run: bool
    job_id: str | None


class HourStats(BaseModel):
    start: datetime
    delivered: int
    failed: int
    other: int


class EndpointStats(BaseModel):
    delivered: int
    failed: int
    p50_ms: int | None
    p95_ms: int | None
    hours: list[HourStats]


class TestEventSent(BaseModel):
    delivery_id: int
    event_id: str


# Deliveries and events

Status = Literal[tuple(DeliveryStatus.ALL)]


class DeliveryQuery(Query):
    limit: Limit = 50
    after: Cursor | None = None
    endpoint_id: int | None = Field(None, ge=1, le=INT32_MAX)
    event_id: ShortText | None = None
    event_type: ShortText | None = None
    category: ShortText | None = None  # every type of the category
    merchant_id: ShortText | None = None
    status: Status | None = None
    since: datetime | None = None
    until: datetime | None = None


class Delivery(BaseModel):
    id: int
    event_id: str
    event_type: str
    endpoint_id: int
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error_class: str | None
    created_at: datetime
    completed_at: datetime | None


class Attempt(BaseModel):
    number: int
    trigger: str
    started_at: datetime
    duration_ms: int
    request_url: str
    request_headers: dict[str, Any]
    request_body: str
    response_status: int | None
    response_headers: dict[str, Any] | None
    response_body: str | None
    error_class: str | None
    error_message: str | None
    succeeded: bool


class DeliveryDetail(Delivery):
    attempts: list[Attempt] = Field(description="oldest first, masked as on the page")


class DeliveryPage(BaseModel):
    data: list[Delivery]
    next: str | None


class RetryQueued(BaseModel):
    delivery_id: int
    status: str


class EventQuery(Query):
    limit: Limit = 50
    after: Cursor | None = None
    event_type: ShortText | None = None


class Event(BaseModel):
    id: str
    type: str
    merchant_id: str | None
    occurred_at: datetime
    received_at: datetime
    source: str
    data: dict[str, Any]
    delivery_count: int


class EventDetail(Event):
    deliveries: list[Delivery]


class EventPage(BaseModel):
    data: list[Event]
    next: str | None


OUTCOMES = (
    "delivered, pending, failed, expired or cancelled (a delivery exists; `delivery_id`), "
    "would_deliver, or the first rule the endpoint fails: deleted, created_after_event, "
    "not_subscribed, merchant_mismatch, disabled, type_archived, unknown_type, test_event"
)


class Explanation(BaseModel):
    endpoint_id: int
    endpoint_url: str
    outcome: str = Field(description=OUTCOMES)
    would_deliver: bool = Field(description="fan-out's rules pass for it now")
    reasons: list[str] = Field(description="every rule it fails now, in reading order")
    detail: str = Field(description="the answer in words")
    delivery_id: int | None
    delivery_status: str | None


class EventExplanation(BaseModel):
    event_id: str
    event_type: str
    endpoints: list[Explanation] = Field(description="every endpoint, deleted ones too")


class ExplainQuery(Query):
    event_id: Annotated[str, Field(min_length=1, max_length=255)]


# Catalog

DEADLINE = (
    "a delivery not made by occurred_at + this many seconds gets no more automatic tries "
    "and becomes expired; null: no deadline"
)
Deadline = Annotated[int, Field(ge=60, le=30 * 24 * 3600, description=DEADLINE)]


class EventType(BaseModel):
    name: str
    category: str
    description: str
    trigger_condition: str
    archived: bool
    example_payload: dict[str, Any]
    json_schema: dict[str, Any] | None
    expires_after_seconds: int | None = Field(description=DEADLINE)
    subscribed_endpoints: list[int] | None = Field(
        None, description="ids of the live endpoints that receive it (one event type only)"
    )


class EventTypeList(BaseModel):
    data: list[EventType]


class EventTypeCreate(Body):
    name: str = Field(max_length=120, pattern=EVENT_TYPE_NAME)
    category: str = Field(max_length=80)
    description: str = Field("", max_length=2000)
    trigger_condition: str = Field("", max_length=2000, description="when the event fires")
    example_payload: dict[str, Any] = Field(default_factory=dict)
    json_schema: dict[str, Any] | None = Field(
        None,
        description="JSON Schema (Draft 2020-12) of `data`, enforced at ingest; "
        "null: any object is accepted",
    )
    expires_after_seconds: Deadline | None = None


class EventTypePatch(Patch):
    """The name never changes (producers and receivers know the type by it)."""

    category: str = Field(None, max_length=80)
    description: str = Field(None, max_length=2000)
    trigger_condition: str = Field(None, max_length=2000)
    example_payload: dict[str, Any] = Field(None)
    json_schema: dict[str, Any] | None = Field(
        None, description="a new JSON Schema (Draft 2020-12) of `data`; null removes it"
    )
    archived: bool = Field(None)
    expires_after_seconds: Deadline | None = Field(None, description=DEADLINE + "; null clears it")


class Category(BaseModel):
    name: str
    description: str
    event_types: list[str]


class CategoryList(BaseModel):
    data: list[Category]


class CategoryCreate(Body):
    name: str = Field(min_length=1, max_length=80, pattern=r"\S")
    description: str = Field("", max_length=2000)
