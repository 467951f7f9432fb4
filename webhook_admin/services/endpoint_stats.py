"""An endpoint's last 24 hours: deliveries per hour by outcome, response-time percentiles,
and the geometry of the bar chart the page draws as server-side SVG."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from ..clock import utcnow
from ..extensions import db
from ..models import Attempt, Delivery, DeliveryStatus

HOURS = 24
CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 480, 80, 2


@dataclass
class HourBucket:
    start: datetime
    delivered: int = 0
    failed: int = 0
    other: int = 0  # waiting, in flight or cancelled

    @property
    def total(self) -> int:
        return self.delivered + self.failed + self.other


@dataclass
class Bar:
    x: float
    width: float
    segments: list[tuple[str, float, float]]  # (css class, y, height)
    title: str


@dataclass
class EndpointStats:
    hours: list[HourBucket]
    p50_ms: int | None
    p95_ms: int | None
    bars: list[Bar] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(h.delivered for h in self.hours)

    @property
    def failed(self) -> int:
        return sum(h.failed for h in self.hours)


def _hour_expression(column):
    if db.engine.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", column), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", column)


def hourly_outcomes(endpoint_id: int, now: datetime) -> list[HourBucket]:
    """One grouped query; hours without deliveries are zero buckets."""
    first = (now - timedelta(hours=HOURS - 1)).replace(minute=0, second=0, microsecond=0)
    hour = _hour_expression(Delivery.created_at)
    outcome = case(
        (Delivery.status == DeliveryStatus.SUCCEEDED, "delivered"),
        (Delivery.status == DeliveryStatus.FAILED, "failed"),
        else_="other",
    )
    rows = db.session.execute(
        select(hour, outcome, func.count())
        .where(Delivery.endpoint_id == endpoint_id, Delivery.created_at >= first)
        .group_by(hour, outcome)
    ).all()
    buckets = {
        (first + timedelta(hours=i)).strftime("%Y-%m-%d %H"): HourBucket(first + timedelta(hours=i))
        for i in range(HOURS)
    }
    for key, kind, count in rows:
        bucket = buckets.get(key)
        if bucket is not None:
            setattr(bucket, kind, getattr(bucket, kind) + count)
    return list(buckets.values())


def percentiles(endpoint_id: int, since: datetime) -> tuple[int | None, int | None]:
    """p50 and p95 of attempt durations (attempts that got a response)."""
    durations = list(
        db.session.scalars(
            select(Attempt.duration_ms)
            .where(
                Attempt.endpoint_id == endpoint_id,
                Attempt.started_at >= since,
                Attempt.response_status.is_not(None),
            )
            .order_by(Attempt.duration_ms)
            .limit(100_000)
        )
    )
    if not durations:
        return None, None

    def pick(q: float) -> int:
        return durations[min(len(durations) - 1, int(q * len(durations)))]

    return pick(0.50), pick(0.95)


def chart_bars(hours: list[HourBucket]) -> list[Bar]:
    """Stacked bars (delivered at the bottom, failed on top) scaled to the busiest hour."""
    peak = max((h.total for h in hours), default=0) or 1
    width = CHART_WIDTH / len(hours)
    bars = []
    for i, h in enumerate(hours):
        y = float(CHART_HEIGHT)
        segments = []
        for css, count in (("bar-ok", h.delivered), ("bar-fail", h.failed), ("bar-other", h.other)):
            height = CHART_HEIGHT * count / peak
            if height:
                y -= height
                segments.append((css, round(y, 1), round(height, 1)))
        title = f"{h.start:%H}:00 UTC: {h.delivered} delivered, {h.failed} failed, {h.other} other"
        bars.append(
            Bar(round(i * width + BAR_GAP / 2, 1), round(width - BAR_GAP, 1), segments, title)
        )
    return bars


def endpoint_stats(endpoint_id: int) -> EndpointStats:
    now = utcnow()
    hours = hourly_outcomes(endpoint_id, now)
    p50, p95 = percentiles(endpoint_id, now - timedelta(hours=HOURS))
    return EndpointStats(hours, p50, p95, chart_bars(hours))
