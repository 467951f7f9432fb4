"""/api/v1/endpoints: the Webhook Management page's operations, through the same services."""

from __future__ import annotations

from dataclasses import asdict

from flask import request, url_for

from ...extensions import db
from ...models import Endpoint
from ...queues import enqueue_bulk_retry, enqueue_deliveries
from ...security_headers import no_store
from ...services.bulk_retry import RetryScope, count_failed, record_bulk_retry_request
from ...services.endpoint_secrets import reveal_secret, rotate_secret
from ...services.endpoint_stats import endpoint_stats
from ...services.endpoint_test_event import TestEventRefused, send_test_event
from ...services.endpoints import (
    EndpointInput,
    ValidationError,
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    get_live_endpoint,
    update_endpoint,
)
from ...services.explain import explain_for_endpoint
from ...services.queries import EndpointFilters, list_endpoints
from . import bp
from . import schemas as s
from .core import actor, after_commit, api
from .cursors import id_cursor, naive_utc
from .deliveries import load_event
from .out import endpoint_out
from .problems import ApiProblem, field_errors

TAGS = ("endpoints",)


def load(endpoint_id: int) -> Endpoint:
    endpoint = get_live_endpoint(endpoint_id) if 0 < endpoint_id <= s.INT32_MAX else None
    if endpoint is None:
        raise ApiProblem(404, f"no endpoint with id {endpoint_id}")
    return endpoint


def invalid(exc: ValidationError) -> ApiProblem:
    return ApiProblem(422, str(exc), field_errors(exc.errors))


@bp.get("/endpoints")
@api(query=s.EndpointQuery, resp={200: s.EndpointPage}, tags=TAGS)
def list_all(query: s.EndpointQuery):
    """List endpoints, newest first (keyset pages)."""
    status = {True: "enabled", False: "disabled", None: ""}[query.enabled]
    filters = EndpointFilters(
        text=query.q or "",
        category=query.category or "",
        status=status,
        merchant_id=query.merchant_id or "",
        event_type=query.event_type or "",
    )
    page = list_endpoints(filters, id_cursor(query.after), limit=query.limit)
    next_cursor = str(page.next_cursor) if page.next_cursor is not None else None
    return {"data": [endpoint_out(e) for e in page.items], "next": next_cursor}


@bp.post("/endpoints")
@api(admin=True, json=s.EndpointCreate, resp={201: s.EndpointCreated}, tags=TAGS)
def create(json: s.EndpointCreate):
    """Create an endpoint; the answer has its signing secret, shown this once."""
    try:
        endpoint, secret = create_endpoint(EndpointInput(**json.model_dump()), actor())
    except ValidationError as exc:
        raise invalid(exc) from None
    location = url_for("management.get_one", endpoint_id=endpoint.id)
    return no_store_json(endpoint_out(endpoint) | {"secret": secret}, 201, Location=location)


def no_store_json(body: dict, status: int = 200, **headers):
    from flask import jsonify

    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return no_store(response)


@bp.get("/endpoints/<int:endpoint_id>")
@api(resp={200: s.Endpoint}, tags=TAGS)
def get_one(endpoint_id: int):
    """One endpoint."""
    return endpoint_out(load(endpoint_id))


def patched_input(endpoint: Endpoint, patch: s.EndpointPatch) -> EndpointInput:
    """The endpoint's saved values with the sent fields over them."""
    current = EndpointInput(
        url=endpoint.url,
        event_types=[t.name for t in endpoint.event_types],
        category=endpoint.category.name if endpoint.category else None,
        all_category_events=endpoint.all_category_events,
        description=endpoint.description or "",
        merchant_id=endpoint.merchant_id,
        # blank values: keep the saved ones (the form's rule, services.endpoints._kept_values)
        custom_headers={name: "" for name in endpoint.custom_headers or {}},
        timeout_seconds=endpoint.timeout_seconds,
    )
    values = asdict(current) | patch.model_dump(exclude_unset=True)
    return EndpointInput(**values)


@bp.patch("/endpoints/<int:endpoint_id>")
@api(admin=True, json=s.EndpointPatch, resp={200: s.Endpoint}, tags=TAGS)
def update(endpoint_id: int, json: s.EndpointPatch):
    """Change any field of the edit form; fields left out keep their values."""
    endpoint = load(endpoint_id)
    try:
        update_endpoint(endpoint, patched_input(endpoint, json), actor())
    except ValidationError as exc:
        raise invalid(exc) from None
    return endpoint_out(endpoint)


@bp.delete("/endpoints/<int:endpoint_id>")
@api(admin=True, resp={204: None}, tags=TAGS)
def delete(endpoint_id: int):
    """Delete (soft, as the page does): history stays, waiting deliveries are cancelled."""
    delete_endpoint(load(endpoint_id), actor())
    return "", 204


@bp.post("/endpoints/<int:endpoint_id>/enable")
@api(admin=True, resp={200: s.Endpoint}, tags=TAGS)
def enable(endpoint_id: int):
    """Enable; deliveries held while it was disabled are sent."""
    endpoint = load(endpoint_id)
    held = enable_endpoint(endpoint, actor())
    after_commit(lambda: enqueue_deliveries(held))
    return endpoint_out(endpoint)


@bp.post("/endpoints/<int:endpoint_id>/disable")
@api(admin=True, json=s.EndpointDisable, resp={200: s.Endpoint}, tags=TAGS)
def disable(endpoint_id: int, json: s.EndpointDisable):
    """Disable, with an optional note; new deliveries wait until it is enabled again."""
    endpoint = load(endpoint_id)
    disable_endpoint(endpoint, actor(), note=(json.note or None) if json else None)
    return endpoint_out(endpoint)


@bp.post("/endpoints/<int:endpoint_id>/rotate-secret")
@api(admin=True, resp={200: s.Secret}, tags=TAGS)
def rotate(endpoint_id: int):
    """A new signing secret; the previous one keeps signing beside it for 24 h."""
    endpoint = load(endpoint_id)
    secret = rotate_secret(endpoint, actor(), request.remote_addr)
    return no_store_json(secret_out(endpoint, secret))


def secret_out(endpoint: Endpoint, secret: str) -> dict:
    expires = endpoint.previous_secret_expires_at
    return {
        "secret": secret,
        "previous_secret_expires_at": expires.isoformat() + "Z" if expires else None,
    }


@bp.get("/endpoints/<int:endpoint_id>/secret")
@api(admin=True, resp={200: s.Secret}, tags=TAGS)
def secret(endpoint_id: int):
    """The signing secret (admin scope; audited)."""
    endpoint = load(endpoint_id)
    value = reveal_secret(endpoint, actor(), request.remote_addr)
    db.session.commit()  # the audit entry, though a GET
    return no_store_json(secret_out(endpoint, value))


@bp.post("/endpoints/<int:endpoint_id>/test")
@api(admin=True, resp={202: s.TestEventSent}, tags=TAGS)
def send_test(endpoint_id: int):
    """Send a `webhook.test` event to this endpoint."""
    endpoint = load(endpoint_id)
    try:
        delivery_id = send_test_event(endpoint, actor())
    except TestEventRefused as exc:
        raise ApiProblem(409, str(exc)) from None
    after_commit(lambda: enqueue_deliveries([(delivery_id, 0)]))
    return {"delivery_id": delivery_id, "event_id": _event_of(delivery_id)}, 202


def _event_of(delivery_id: int) -> str:
    from ...models import Delivery

    return db.session.get(Delivery, delivery_id).event_id


@bp.post("/endpoints/<int:endpoint_id>/recover")
@api(
    admin=True,
    json=s.Recover,
    resp={200: s.RecoverResult, 202: s.RecoverResult, 503: s.Problem},
    tags=TAGS,
)
def recover(endpoint_id: int, json: s.Recover):
    """Send again the endpoint's failed deliveries created in [since, until): with
    `dry_run` only count them; otherwise a background job queues them (202)."""
    endpoint = load(endpoint_id)
    since, until = naive_utc(json.since), naive_utc(json.until)
    if since and until and until <= since:
        raise ApiProblem(
            422, "until must be after since", [{"field": "until", "message": "not after since"}]
        )
    scope = RetryScope(endpoint.id, since, until)
    count = count_failed(scope)
    if json.dry_run:
        return {"count": count, "dry_run": True, "job_id": None}
    record_bulk_retry_request(scope, count, actor(), request.remote_addr)
    if not count:
        return {"count": 0, "dry_run": False, "job_id": None}
    db.session.commit()  # the job reads the database: the audit entry first
    job = enqueue_bulk_retry(scope.as_dict(), actor())
    if job is None:
        raise ApiProblem(
            503, "the job queue (Redis) is unavailable; try again", headers={"Retry-After": "5"}
        )
    return {"count": count, "dry_run": False, "job_id": job.id}, 202


@bp.get("/endpoints/<int:endpoint_id>/stats")
@api(resp={200: s.EndpointStats}, tags=TAGS)
def stats(endpoint_id: int):
    """The endpoint page's figures: 24 hourly buckets, p50 and p95 response times."""
    figures = endpoint_stats(load(endpoint_id).id)
    return {
        "delivered": figures.delivered,
        "failed": figures.failed,
        "p50_ms": figures.p50_ms,
        "p95_ms": figures.p95_ms,
        "hours": [
            {
                "start": h.start.isoformat() + "Z",
                "delivered": h.delivered,
                "failed": h.failed,
                "other": h.other,
            }
            for h in figures.hours
        ],
    }


@bp.get("/endpoints/<int:endpoint_id>/explain")
@api(query=s.ExplainQuery, resp={200: s.Explanation}, tags=TAGS)
def explain_endpoint_api(endpoint_id: int, query: s.ExplainQuery):
    """Why this endpoint got or did not get a delivery of the event `event_id`."""
    endpoint = load(endpoint_id)
    return explain_for_endpoint(load_event(query.event_id), endpoint.id).as_json()
