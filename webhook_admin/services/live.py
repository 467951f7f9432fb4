"""What the live pages poll for: new deliveries after a cursor, and version tokens that let an
unchanged page be answered with a bodiless 204 after one cheap query."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from ..clock import utcnow
from ..extensions import db
from ..models import Delivery, Endpoint
from .queries import DeliveryFilters, _filtered_deliveries, last_durations

# A delivery's id is taken at INSERT and seen at COMMIT: two ingests committing out of id
# order would let a cursor jump over the slower one's rows. The cursor only moves past rows
# older than this, so a row still being committed is picked up by a later poll.
SETTLE = timedelta(seconds=2)
FEED_LIMIT = 200  # rows per poll at most, oldest first; a burst is caught up over polls


def version_token(*parts) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def minute_bucket() -> str:
    """Relative times ("3 min ago", "failing for 2 h") go stale: a version changes each minute."""
    return utcnow().strftime("%Y%m%d%H%M")


def newest_delivery() -> tuple[int, datetime | None]:
    """The newest delivery's id and creation time: one primary-key lookup."""
    row = db.session.execute(
        select(Delivery.id, Delivery.created_at).order_by(Delivery.id.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, None)


@dataclass
class Feed:
    rows: list[Delivery]
    cursor: int  # the next poll's `after`
    durations: dict


def deliveries_after(filters: DeliveryFilters, after: int) -> Feed | None:
    """Deliveries matching the filters with id > after, oldest first; None when nothing at all
    was created since the cursor (the caller answers 204 without running the filters)."""
    newest_id, newest_at = newest_delivery()
    if newest_id <= after:
        return None
    settled_before = utcnow() - SETTLE
    query = _filtered_deliveries(filters).where(Delivery.id > after)
    rows = list(db.session.scalars(query.order_by(Delivery.id).limit(FEED_LIMIT)))
    if len(rows) == FEED_LIMIT:
        cursor = rows[-1].id  # a burst: move on, the next poll takes the rest
    elif newest_at is not None and newest_at <= settled_before:
        cursor = newest_id  # all settled: nothing in between can still appear
    else:
        cursor = max([after] + [r.id for r in rows if r.created_at <= settled_before])
    return Feed(rows, cursor, last_durations([r.id for r in rows]))


NEW_COUNT_CAP = 1000  # "1000+ new": counting further costs a scan and helps nobody


def count_after(filters: DeliveryFilters, after: int, have: Collection[int]) -> int | None:
    """How many deliveries past the cursor match (up to the cap), leaving out those the page
    already shows (`have`: rows past a cursor still settling); None when nothing at all was
    created since (no filtered query)."""
    newest_id, _ = newest_delivery()
    if newest_id <= after:
        return None
    query = _filtered_deliveries(filters).with_only_columns(Delivery.id).where(Delivery.id > after)
    if have:
        query = query.where(Delivery.id.not_in(have))
    matching = query.limit(NEW_COUNT_CAP).subquery()  # ids only: an index-only count
    return db.session.scalar(select(func.count()).select_from(matching))


def changed_rows(watched: dict[int, str]) -> list[Delivery]:
    """Of the rows a page watches (id -> "status.attempts" as it shows them), the ones that
    changed since: one primary-key IN query."""
    if not watched:
        return []
    rows = db.session.scalars(select(Delivery).where(Delivery.id.in_(list(watched))))
    return [r for r in rows if f"{r.status}.{r.attempts_count}" != watched[r.id]]


def endpoints_version() -> str:
    """Changes when any live endpoint is added, deleted, edited, disabled or attempted: one
    aggregate over the endpoints table (hundreds of rows), plus the minute."""
    row = db.session.execute(
        select(
            func.count(),
            func.max(Endpoint.id),
            func.max(Endpoint.updated_at),
            func.max(Endpoint.last_attempt_at),
            func.sum(Endpoint.consecutive_failures),
        ).where(Endpoint.deleted_at.is_(None))
    ).one()
    return version_token(tuple(row), minute_bucket())


def endpoint_version(endpoint: Endpoint) -> str:
    """One endpoint's page figures: its state, its newest delivery (index lookup), the minute."""
    newest = db.session.scalar(
        select(func.max(Delivery.id)).where(Delivery.endpoint_id == endpoint.id)
    )
    return version_token(
        endpoint.updated_at,
        endpoint.last_attempt_at,
        endpoint.consecutive_failures,
        endpoint.enabled,
        newest,
        minute_bucket(),
    )


class TtlMemo:
    """One value per key, recomputed at most every `seconds` per process: 50 open pages cost
    one query per interval, not 50. Thread-safe (gunicorn threads share it)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._values: dict = {}
        self._lock = threading.Lock()

    def get(self, key, compute):
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and now - hit[0] < self.seconds:
                return hit[1]
        value = compute()
        with self._lock:
            self._values[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


def failing_endpoints(limit: int = 20) -> list[Endpoint]:
    """Enabled endpoints failing right now, the longest-failing first (the glance list)."""
    return list(
        db.session.scalars(
            select(Endpoint)
            .where(
                Endpoint.deleted_at.is_(None),
                Endpoint.enabled.is_(True),
                Endpoint.failing_since.is_not(None),
            )
            .order_by(Endpoint.failing_since, Endpoint.id)
            .limit(limit)
        )
    )


def feed_start(page_items: list[Delivery], paged: bool) -> int:
    """The first `after` of a page's feed: the newest row shown; a page further down starts
    at the newest delivery (rows above it come through the "N new" control)."""
    if paged or not page_items:
        return newest_delivery()[0] if paged else 0
    return max(d.id for d in page_items)
