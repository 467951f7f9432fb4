"""What the live pages poll: new delivery rows after a cursor, the monitor's glance strip, the
Webhook Management rows and an endpoint's 24 h figures. Each answers 204 without a body when
nothing changed since the version or cursor the page sent, after one cheap query."""

from __future__ import annotations

from flask import Blueprint, make_response, render_template, request
from flask_login import login_required

from ..services.endpoint_stats import CHART_HEIGHT, CHART_WIDTH, endpoint_stats
from ..services.endpoints import get_live_endpoint
from ..services.live import (
    FEED_LIMIT,
    changed_rows,
    count_after,
    deliveries_after,
    endpoint_version,
    endpoints_version,
    failing_endpoints,
    feed_start,
    newest_delivery,
)
from ..services.live_strip import live_strip
from ..services.queries import (
    PAGE_SIZE,
    auto_disabled_endpoints,
    deliveries_page,
    last_durations,
    list_endpoints_by_health,
    success_rates,
)
from .deliveries import STOP_POLLING, filters_from_args
from .webhooks import filters_from_args as endpoint_filters_from_args

bp = Blueprint("live", __name__)
MAX_SHOWN = 500  # rows a Webhook Management poll re-renders at most (after "Load more")


def unchanged(header: str = "", value: str = ""):
    response = make_response("", 204)
    if header:
        response.headers[header] = value
    return response


def watched_rows() -> dict[int, str]:
    """`watch=12.in_flight.1,13.pending.0`: the rows in flight the page shows, as it shows them."""
    watched = {}
    for part in request.args.get("watch", "").split(",")[:FEED_LIMIT]:
        row_id, _, state = part.partition(".")
        if row_id.isdigit() and state:
            watched[int(row_id)] = state
    return watched


def shown_rows() -> set[int]:
    """`have=14,15`: the rows the page shows past its cursor (the cursor waits while their
    commit window settles), so that they are neither rendered twice nor counted as new."""
    return {int(p) for p in request.args.get("have", "").split(",")[:FEED_LIMIT] if p.isdigit()}


def feed_response(rows, cursor: int, **headers):
    """The rows (new ones and changed watched ones) with the next cursor; 204 without rows."""
    if not rows and not headers:
        return unchanged("X-Live-Cursor", str(cursor))
    response = make_response(
        render_template(
            "deliveries/_feed.html",
            rows=rows,
            durations=last_durations([r.id for r in rows]),
            show_endpoint=request.args.get("show_endpoint") == "1",
        )
    )
    response.headers["X-Live-Cursor"] = str(cursor)
    response.headers.update({k.replace("_", "-"): str(v) for k, v in headers.items()})
    return response


@bp.get("/deliveries/feed")
@login_required
def delivery_feed():
    """Rows created after `after` that match the filters, oldest first, and the watched rows
    that changed; X-Live-Cursor is the next `after`. 204 when neither (one primary-key lookup,
    plus one for the watched rows). `count=1` (the page waits behind "N new"): X-Live-New
    instead of the new rows. `newest=1` ("N new" clicked after many): the first page again."""
    raw = request.args.get("after")
    if raw is None:  # no cursor yet: start from the newest delivery
        return unchanged("X-Live-Cursor", str(newest_delivery()[0]))
    if not raw.isdigit():
        return "after: a delivery id (a whole number, 0 or more) is required", 400
    after = int(raw)
    filters = filters_from_args()
    changed = changed_rows(watched_rows())
    if request.args.get("newest") == "1":
        page = deliveries_page(filters)
        response = make_response(
            render_template(
                "deliveries/_rows.html",
                page=page,
                filters=filters,
                show_endpoint=request.args.get("show_endpoint") == "1",
                watched=True,
            )
        )
        response.headers["X-Live-Cursor"] = str(feed_start(page.items, False))
        response.headers["X-Live-Reset"] = "1"
        return response
    have = shown_rows()
    if request.args.get("count") == "1":
        new = count_after(filters, after, have)
        if new:
            return feed_response(changed, after, X_Live_New=new)
        return feed_response(changed, after)
    feed = deliveries_after(filters, after)
    if feed is None:
        return feed_response(changed, after)
    fresh = [row for row in feed.rows if row.id not in have]
    seen = {row.id for row in fresh}
    return feed_response(fresh + [row for row in changed if row.id not in seen], feed.cursor)


@bp.get("/deliveries/strip")
@login_required
def delivery_strip():
    strip = live_strip()
    if request.args.get("version") == strip.version:
        return unchanged()
    return render_template("deliveries/_strip.html", strip=strip)


@bp.get("/webhooks/live")
@login_required
def webhook_rows():
    """The glance (system-disabled, failing now) and the rows shown, in health order; the page
    merges them row by row and leaves a row with an open form alone."""
    version = endpoints_version()
    if request.args.get("version") == version:
        return unchanged("X-Live-Version", version)
    shown = request.args.get("shown", type=int) or PAGE_SIZE
    page = list_endpoints_by_health(
        endpoint_filters_from_args(), None, min(max(shown, PAGE_SIZE), MAX_SHOWN)
    )
    filters = endpoint_filters_from_args()
    response = make_response(
        render_template(
            "webhooks/_live.html",
            endpoints=page.items,
            next_cursor=page.next_cursor,
            rates=success_rates([e.id for e in page.items]),
            filters=filters,
            auto_disabled=auto_disabled_endpoints(),
            failing=failing_endpoints(),
        )
    )
    response.headers["X-Live-Version"] = version
    return response


@bp.get("/webhooks/<int:endpoint_id>/stats")
@login_required
def endpoint_figures(endpoint_id: int):
    endpoint = get_live_endpoint(endpoint_id)
    if endpoint is None:  # deleted meanwhile: say so once and stop polling
        return render_template("webhooks/_stats_gone.html"), STOP_POLLING
    version = endpoint_version(endpoint)
    if request.args.get("version") == version:
        return unchanged()
    return render_template(
        "webhooks/_stats.html",
        endpoint=endpoint,
        stats=endpoint_stats(endpoint.id),
        chart_width=CHART_WIDTH,
        chart_height=CHART_HEIGHT,
        rates=success_rates([endpoint.id]),
        live_version=version,
    )
