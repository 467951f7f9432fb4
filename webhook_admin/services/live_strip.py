"""The monitor's glance strip: the last hour's deliveries by outcome, the success rate and a
deliveries-per-minute chart drawn as server-side SVG (like the endpoint chart).

Counting an hour of deliveries reads that hour's rows; `deliveries.created_at` has no index,
so the rows are found by id instead (ids grow with creation time): the first id of the hour is
found once by bisection over the primary key, then moved forward from where it was."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from ..clock import utcnow
from ..extensions import db
from ..models import Delivery, DeliveryStatus
from .endpoint_stats import _nice
from .live import TtlMemo, version_token

MINUTES = 60
CHART_WIDTH, CHART_HEIGHT = 600, 90
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 30, 596, 6, 72
# Past its type's deadline (#17): counted apart from failed.
EXPIRED = DeliveryStatus.EXPIRED
STRIP_SECONDS = 5.0  # one computation per process per interval, however many pages poll

_floors: dict[str, int] = {}  # database url -> an id at or below the first of the last hour
_floors_lock = threading.Lock()
strip_memo = TtlMemo(STRIP_SECONDS)


@dataclass
class MinuteBar:
    x: float
    width: float
    segments: list[tuple[str, float, float]]
    title: str


@dataclass
class Strip:
    counts: dict[str, int]
    per_minute: list[dict[str, int]]
    bars: list[MinuteBar] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    labels: list[tuple[float, str]] = field(default_factory=list)
    version: str = ""

    @property
    def success_rate(self) -> float | None:
        final = self.counts["delivered"] + self.counts["failed"]
        return 100 * self.counts["delivered"] / final if final else None


def _minute_expression(column):
    if db.engine.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("minute", column), "YYYY-MM-DD HH24:MI")
    return func.strftime("%Y-%m-%d %H:%M", column)


def _created_at(delivery_id: int) -> datetime | None:
    return db.session.scalar(
        select(Delivery.created_at).where(Delivery.id >= delivery_id).order_by(Delivery.id).limit(1)
    )


def first_id_since(since: datetime) -> int:
    """An id at or below the first delivery created at `since` or later (primary-key lookups)."""
    key = str(db.engine.url)
    with _floors_lock:
        low = _floors.get(key, 0)
    high = db.session.scalar(select(func.max(Delivery.id))) or 0
    if low > high:  # the table was emptied and its ids restarted
        low = 0
    first = _created_at(low)
    if first is None or first >= since:
        return low
    while low < high:  # bisect: the smallest id whose row was created at `since` or later
        mid = (low + high) // 2
        created = _created_at(mid)
        if created is not None and created < since:
            low = mid + 1
        else:
            high = mid
    with _floors_lock:
        _floors[key] = low
    return low


def outcome_of(status: str) -> str:
    if status == DeliveryStatus.SUCCEEDED:
        return "delivered"
    if status == DeliveryStatus.FAILED:
        return "failed"
    if status == DeliveryStatus.RETRYING:
        return "retrying"
    if status == EXPIRED:
        return "expired"
    return "other"  # pending, in flight, cancelled


def compute_strip(now: datetime | None = None) -> Strip:
    now = now or utcnow()
    first_minute = (now - timedelta(minutes=MINUTES - 1)).replace(second=0, microsecond=0)
    floor = first_id_since(first_minute)
    minute = _minute_expression(Delivery.created_at)
    rows = db.session.execute(
        select(minute, Delivery.status, func.count())
        .where(Delivery.id >= floor, Delivery.created_at >= first_minute)
        .group_by(minute, Delivery.status)
    ).all()
    keys = [(first_minute + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M") for i in range(60)]
    per_minute = {
        k: {"delivered": 0, "failed": 0, "retrying": 0, "expired": 0, "other": 0} for k in keys
    }
    counts = {"delivered": 0, "failed": 0, "retrying": 0, "expired": 0, "other": 0}
    for key, status, count in rows:
        kind = outcome_of(status)
        counts[kind] += count
        if key in per_minute:
            per_minute[key][kind] += count
    strip = Strip(counts, list(per_minute.values()))
    strip.bars, strip.ticks = _bars(strip.per_minute, first_minute)
    strip.labels = [
        (
            round(PLOT_LEFT + i * (PLOT_RIGHT - PLOT_LEFT) / MINUTES, 1),
            f"{first_minute + timedelta(minutes=i):%H:%M}",
        )
        for i in range(0, MINUTES, 15)
    ]
    strip.version = version_token(counts, strip.per_minute, first_minute)
    return strip


def _bars(per_minute: list[dict[str, int]], first_minute: datetime):
    totals = [sum(m.values()) for m in per_minute]
    top = _nice(max(totals, default=0) or 1)
    plot = PLOT_BOTTOM - PLOT_TOP
    width = (PLOT_RIGHT - PLOT_LEFT) / len(per_minute)
    bars = []
    for i, m in enumerate(per_minute):
        y = float(PLOT_BOTTOM)
        segments = []
        others = m["retrying"] + m["expired"] + m["other"]
        for css, count in (
            ("bar-ok", m["delivered"]),
            ("bar-fail", m["failed"]),
            ("bar-other", others),
        ):
            height = plot * count / top
            if height:
                y -= height
                segments.append((css, round(y, 1), round(height, 1)))
        start = first_minute + timedelta(minutes=i)
        title = (
            f"{start:%H:%M} UTC: {m['delivered']} delivered, {m['failed']} failed, {others} other"
        )
        bars.append(
            MinuteBar(round(PLOT_LEFT + i * width + 0.5, 1), round(width - 1, 1), segments, title)
        )
    ticks = [(round(PLOT_BOTTOM - plot * v / top, 1), str(v)) for v in (0, top)]
    return bars, ticks


def live_strip() -> Strip:
    """The strip, computed at most once per STRIP_SECONDS per process and database."""
    return strip_memo.get(str(db.engine.url), compute_strip)
