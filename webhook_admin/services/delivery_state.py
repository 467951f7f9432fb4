"""The delivery state machine in SQL, the operator's side: a manual retry, cancelling or
listing what an endpoint has waiting. The worker's side (claim, finish, lease recovery) is
the delivery wing's: delivery/claims.py.

Every transition is one conditional UPDATE: the WHERE clause is the lock."""

from __future__ import annotations

from sqlalchemy import and_, exists, literal_column, select, update

from ..clock import utcnow
from ..extensions import db
from ..models import Delivery, DeliveryStatus, Endpoint, Event, Trigger

events = Event.__table__


def status_in(status_column, statuses: tuple[str, ...]):
    """`status IN (...)` with the statuses written into the SQL, not bound: the statements
    that read a partial index of PostgreSQL's (ix_deliveries_due, ix_deliveries_lease,
    migration 0013). psycopg prepares a statement run five times on a connection, and the
    generic plan PostgreSQL may then keep knows no parameter's value, so it could not prove
    that the statement's rows are the index's and would read another index instead. The
    statuses are our constants (DeliveryStatus), never input."""
    return status_column.in_([literal_column(f"'{status}'") for status in statuses])


def endpoint_is_live(endpoint_id):
    """The delivery's endpoint (`endpoint_id`: its column in the statement) is enabled and not
    deleted, asked of that endpoint's row by its key for each delivery the statement finds.

    Not `endpoint_id IN (SELECT the live endpoints)`: PostgreSQL, without statistics (a new
    install, or a table grown since autovacuum's last ANALYZE), made that a join driven from
    the live endpoints, which read every delivery of each one through
    ix_deliveries_endpoint_status_id and kept the few it wanted. The worker's claim read 1,504
    buffers for 13 deliveries of a 4,000-row table (scenario 2 spent half of PostgreSQL's CPU
    there, issue 16), and the sweeper's due query read every delivery of every live endpoint
    each sweep. A scalar subquery is never turned into a join, whatever the statistics."""
    return (
        select(and_(Endpoint.enabled.is_(True), Endpoint.deleted_at.is_(None)))
        .where(Endpoint.id == endpoint_id)
        .scalar_subquery()
        .is_(True)
    )


def request_retry(delivery: Delivery, trigger: str = Trigger.MANUAL) -> bool:
    """Make a delivery due now for one more attempt (failed, succeeded on purpose, or a
    retrying one sooner). False if it is in flight or cancelled, or its event's sensitive
    values were erased after delivery (services/data_protection.py)."""
    if delivery.status in (DeliveryStatus.IN_FLIGHT, DeliveryStatus.CANCELLED):
        return False
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery.id,
            Delivery.status.notin_((DeliveryStatus.IN_FLIGHT, DeliveryStatus.CANCELLED)),
            ~exists().where(
                events.c.id == Delivery.event_id, events.c.sensitive_purged_at.is_not(None)
            ),
        )
        .values(
            status=DeliveryStatus.RETRYING,
            next_attempt_at=utcnow(),
            next_trigger=trigger,
            completed_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.expire(delivery)
    return result.rowcount == 1


def cancel_waiting_deliveries(endpoint_id: int) -> int:
    """Cancel what an endpoint still had waiting (it is being deleted)."""
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.endpoint_id == endpoint_id,
            Delivery.status.in_(DeliveryStatus.WAITING),
        )
        .values(status=DeliveryStatus.CANCELLED, completed_at=utcnow(), next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def held_deliveries(endpoint_id: int) -> list[tuple[int, int]]:
    """(id, attempts made) of deliveries waiting for an endpoint (sent when enabled again)."""
    return [
        tuple(row)
        for row in db.session.execute(
            select(Delivery.id, Delivery.attempts_count).where(
                Delivery.endpoint_id == endpoint_id,
                Delivery.status.in_(DeliveryStatus.WAITING),
            )
        )
    ]
