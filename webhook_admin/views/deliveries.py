"""The delivery monitor, one delivery's attempts timeline, retries and bulk retries."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, render_template, request, url_for
from flask_login import login_required

from ..auth import actor, admin_required
from ..clock import utcnow
from ..extensions import db
from ..models import Delivery, DeliveryStatus, ErrorClass
from ..queues import enqueue_bulk_retry, enqueue_deliveries
from ..services.bulk_retry import (
    RetryRefused,
    RetryScope,
    count_failed,
    record_bulk_retry_request,
    retry_delivery,
)
from ..services.catalog import list_catalog
from ..services.live import feed_start
from ..services.live_strip import live_strip
from ..services.queries import (
    COUNT_CAP,
    STATUS_CLASSES,
    TIME_RANGES,
    DeliveryFilters,
    count_deliveries,
    deliveries_page,
    endpoint_choices,
    event_type_names,
    last_durations,
)
from .common import LIVE_STATUSES, done, is_htmx, render
from .webhooks import load as load_endpoint

bp = Blueprint("deliveries", __name__, url_prefix="/deliveries")
STOP_POLLING = 286  # htmx stops an `every` trigger when the server answers 286


def load(delivery_id: int) -> Delivery:
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        abort(404)
    return delivery


ERROR_CLASSES = tuple(
    getattr(ErrorClass, name)
    for name in dir(ErrorClass)
    if name.isupper() and name != "NOT_RETRIED"
)


def filters_from_args() -> DeliveryFilters:
    args = request.args
    endpoint = args.get("endpoint_id", "")
    return DeliveryFilters(
        status=args.get("status", "") if args.get("status") in DeliveryStatus.ALL else "",
        endpoint_id=int(endpoint) if endpoint.isdigit() else None,
        event_type=args.get("event_type", ""),
        category=args.get("category", ""),
        since=args.get("since", ""),
        event_id=args.get("event_id", ""),
        status_class=args.get("status_class", ""),
        error_class=args.get("error_class", ""),
        merchant_id=args.get("merchant_id", ""),
        hour=args.get("hour", ""),
    )


@bp.get("")
@login_required
def index():
    filters = filters_from_args()
    cursor = request.args.get("cursor", type=int)
    page = deliveries_page(filters, cursor)
    # The count goes with the first page only (a "Load more" page keeps the count shown).
    total = count_deliveries(filters) if cursor is None else None
    if is_htmx() and cursor is not None:  # "Load more": the next rows
        return render_template(
            "deliveries/_rows.html", page=page, filters=filters, show_endpoint=True
        )
    # The live feed starts at the newest row shown (a page further down: at the newest of all).
    live = {
        "live_after": feed_start(page.items, cursor is not None),
        "live_paged": cursor is not None,
    }
    if is_htmx():  # a filter changed: the count and the table
        return render_template(
            "deliveries/_results.html",
            page=page,
            filters=filters,
            show_endpoint=True,
            total=total,
            count_cap=COUNT_CAP,
            **live,
        )
    return render_template(
        "deliveries/index.html",
        page=page,
        filters=filters,
        total=total,
        count_cap=COUNT_CAP,
        status_classes=STATUS_CLASSES,
        error_classes=ERROR_CLASSES,
        cursor=cursor,
        show_endpoint=True,
        endpoints=endpoint_choices(),
        event_types=event_type_names(),
        categories=list_catalog(),
        time_ranges=TIME_RANGES,
        statuses=DeliveryStatus.ALL,
        strip=live_strip(),
        **live,
    )


@bp.get("/<int:delivery_id>/row")
@login_required
def row(delivery_id: int):
    """One row, polled while in flight; 286 once it is final so the polling stops."""
    delivery = load(delivery_id)
    status = 200 if delivery.status in LIVE_STATUSES else STOP_POLLING
    show_endpoint = request.args.get("show_endpoint") == "1"
    return render_template(
        "deliveries/_row.html",
        delivery=delivery,
        show_endpoint=show_endpoint,
        durations=last_durations([delivery.id]),
    ), status


@bp.get("/<int:delivery_id>/status")
@login_required
def live_status(delivery_id: int):
    delivery = load(delivery_id)
    status = 200 if delivery.status in LIVE_STATUSES else STOP_POLLING
    return render_template(
        "deliveries/_live_status.html", delivery=delivery, delivery_id=delivery.id
    ), status


@bp.get("/<int:delivery_id>")
@login_required
def timeline(delivery_id: int):
    delivery = load(delivery_id)
    live = delivery.status in LIVE_STATUSES
    page, status = render(
        "deliveries/timeline.html", "deliveries/_timeline.html", delivery=delivery, live=live
    )
    return page, status if live or not is_htmx() else STOP_POLLING


@bp.post("/<int:delivery_id>/retry")
@admin_required
def retry(delivery_id: int):
    delivery = load(delivery_id)
    try:
        attempts_made = retry_delivery(delivery, actor(), request.remote_addr)
    except RetryRefused:
        db.session.rollback()
        abort(409)
    db.session.commit()
    enqueue_deliveries([(delivery.id, attempts_made)])
    if request.form.get("from") == "row":
        return done(
            "Retry queued.",
            request.referrer or url_for("deliveries.index"),
            "deliveries/_row.html",
            delivery=load(delivery_id),
            show_endpoint=request.form.get("show_endpoint") == "1",
            durations=last_durations([delivery_id]),
        )
    return done(
        "Retry queued.",
        url_for("deliveries.timeline", delivery_id=delivery.id),
        "deliveries/_timeline.html",
        delivery=load(delivery_id),
        live=True,
    )


def scope_from(values) -> RetryScope:
    endpoint = load_endpoint(int(values.get("endpoint_id", 0) or 0))
    window = values.get("range", "")
    since_raw = values.get("since", "")
    if since_raw:
        try:
            since = datetime.fromisoformat(since_raw)
        except ValueError:
            abort(400)
    elif window in TIME_RANGES:
        since = utcnow() - TIME_RANGES[window]
    else:
        since = None
    return RetryScope(endpoint.id, since.replace(tzinfo=None) if since else None, None)


@bp.route("/bulk-retry", methods=["GET", "POST"])
@admin_required
def bulk_retry():
    """GET: how many would be retried (the confirm step). POST: start the background job."""
    values = request.form if request.method == "POST" else request.args
    scope = scope_from(values)
    endpoint = load_endpoint(scope.endpoint_id)
    count = count_failed(scope)
    context = {
        "endpoint": endpoint,
        "scope": scope,
        "count": count,
        "range": values.get("range", ""),
        "time_ranges": TIME_RANGES,
    }
    if request.method == "GET":
        return render("deliveries/bulk_retry.html", "deliveries/_bulk_retry.html", **context)
    record_bulk_retry_request(scope, count, actor(), request.remote_addr)
    db.session.commit()
    job = enqueue_bulk_retry(scope.as_dict(), actor()) if count else None
    started = job is not None
    return render(
        "deliveries/bulk_retry.html",
        "deliveries/_bulk_retry.html",
        202 if started else 200,
        started=started,
        job_id=job.id if job else None,
        queue_failed=bool(count) and not started,
        **context,
    )
