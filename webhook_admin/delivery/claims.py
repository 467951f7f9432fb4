"""The delivery state machine in SQL, the worker's side: claim with a lease, record an
attempt, recover an expired lease, find what is due.

Every transition is one conditional UPDATE, so two workers (or a worker and the sweeper) can
never both win: the WHERE clause is the lock. The operator's transitions (a manual retry,
cancelling an endpoint's deliveries) are in services/delivery_state.py."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, case, cast, func, insert, literal, or_, select, true, update

from ..clock import utcnow
from ..extensions import db
from ..models import Attempt, Delivery, DeliveryStatus, Endpoint, ErrorClass, Event, Trigger
from ..services.delivery_state import endpoint_is_live, status_in
from ..services.sensitive import ERASED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    token: str
    attempt_number: int
    trigger: str
    endpoint_id: int
    event_id: str
    # The endpoint's configuration version (config_version), read by the claim itself.
    # Health writes leave it alone: they would make every worker re-read the endpoint every
    # second.
    endpoint_version: int
    # The event, read by the claim too (what its envelope is built from).
    event_type: str
    event_occurred_at: datetime
    event_data: dict  # sensitive values masked (services/sensitive.py)
    event_sensitive: str | None  # those values, encrypted; None when none; ERASED if purged


deliveries = Delivery.__table__
endpoints = Endpoint.__table__
events = Event.__table__


def _endpoint_column(column):
    """The claimed delivery's endpoint column, in the claim's RETURNING (a rowid lookup on
    SQLite as it is; see `_event_column` for the key that needed a CAST)."""
    return select(column).where(endpoints.c.id == deliveries.c.endpoint_id).scalar_subquery()


def _event_column(column):
    """The claimed delivery's event column, in the claim's RETURNING (a primary-key lookup
    on the server instead of a second round trip).

    The CAST is what makes it a lookup on SQLite: there, a subquery of RETURNING compares a
    bare column of the updated row with events.id as if it had another affinity, and so
    SCANs the whole events table for every claimed delivery (each of the five event columns:
    a claim's cost grew with the history, issue 16). An expression (the CAST) takes the
    primary-key index; on PostgreSQL it is a no-op. tests/delivery/test_hot_plans.py checks
    the plan on both databases."""
    return (
        select(column)
        .where(events.c.id == cast(deliveries.c.event_id, events.c.id.type))
        .scalar_subquery()
    )


# Found by an index on id (a claim's ids: the primary key, ~9 buffers per claimed delivery)
# or on due time (the sweeper), whatever the statistics: services/delivery_state.py.
_ENDPOINT_IS_LIVE = endpoint_is_live(deliveries.c.endpoint_id)

# Waiting, tested on the row a claim found by its id, never used to find rows: `IS true`
# hides the test from PostgreSQL's index matching. Written bare, it let the planner read
# the claim's rows through ix_deliveries_due (partial: only waiting rows, migration 0013),
# which statistics taken when few deliveries waited (a 10M-row table ANALYZEd long ago)
# cost at one row: each claim then read every waiting delivery and kept its own (3,900
# read for 100 claimed; in a backlog, every retrying delivery per claim). Not
# `status.in_(WAITING)`: a literal list becomes an expanding parameter that SQLAlchemy
# re-renders into the SQL on every execution (5 % of a worker's CPU).
_IS_WAITING = or_(*(deliveries.c.status == status for status in DeliveryStatus.WAITING)).is_(true())


def _claim(which):
    """Claim the deliveries `which` selects, if waiting, due and their endpoint enabled.

    Built once as a Core statement (the hot path: no ORM bulk-update machinery). RETURNING
    hands back what the attempt needs without a second round trip: the endpoint's
    config_version (is the worker's cached copy current?) and the event's columns. Not the
    endpoint's health: by the time the attempt is recorded it may be stale, so the attempt
    writer reads it then (delivery/health_writes.py)."""
    return (
        update(deliveries)
        .where(
            which,
            _IS_WAITING,
            or_(
                deliveries.c.next_attempt_at.is_(None),
                deliveries.c.next_attempt_at <= bindparam("now"),
            ),
            _ENDPOINT_IS_LIVE,
        )
        .values(
            status=DeliveryStatus.IN_FLIGHT,
            lease_token=bindparam("token"),
            lease_expires_at=bindparam("lease_expires_at"),
            attempts_count=deliveries.c.attempts_count + 1,
        )
        .returning(
            deliveries.c.id,
            deliveries.c.attempts_count,
            deliveries.c.next_trigger,
            deliveries.c.endpoint_id,
            deliveries.c.event_id,
            _endpoint_column(endpoints.c.config_version),
            _event_column(events.c.type),
            _event_column(events.c.occurred_at),
            _event_column(events.c.data),
            # The token, or ERASED once a purge took it (such an event is never sent again).
            _event_column(
                func.coalesce(
                    events.c.sensitive_encrypted,
                    case((events.c.sensitive_purged_at.is_not(None), literal(ERASED))),
                )
            ),
        )
    )


CLAIM = _claim(deliveries.c.id == bindparam("delivery_id"))
CLAIM_MANY = _claim(deliveries.c.id.in_(bindparam("ids", expanding=True)))


def _claim_params(lease_seconds: float) -> dict:
    now = utcnow()
    return {
        "now": now,
        "token": secrets.token_hex(16),
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
    }


def _claim_of(row, token: str) -> Claim:
    return Claim(row[0], token, *row[1:])  # the statement returns the fields in order


def claim_deliveries(connection, delivery_ids: list[int], lease_seconds: float) -> dict:
    """Take those of the deliveries that are waiting, due and whose endpoint is enabled, in
    one statement on `connection` (in autocommit, so the claims are committed when it
    returns): delivery id -> Claim for those taken. The deliveries of one call share a
    lease token (a lease is the id with its token)."""
    params = _claim_params(lease_seconds)
    if len(delivery_ids) == 1:
        # Without the expanding IN, which is rendered into the SQL on every execution.
        rows = connection.execute(CLAIM, {"delivery_id": delivery_ids[0], **params}).all()
    else:
        rows = connection.execute(CLAIM_MANY, {"ids": delivery_ids, **params}).all()
    return {row[0]: _claim_of(row, params["token"]) for row in rows}


@dataclass
class Outcome:
    """What one attempt amounts to, decided by the caller from the response."""

    status: str  # succeeded, retrying or failed
    next_attempt_at: datetime | None = None


# The end of an attempt, built once. Bind names differ from the column names on purpose
# (SQLAlchemy reserves those for the SET clause).
FINISH = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("f_id"), deliveries.c.lease_token == bindparam("f_token"))
    .values(
        status=bindparam("f_status"),
        lease_token=None,
        lease_expires_at=None,
        next_attempt_at=bindparam("f_next_attempt_at"),
        next_trigger=Trigger.AUTOMATIC,
        last_status_code=bindparam("f_status_code"),
        last_error_class=bindparam("f_error_class"),
        last_attempt_at=bindparam("f_attempt_at"),
        completed_at=bindparam("f_completed_at"),
    )
)
attempts = Attempt.__table__
INSERT_ATTEMPT = insert(attempts)


def attempt_row(
    *,
    delivery_id: int,
    endpoint_id: int,
    number: int,
    trigger: str,
    started_at: datetime,
    duration_ms: int = 0,
    request_url: str = "",
    request_headers: dict | None = None,
    request_body: str = "",
    response_status: int | None = None,
    response_headers: dict | None = None,
    response_body: str | None = None,
    error_class: str | None = None,
    error_message: str | None = None,
    succeeded: bool = False,
) -> dict:
    """An attempt row as INSERT_ATTEMPT writes it, every column named (one executemany needs
    the same keys in every row). The one builder: a try that got an answer
    (attempt.attempt_row fills it from the response) and one its lease outlived
    (record_interrupted)."""
    return {
        "delivery_id": delivery_id,
        "endpoint_id": endpoint_id,
        "number": number,
        "trigger": trigger,
        "started_at": started_at,
        "duration_ms": duration_ms,
        "request_url": request_url,
        "request_headers": {} if request_headers is None else request_headers,
        "request_body": request_body,
        "response_status": response_status,
        "response_headers": response_headers,
        "response_body": response_body,
        "error_class": error_class,
        "error_message": error_message,
        "succeeded": succeeded,
    }


# What a late answer writes over the interrupted row of its try.
_LATE_COLUMNS = (
    "request_url",
    "request_headers",
    "request_body",
    "response_status",
    "response_headers",
    "response_body",
    "error_class",
    "error_message",
    "succeeded",
)


def _finish_params(claim: Claim, attempt_row: dict, outcome: Outcome, now: datetime) -> dict:
    return {
        "f_id": claim.delivery_id,
        "f_token": claim.token,
        "f_status": outcome.status,
        "f_next_attempt_at": outcome.next_attempt_at,
        "f_status_code": attempt_row.get("response_status"),
        "f_error_class": attempt_row.get("error_class"),
        "f_attempt_at": attempt_row["started_at"],
        "f_completed_at": now if outcome.status in DeliveryStatus.FINAL else None,
    }


def finish_attempts(finished: list[tuple[Claim, dict, Outcome]]) -> list[bool]:
    """Write the attempts and move their deliveries on, where our lease still holds: one
    executemany per statement for the whole batch. False for an attempt whose lease was lost
    (it is not ours to record: the sweeper recorded it as interrupted).

    Core statements on the session's connection: the ORM adds nothing here but CPU."""
    connection = db.session.connection()
    now = utcnow()
    params = [_finish_params(claim, row, outcome, now) for claim, row, outcome in finished]
    # A try that did not succeed may follow an acknowledged one recorded late (see
    # SETTLE_ACKNOWLEDGED): those deliveries are checked after the write.
    unsuccessful = [c.delivery_id for c, _, o in finished if o.status != DeliveryStatus.SUCCEEDED]
    if len(params) > 1:
        if connection.execute(FINISH, params).rowcount == len(params):
            connection.execute(INSERT_ATTEMPT, [row for _, row, _ in finished])
            settle_acknowledged(connection, unsuccessful, now)
            return [True] * len(params)
        # Some lease was lost (rare): start again one by one to learn which.
        db.session.rollback()
        connection = db.session.connection()
    recorded = []
    for (claim, row, _), finish in zip(finished, params, strict=True):
        held = connection.execute(FINISH, finish).rowcount == 1
        if held:
            connection.execute(INSERT_ATTEMPT, row)
        else:
            _record_late(connection, claim, row, now)
        recorded.append(held)
    settle_acknowledged(connection, unsuccessful, now)
    return recorded


# The real result of a try the sweeper already recorded as interrupted (same number).
REPLACE_INTERRUPTED = (
    update(attempts)
    .where(
        attempts.c.delivery_id == bindparam("l_delivery_id"),
        attempts.c.number == bindparam("l_number"),
        attempts.c.error_class == ErrorClass.INTERRUPTED,
    )
    .values({name: bindparam(f"l_{name}") for name in ("duration_ms", *_LATE_COLUMNS)})
)
# A delivery with a recorded 2xx is delivered, whatever a later try of it said. A late
# answer (recorded after its lease expired) can land while another try is in flight; that
# try's failure, or its interruption, must not leave a delivery the receiver acknowledged
# as retrying or failed. Run after each non-success (rare), never on the success path.
HAS_RECORDED_SUCCESS = (
    select(attempts.c.id)
    .where(attempts.c.delivery_id == deliveries.c.id, attempts.c.succeeded.is_(True))
    .exists()
)
# What the delivery's row shows as its last result once settled: the acknowledging answer.
LAST_RECORDED_SUCCESS_STATUS = (
    select(attempts.c.response_status)
    .where(attempts.c.delivery_id == deliveries.c.id, attempts.c.succeeded.is_(True))
    .order_by(attempts.c.number.desc())
    .limit(1)
    .scalar_subquery()
)
SETTLE_ACKNOWLEDGED = (
    update(deliveries)
    .where(
        deliveries.c.id.in_(bindparam("a_ids", expanding=True)),
        or_(*(deliveries.c.status == s for s in (DeliveryStatus.RETRYING, DeliveryStatus.FAILED))),
        HAS_RECORDED_SUCCESS,
    )
    .values(
        status=DeliveryStatus.SUCCEEDED,
        next_attempt_at=None,
        next_trigger=Trigger.AUTOMATIC,
        last_status_code=LAST_RECORDED_SUCCESS_STATUS,
        last_error_class=None,
        completed_at=bindparam("a_now"),
    )
)


def settle_acknowledged(connection, delivery_ids: list[int], now: datetime) -> int:
    """Mark succeeded those of these deliveries (retrying or failed) that have a recorded
    2xx; returns how many."""
    if not delivery_ids:
        return 0
    return connection.execute(SETTLE_ACKNOWLEDGED, {"a_ids": delivery_ids, "a_now": now}).rowcount


def _record_late(connection, claim: Claim, row: dict, now: datetime) -> None:
    """Our lease expired before the try's answer was recorded (the worker stalled): the
    sweeper recorded the try as interrupted, and may have sent the delivery again. The
    answer is still the truth about that try: it replaces the interrupted row, and a 2xx
    makes the delivery succeeded (now, or when the try in flight meanwhile finishes), so
    nothing a receiver acknowledged ends as failed."""
    params = {f"l_{name}": row[name] for name in ("duration_ms", *_LATE_COLUMNS)}
    params |= {"l_delivery_id": claim.delivery_id, "l_number": claim.attempt_number, "l_now": now}
    replaced = connection.execute(REPLACE_INTERRUPTED, params).rowcount
    # If another try is in flight now, its finish settles the delivery (finish_attempts).
    succeeded = bool(replaced and row["succeeded"]) and bool(
        settle_acknowledged(connection, [claim.delivery_id], now)
    )
    log.warning(
        "lease lost before the attempt was recorded delivery_id=%s attempt=%s "
        "(interrupted row replaced: %s, delivery marked succeeded: %s)",
        claim.delivery_id,
        claim.attempt_number,
        bool(replaced),
        succeeded,
    )


class ExpiredLease(NamedTuple):
    """An in-flight delivery whose lease ran out: its worker died (or stalled) mid-try."""

    id: int
    endpoint_id: int
    attempts_count: int
    lease_token: str
    next_trigger: str
    lease_expires_at: datetime


def expired_leases(now: datetime, limit: int = 500) -> list[ExpiredLease]:
    return [
        ExpiredLease(*row)
        for row in db.session.execute(
            select(*(deliveries.c[name] for name in ExpiredLease._fields))
            .where(
                status_in(deliveries.c.status, (DeliveryStatus.IN_FLIGHT,)),  # the partial index
                deliveries.c.lease_expires_at < now,
            )
            .limit(limit)
        )
    ]


def record_interrupted(lease: ExpiredLease, outcome: Outcome, now: datetime) -> bool:
    """End the try an expired lease stood for: an `interrupted` attempt row, and the
    delivery moved on as `outcome` says (the same decision as any failed try). False if
    the lease was not the one read (its worker recorded the try after all)."""
    final = outcome.status in DeliveryStatus.FINAL
    result = db.session.execute(
        update(deliveries)
        .where(deliveries.c.id == lease.id, deliveries.c.lease_token == lease.lease_token)
        .values(
            status=outcome.status,
            lease_token=None,
            lease_expires_at=None,
            next_attempt_at=outcome.next_attempt_at,
            next_trigger=Trigger.AUTOMATIC,
            last_status_code=None,
            last_error_class=ErrorClass.INTERRUPTED,
            last_attempt_at=lease.lease_expires_at,
            completed_at=now if final else None,
        )
    )
    if result.rowcount != 1:
        return False
    db.session.execute(
        INSERT_ATTEMPT,
        attempt_row(
            delivery_id=lease.id,
            endpoint_id=lease.endpoint_id,
            number=lease.attempts_count,
            trigger=lease.next_trigger,
            started_at=lease.lease_expires_at,
            error_class=ErrorClass.INTERRUPTED,
            error_message=INTERRUPTED_MESSAGE,
        ),
    )
    # An earlier try's 2xx, recorded late while this one was in flight, still stands.
    settle_acknowledged(db.session.connection(), [lease.id], now)
    log.warning(
        "recovered expired lease delivery_id=%s attempt=%s -> %s",
        lease.id,
        lease.attempts_count,
        outcome.status,
    )
    return True


INTERRUPTED_MESSAGE = (
    "the worker stopped during this attempt (its lease expired); it counts as a failed try"
)


def due_deliveries(older_than: datetime, limit: int) -> list[tuple[int, int]]:
    """(id, attempts made) of waiting deliveries of enabled endpoints due before `older_than`."""
    return [
        tuple(row)
        for row in db.session.execute(
            select(Delivery.id, Delivery.attempts_count)
            .where(
                status_in(Delivery.status, DeliveryStatus.WAITING),  # the partial index
                Delivery.next_attempt_at <= older_than,
                _ENDPOINT_IS_LIVE,
            )
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
        )
    ]
