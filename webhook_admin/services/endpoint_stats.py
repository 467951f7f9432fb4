"""An endpoint's last 24 hours: deliveries per hour by outcome, response-time percentiles,
and the geometry of the bar chart the page draws as server-side SVG."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from ..clock import utcnow
from ..extensions import db
from ..models import Attempt, Delivery, DeliveryStatus
from .queries import id_floor

HOURS = 24
# The SVG's user units (it scales to the card's width): bars in the plot, the y-scale on the
# left, hour labels below, the p95 scale on the right.
CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 1200, 200, 3
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 44, 1150, 10, 176


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
    start: datetime | None = None
    label: str = ""  # the hour under the bar, every third hour


@dataclass
class Scale:
    """The chart's axes: y ticks for deliveries (left) and the p95 line (right)."""

    ticks: list[tuple[float, str]]  # (y, label)
    p95_points: str = ""  # SVG polyline points, hours with attempts only
    p95_ticks: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class EndpointStats:
    hours: list[HourBucket]
    p50_ms: int | None
    p95_ms: int | None
    bars: list[Bar] = field(default_factory=list)
    scale: Scale | None = None

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
    """One grouped query over the endpoint's last 24 hours only: by
    ix_deliveries_endpoint_status_id from the id floor of the first hour (the endpoint's older deliveries, maybe millions, are
    not read); hours without deliveries are zero buckets."""
    first = (now - timedelta(hours=HOURS - 1)).replace(minute=0, second=0, microsecond=0)
    hour = _hour_expression(Delivery.created_at)
    outcome = case(
        (Delivery.status == DeliveryStatus.SUCCEEDED, "delivered"),
        (Delivery.status == DeliveryStatus.FAILED, "failed"),
        else_="other",
    )
    floor = id_floor(first)
    rows = []
    if floor is not None:
        rows = db.session.execute(
            select(hour, outcome, func.count())
            .where(
                Delivery.endpoint_id == endpoint_id,
                # Every status, named: the (endpoint_id, status, id) index then takes each
                # status's ids from the floor (one descent each) and holds created_at, so
                # PostgreSQL answers from the index alone (3,300 heap rows a view at 10M).
                Delivery.status.in_(DeliveryStatus.ALL),
                Delivery.id >= floor,
                Delivery.created_at >= first,
            )
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


def _pick(durations: list[int], q: float) -> int:
    return durations[min(len(durations) - 1, int(q * len(durations)))]


def attempt_durations(endpoint_id: int, since: datetime) -> list[tuple[datetime, int]]:
    """(start, duration) of the attempts that got a response, shortest first."""
    return [
        tuple(row)
        for row in db.session.execute(
            select(Attempt.started_at, Attempt.duration_ms)
            .where(
                Attempt.endpoint_id == endpoint_id,
                Attempt.started_at >= since,
                Attempt.response_status.is_not(None),
            )
            .order_by(Attempt.duration_ms)
            .limit(100_000)
        )
    ]


def percentiles(endpoint_id: int, since: datetime) -> tuple[int | None, int | None]:
    """p50 and p95 of attempt durations (attempts that got a response)."""
    durations = [d for _, d in attempt_durations(endpoint_id, since)]
    if not durations:
        return None, None
    return _pick(durations, 0.50), _pick(durations, 0.95)


def hourly_p95(timed: list[tuple[datetime, int]], hours: list[HourBucket]) -> list[int | None]:
    """The p95 duration of each hour's attempts (None for an hour without any)."""
    by_hour: dict[datetime, list[int]] = {h.start: [] for h in hours}
    for started, duration in timed:  # already sorted by duration
        key = started.replace(minute=0, second=0, microsecond=0)
        if key in by_hour:
            by_hour[key].append(duration)
    return [_pick(by_hour[h.start], 0.95) if by_hour[h.start] else None for h in hours]


def _nice(value: int) -> int:
    """A round number at or above value for the top of a scale (1, 2, 5 times 10^n)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def chart_scale(hours: list[HourBucket], p95s: list[int | None], bars: list[Bar]) -> Scale:
    height = PLOT_BOTTOM - PLOT_TOP
    top = _nice(max((h.total for h in hours), default=0) or 1)
    ticks = [(round(PLOT_BOTTOM - height * v / top, 1), str(v)) for v in (0, top // 2, top)]
    known = [p for p in p95s if p is not None]
    if not known:
        return Scale(ticks)
    p95_top = _nice(max(known) or 1)
    points = " ".join(
        f"{bar.x + bar.width / 2:.1f},{PLOT_BOTTOM - height * p / p95_top:.1f}"
        for bar, p in zip(bars, p95s, strict=True)
        if p is not None
    )
    p95_ticks = [(round(PLOT_BOTTOM - height * v / p95_top, 1), f"{v} ms") for v in (0, p95_top)]
    return Scale(ticks, points, p95_ticks)


def chart_bars(hours: list[HourBucket]) -> list[Bar]:
    """Stacked bars (delivered at the bottom, failed on top) scaled to the y-scale's top."""
    peak = _nice(max((h.total for h in hours), default=0) or 1)
    plot = PLOT_BOTTOM - PLOT_TOP
    width = (PLOT_RIGHT - PLOT_LEFT) / len(hours)
    bars = []
    for i, h in enumerate(hours):
        y = float(PLOT_BOTTOM)
        segments = []
        for css, count in (("bar-ok", h.delivered), ("bar-fail", h.failed), ("bar-other", h.other)):
            height = plot * count / peak
            if height:
                y -= height
                segments.append((css, round(y, 1), round(height, 1)))
        title = f"{h.start:%H}:00 UTC: {h.delivered} delivered, {h.failed} failed, {h.other} other"
        x = round(PLOT_LEFT + i * width + BAR_GAP / 2, 1)
        label = f"{h.start:%H}:00" if i % 3 == 0 else ""
        bars.append(Bar(x, round(width - BAR_GAP, 1), segments, title, h.start, label))
    return bars


def endpoint_stats(endpoint_id: int) -> EndpointStats:
    now = utcnow()
    hours = hourly_outcomes(endpoint_id, now)
    timed = attempt_durations(endpoint_id, now - timedelta(hours=HOURS))
    durations = [d for _, d in timed]
    p50 = _pick(durations, 0.50) if durations else None
    p95 = _pick(durations, 0.95) if durations else None
    bars = chart_bars(hours)
    return EndpointStats(hours, p50, p95, bars, chart_scale(hours, hourly_p95(timed, hours), bars))
