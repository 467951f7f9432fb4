"""What each attempt says about its endpoint: last result, failure streak, 410 and auto-disable."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update

from ..clock import utcnow
from ..extensions import db
from ..models import DISABLED_AUTO, DISABLED_GONE, AuditEntry, Endpoint
from ..models.endpoint import HEALTH_ONLY
from . import operational_events

log = logging.getLogger(__name__)
SYSTEM_ACTOR = "system"


def needs_health_write(
    endpoint, started_at: datetime, status_code: int | None, succeeded: bool
) -> bool:
    """A success on a healthy endpoint whose last attempt was the same status less than a
    second ago changes nothing worth a write (a hot row every attempt would lock).

    `endpoint`: an Endpoint or its health (delivery.health_writes.EndpointHealth)."""
    if not succeeded or endpoint.consecutive_failures or endpoint.failing_since:
        return True
    last_at, last_status = endpoint.last_attempt_at, endpoint.last_attempt_status
    return (
        last_at is None
        or last_status != status_code
        or (started_at - last_at).total_seconds() >= 1.0
    )


_endpoints = Endpoint.__table__
# The health statements are built once and executed with parameters: building an UPDATE
# and its cache key per write was a third of a worker's GIL samples in scenario 2
# (bench/findings.md, session 12). HEALTH_ONLY's columns keep their values (no configuration
# change, so no worker re-reads the endpoint).
_LAST_ATTEMPT = {
    "last_attempt_at": bindparam("started_at"),
    "last_attempt_status": bindparam("status_code"),
    "last_attempt_error": bindparam("error_class"),
    **{name: _endpoints.c[name] for name in HEALTH_ONLY},
}
_SUCCESS = (
    update(_endpoints)
    .where(_endpoints.c.id == bindparam("endpoint_id"))
    .values(**_LAST_ATTEMPT, failing_since=None, consecutive_failures=0)
)
_FAILURE = (
    update(_endpoints)
    .where(_endpoints.c.id == bindparam("endpoint_id"))
    .values(
        **_LAST_ATTEMPT,
        failing_since=func.coalesce(_endpoints.c.failing_since, bindparam("started_at")),
        consecutive_failures=_endpoints.c.consecutive_failures + 1,
    )
)


def health_result(
    endpoint_id: int, started_at: datetime, status_code: int | None, error_class: str | None
) -> dict:
    """One attempt's result as the parameters of the health statements."""
    return {
        "endpoint_id": endpoint_id,
        "started_at": started_at,
        "status_code": status_code,
        "error_class": error_class,
    }


def record_endpoint_result(
    endpoint_id: int,
    started_at: datetime,
    status_code: int | None,
    error_class: str | None,
    succeeded: bool,
) -> None:
    """Update the endpoint's last attempt and failure streak in one statement.

    Not a configuration change (models.endpoint.HEALTH_ONLY): workers keep their cached
    configuration; the attempt writer reads health from the row instead
    (`current_health`)."""
    statement = _SUCCESS if succeeded else _FAILURE
    result = health_result(endpoint_id, started_at, status_code, error_class)
    db.session.connection().execute(statement, result)


_HEALTH_OF = select(
    _endpoints.c.id,
    _endpoints.c.consecutive_failures,
    _endpoints.c.failing_since,
    _endpoints.c.last_attempt_at,
    _endpoints.c.last_attempt_status,
).where(_endpoints.c.id.in_(bindparam("ids", expanding=True)))


def current_health(endpoint_ids) -> dict:
    """endpoint id -> its row's health (consecutive_failures, failing_since,
    last_attempt_at, last_attempt_status, by name) as it is now, in this transaction: one
    statement."""
    if not endpoint_ids:
        return {}
    rows = db.session.connection().execute(_HEALTH_OF, {"ids": sorted(endpoint_ids)})
    return {row.id: row for row in rows}


def record_endpoint_successes(results: list[dict]) -> None:
    """Several endpoints' successes (`health_result`s, in endpoint id order: two writers
    lock the rows in the same order) in one executemany."""
    if results:
        db.session.connection().execute(_SUCCESS, results)


def disable_endpoint_by_system(endpoint_id: int, reason: str, note: str) -> bool:
    """Disable an enabled endpoint (410 Gone or auto-disable) and audit it; False if it
    was already disabled."""
    now = utcnow()
    result = db.session.execute(
        update(Endpoint)
        .where(Endpoint.id == endpoint_id, Endpoint.enabled.is_(True))
        .values(
            enabled=False,
            disabled_reason=reason,
            disabled_note=note,
            disabled_by=SYSTEM_ACTOR,
            disabled_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    db.session.add(
        AuditEntry(
            at=now,
            actor=SYSTEM_ACTOR,
            action="endpoint.disable",
            target_type="endpoint",
            target_id=str(endpoint_id),
            before={"enabled": True},
            after={"enabled": False, "reason": reason, "note": note},
        )
    )
    log.warning("endpoint disabled endpoint_id=%s reason=%s", endpoint_id, reason)
    operational_events.endpoint_disabled(endpoint_id, reason, note, SYSTEM_ACTOR)
    return True


def disable_if_gone(endpoint_id: int, status_code: int | None) -> None:
    if status_code == 410:
        disable_endpoint_by_system(endpoint_id, DISABLED_GONE, "the receiver answered 410 Gone")


def auto_disable_if_failing_too_long(endpoint_id: int, disable_after_hours: float) -> None:
    """Disable an endpoint that has failed every attempt for longer than the limit."""
    failing_since = db.session.scalar(
        select(Endpoint.failing_since).where(Endpoint.id == endpoint_id)
    )
    if failing_since is None or failing_since > utcnow() - timedelta(hours=disable_after_hours):
        return
    disable_endpoint_by_system(
        endpoint_id,
        DISABLED_AUTO,
        f"every attempt failed for more than {disable_after_hours:g} hours",
    )
