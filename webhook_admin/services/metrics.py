"""Operational figures: what /metrics exports, the System page shows and /readyz checks.

The database figures are a handful of GROUP BY queries over indexed columns; the Redis
figures are LLEN / ZCARD calls. Each source is read on its own, so a Redis outage still
leaves the database figures (and the other way round) with `*_up 0` to say what is missing."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import current_app
from redis.exceptions import RedisError
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import case, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from ..clock import utcnow
from ..extensions import db
from ..models import Attempt, Delivery, DeliveryStatus, Endpoint, ErrorClass
from ..queues import QUEUE_KINDS, RETRY, get_redis, queue_name
from ..worker_presence import last_run_key, list_workers
from .delivery_state import endpoint_is_live, status_in

log = logging.getLogger(__name__)
# Attempt latency buckets, seconds (the delivery timeout defaults to 15 s).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)


@dataclass
class DatabaseFigures:
    up: bool = False
    deliveries: dict[str, int] = field(default_factory=dict)
    attempts_24h: dict[tuple[str, str], int] = field(default_factory=dict)  # (outcome, class)
    latency_buckets: list[tuple[float, int]] = field(default_factory=list)  # cumulative
    latency_count: int = 0
    latency_sum_seconds: float = 0.0
    oldest_due_seconds: float = 0.0
    disabled_endpoints: dict[str, int] = field(default_factory=dict)


@dataclass
class RedisFigures:
    up: bool = False
    queues: dict[str, int] = field(default_factory=dict)  # by kind (deliveries, retries...)
    scheduled: int = 0
    failed_jobs: dict[str, int] = field(default_factory=dict)
    workers: list[dict] = field(default_factory=list)
    sweeper_last_run: float | None = None  # unix time


def read_database_figures() -> DatabaseFigures:
    figures = DatabaseFigures()
    try:
        figures.deliveries = deliveries_by_status()
        figures.attempts_24h = attempts_by_outcome()
        latency_histogram(figures)
        figures.oldest_due_seconds = oldest_due_seconds()
        figures.disabled_endpoints = disabled_endpoints()
        figures.up = True
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("metrics: database unavailable: %s", type(exc).__name__)
    return figures


def deliveries_by_status() -> dict[str, int]:
    counts = dict.fromkeys(DeliveryStatus.ALL, 0)
    rows = db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    counts.update({status: n for status, n in rows})
    return counts


def attempts_by_outcome(hours: int = 24) -> dict[tuple[str, str], int]:
    since = utcnow() - timedelta(hours=hours)
    rows = db.session.execute(
        select(Attempt.succeeded, Attempt.error_class, func.count())
        .where(Attempt.started_at >= since)
        .group_by(Attempt.succeeded, Attempt.error_class)
    )
    return {
        ("success" if ok else "failure", error_class or "none"): n for ok, error_class, n in rows
    }


def latency_histogram(figures: DatabaseFigures, minutes: int = 60) -> None:
    """Cumulative buckets of attempt durations over the last hour, in one scan."""
    since = utcnow() - timedelta(minutes=minutes)
    bucket_columns = [
        func.sum(case((Attempt.duration_ms <= int(le * 1000), 1), else_=0))
        for le in LATENCY_BUCKETS
    ]
    row = db.session.execute(
        select(func.count(), func.sum(Attempt.duration_ms), *bucket_columns).where(
            Attempt.started_at >= since,
            # An interrupted attempt has no duration of its own: it would skew the low buckets.
            func.coalesce(Attempt.error_class, "") != ErrorClass.INTERRUPTED,
        )
    ).one()
    figures.latency_count = int(row[0] or 0)
    figures.latency_sum_seconds = (row[1] or 0) / 1000
    figures.latency_buckets = [
        (le, int(n or 0)) for le, n in zip(LATENCY_BUCKETS, row[2:], strict=True)
    ]


def oldest_due_seconds() -> float:
    """How long the longest-waiting due delivery of an enabled endpoint has waited."""
    now = utcnow()
    oldest = db.session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            status_in(Delivery.status, DeliveryStatus.WAITING),  # the partial index
            Delivery.next_attempt_at <= now,
            endpoint_is_live(Delivery.endpoint_id),
        )
    )
    return max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0


def disabled_endpoints() -> dict[str, int]:
    rows = db.session.execute(
        select(Endpoint.disabled_reason, func.count())
        .where(Endpoint.enabled.is_(False), Endpoint.deleted_at.is_(None))
        .group_by(Endpoint.disabled_reason)
    )
    counts = {"manual": 0, "gone": 0, "auto": 0}
    counts.update({reason or "unknown": n for reason, n in rows})
    return counts


def read_redis_figures() -> RedisFigures:
    figures = RedisFigures()
    try:
        redis = get_redis()
        # This deployment's queues only (another may share the Redis), labelled by kind.
        names = [queue_name(kind) for kind in QUEUE_KINDS]
        with redis.pipeline() as pipe:
            for name in names:
                pipe.llen(Queue(name, connection=redis).key)
            for name in names:
                pipe.zcard(FailedJobRegistry(name, connection=redis).key)
            pipe.zcard(ScheduledJobRegistry(queue_name(RETRY), connection=redis).key)
            pipe.get(last_run_key())
            values = pipe.execute()
        figures.queues = dict(zip(QUEUE_KINDS, values[:3], strict=True))
        figures.failed_jobs = dict(zip(QUEUE_KINDS, values[3:6], strict=True))
        figures.scheduled = values[6]
        figures.sweeper_last_run = float(values[7]) if values[7] else None
        figures.workers = list_workers(redis)
        figures.up = True
    except RedisError as exc:
        log.warning("metrics: Redis unavailable: %s", exc)
    return figures


def readiness() -> tuple[bool, dict[str, dict]]:
    """Database reachable, migrations at head, Redis reachable. Errors name only a class:
    the probe is public and must not leak hosts or credentials."""
    checks: dict[str, dict] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
        current = db.session.scalar(text("SELECT version_num FROM alembic_version"))
        checks["migrations"] = migration_check(current)
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("readiness: database check failed: %s", exc)
        checks.setdefault("database", {"ok": False, "error": type(exc).__name__})
        checks.setdefault("migrations", {"ok": False, "error": "database unavailable"})
    finally:
        db.session.remove()
    try:
        get_redis().ping()
        checks["redis"] = {"ok": True}
    except RedisError as exc:
        log.warning("readiness: Redis check failed: %s", exc)
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
    return all(c["ok"] for c in checks.values()), checks


_revisions_cache: dict[str, tuple[str | None, frozenset[str]]] = {}


def migration_revisions() -> tuple[str | None, frozenset[str]]:
    """The newest revision in migrations/ and every revision there (read once per process)."""
    directory = current_app.extensions["migrate"].directory
    if directory not in _revisions_cache:
        config = Config()
        config.set_main_option("script_location", directory)
        script = ScriptDirectory.from_config(config)
        known = frozenset(r.revision for r in script.walk_revisions())
        _revisions_cache[directory] = (script.get_current_head(), known)
    return _revisions_cache[directory]


def migration_check(current: str | None) -> dict:
    """At our head: ready. Behind it (a revision of ours before the head, or none): not
    ready, this code needs columns the database lacks. A revision this code does not know
    was written by newer code, and is ready: migrations only add what old code can ignore
    (docs/deployment.md), and a rolling deploy migrates before it replaces the old nodes;
    were they unready then, the load balancer would take every old web node out at once."""
    head, known = migration_revisions()
    if current == head:
        return {"ok": True, "current": current, "head": head}
    if current is None or current in known:
        return {"ok": False, "current": current, "head": head}
    return {"ok": True, "current": current, "head": head, "ahead": True}


def sweeper_age(figures: RedisFigures) -> float | None:
    return None if figures.sweeper_last_run is None else time.time() - figures.sweeper_last_run


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    parts = []
    for key, value in labels.items():
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{key}="{escaped}"')
    return "{" + ",".join(parts) + "}"


class Exposition:
    """Prometheus text format 0.0.4, one family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, help_text: str, samples, kind: str = "gauge") -> None:
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(**labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def render_prometheus(dbf: DatabaseFigures, rf: RedisFigures) -> str:
    out = Exposition()
    out.family(
        "webhook_database_up", "1 if the database answered this scrape.", [({}, int(dbf.up))]
    )
    out.family("webhook_redis_up", "1 if Redis answered this scrape.", [({}, int(rf.up))])
    if dbf.up:
        out.family(
            "webhook_deliveries",
            "Deliveries by current status.",
            [({"status": s}, n) for s, n in sorted(dbf.deliveries.items())],
        )
        out.family(
            "webhook_attempts_last_24h",
            "HTTP attempts started in the last 24 hours by outcome and error class.",
            [
                ({"outcome": o, "error_class": c}, n)
                for (o, c), n in sorted(dbf.attempts_24h.items())
            ],
        )
        buckets = [({"le": f"{le:g}"}, n) for le, n in dbf.latency_buckets]
        buckets.append(({"le": "+Inf"}, dbf.latency_count))
        name = "webhook_attempt_duration_last_hour_seconds"
        out.family(
            name + "_bucket", "Attempts of the last hour at most `le` seconds long.", buckets
        )
        out.family(
            name + "_sum",
            "Total duration of the last hour's attempts.",
            [({}, dbf.latency_sum_seconds)],
        )
        out.family(name + "_count", "Attempts of the last hour.", [({}, dbf.latency_count)])
        out.family(
            "webhook_oldest_due_delivery_age_seconds",
            "How long the longest-waiting due delivery (enabled endpoint) has waited.",
            [({}, dbf.oldest_due_seconds)],
        )
        out.family(
            "webhook_endpoints_disabled",
            "Disabled endpoints by reason (manual, gone = 410, auto = failing too long).",
            [({"reason": r}, n) for r, n in sorted(dbf.disabled_endpoints.items())],
        )
    if rf.up:
        out.family(
            "webhook_queue_depth",
            "Jobs waiting in each RQ queue.",
            [({"queue": q}, n) for q, n in rf.queues.items()],
        )
        out.family(
            "webhook_scheduled_retries",
            "Retries waiting in RQ's scheduled registry for their time.",
            [({}, rf.scheduled)],
        )
        out.family(
            "webhook_failed_jobs",
            "RQ jobs that raised (not failed deliveries: see webhook_deliveries).",
            [({"queue": q}, n) for q, n in rf.failed_jobs.items()],
        )
        out.family(
            "webhook_workers_alive",
            "Worker processes with a live heartbeat.",
            [({}, len(rf.workers))],
        )
        out.family(
            "webhook_worker_deliveries_in_flight",
            "Deliveries being sent right now, over all workers.",
            [({}, sum(len(w["in_flight"]) for w in rf.workers))],
        )
        age = sweeper_age(rf)
        if age is not None:
            out.family(
                "webhook_sweeper_last_run_age_seconds",
                "Seconds since a sweeper pass last finished.",
                [({}, age)],
            )
    return out.text()
