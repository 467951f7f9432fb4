"""One delivery attempt from claim to record: the heart of the sender."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.exc import OperationalError

from ..clock import utcnow
from ..config import Settings
from ..extensions import db
from ..models import Delivery, ErrorClass
from ..services.operational_events import announce_exhausted
from ..services.sensitive import mask_text
from ..write_lock import serialized_writes
from . import certificates, claims, retry_policy
from .claims import Claim, Outcome, claim_deliveries, finish_attempts
from .deadlines import with_deadlines
from .envelope import EnvelopeError, OutboundRequest, build_request
from .health_writes import record_health
from .http_sender import SendResult
from .send_cache import EndpointCache, EndpointSendConfig, EnvelopeCache
from .storable import storable_body, storable_headers, storable_text

log = logging.getLogger(__name__)
STORED_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class AttemptReport:
    delivery_id: int
    attempt_number: int
    status: str  # the delivery's status after the attempt
    retry_at: datetime | None = None  # naive UTC, when retrying


@dataclass(frozen=True)
class ClaimedWork:
    """A claimed delivery with what sending it needs, read in the claim's transaction."""

    claim: Claim
    endpoint: EndpointSendConfig
    body: bytes | None  # None when the envelope cannot be built (`unsendable` says why)
    unsendable: str | None = None
    recorded_body: bytes | None = None  # the body as the attempt stores it (masked)


def claim_committed(delivery_ids: list[int], lease_seconds: float) -> dict[int, Claim]:
    """Claim (committed) those of the deliveries that are waiting, due and whose endpoint is
    enabled: delivery id -> Claim.

    On a pooled connection in autocommit, outside the session: the claim is one conditional
    UPDATE, atomic on its own, so BEGIN and COMMIT would only add two round trips (a third
    of the claim's cost), and the session's transaction bookkeeping around it was ~9 % of a
    worker's CPU."""
    with serialized_writes(), autocommit_connection() as connection:
        return claim_deliveries(connection, delivery_ids, lease_seconds)


def work_for(claim: Claim, endpoints: EndpointCache, envelopes: EnvelopeCache) -> ClaimedWork:
    """What sending a claimed delivery needs: the endpoint (read only when the cached
    snapshot is older than the claim says) and the envelope bytes."""
    try:
        endpoint = endpoints.get(claim.endpoint_id, claim.endpoint_version)
        try:
            envelope = envelopes.get(claim)
            return ClaimedWork(claim, endpoint, envelope.body, recorded_body=envelope.recorded)
        except EnvelopeError as exc:
            return ClaimedWork(claim, endpoint, None, unsendable=str(exc))
    finally:
        if db.session().in_transaction():
            db.session.commit()  # no connection is held while we send


def autocommit_connection():
    """A pooled connection in autocommit (use it in a `with`: closing gives it back)."""
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def endpoint_of(delivery_id: int) -> int | None:
    """The delivery's endpoint: a primary-key read, cheaper than a claim given back."""
    with autocommit_connection() as connection:
        return endpoints_of(connection, [delivery_id]).get(delivery_id)


deliveries = Delivery.__table__
ENDPOINTS_OF = select(deliveries.c.id, deliveries.c.endpoint_id).where(
    deliveries.c.id.in_(bindparam("ids", expanding=True))
)


def endpoints_of(connection, delivery_ids: list[int]) -> dict[int, int]:
    """delivery id -> endpoint id, in one query (the fresh dispatcher reads a whole batch);
    a delivery without a row is left out."""
    return dict(connection.execute(ENDPOINTS_OF, {"ids": delivery_ids}).all())


@dataclass(frozen=True)
class FinishedAttempt:
    """An attempt that got its answer (or its error) and is waiting to be recorded."""

    work: ClaimedWork
    row: dict  # the attempt row
    outcome: Outcome
    started_at: datetime


def send_claimed(work: ClaimedWork, sender, settings: Settings) -> FinishedAttempt:
    """Sign and send a claimed delivery; decide what its answer means. No transaction is
    open while we wait on the network."""
    claim, endpoint = work.claim, work.endpoint
    started_at = utcnow()
    if work.body is None:
        # Recorded and failed at once (ErrorClass.ENVELOPE is not retried): an exception
        # here would leave the lease to expire and the delivery to loop as interrupted.
        request = OutboundRequest(b"", {})
        result = SendResult(None, error_class=ErrorClass.ENVELOPE, error_message=work.unsendable)
    else:
        # Never longer than half the lease (Settings.longest_attempt): a lease must not
        # expire under an attempt still waiting for its answer.
        timeout = min(
            endpoint.timeout_seconds or settings.delivery_timeout, settings.longest_attempt
        )
        request = build_request(
            claim.event_id,
            work.body,
            endpoint.signing_secrets(),
            endpoint.custom_headers,
            int(time.time()),
            recorded_body=work.recorded_body,
        )
        result = sender.post(endpoint.url, request.body, request.headers, timeout=timeout)
        certificates.note(endpoint.id, certificates.take_handshake(endpoint.url))
    # What the answer (or the error) means for the delivery: the one decision (retry_policy).
    outcome = retry_policy.decide(
        settings.retry_schedule,
        claim.attempt_number,
        started_at,
        succeeded=result.succeeded,
        status_code=result.status_code,
        error_class=result.error_class,
        retry_after=result.headers.get("retry-after"),
    )
    # The attempt as stored (claims.attempt_row): what the receiver sent made storable.
    row = claims.attempt_row(
        delivery_id=claim.delivery_id,
        endpoint_id=endpoint.id,
        number=claim.attempt_number,
        trigger=claim.trigger,
        started_at=started_at,
        duration_ms=result.duration_ms,
        request_url=endpoint.url,
        request_headers=request.recorded_headers(),
        request_body=storable_body(request.recorded_body, STORED_BODY_LIMIT),
        response_status=result.status_code,
        response_headers=storable_headers(result.headers) if result.headers else None,
        # No schema describes a receiver's answer: card-like numbers and emails are masked.
        response_body=mask_text(storable_body(result.body, STORED_BODY_LIMIT))
        if result.body is not None
        else None,
        error_class=result.error_class,
        error_message=storable_text(result.error_message) if result.error_message else None,
        succeeded=result.succeeded,
    )
    return FinishedAttempt(work, row, outcome, started_at)


def record_attempts(finished: list[FinishedAttempt], settings: Settings) -> list[AttemptReport]:
    """Record attempts, their outcomes and what they say of their endpoints in one
    transaction (one commit for the batch); returns a report for each one whose lease held.

    One row the database refuses must not take the others with it (their receivers would
    get the event again when the leases expired): a batch that fails is written again row
    by row, and a row that fails alone is written without what the receiver sent."""
    try:
        return _record_together(finished, settings)
    except OperationalError:
        raise  # the database is away: row by row would fail the same way
    except Exception as exc:
        db.session.rollback()
        log.warning(
            "recording %d attempt(s) together failed (%s); recording each alone",
            len(finished),
            type(exc).__name__,
        )
    reports = []
    for item in finished:
        try:
            reports += _record_together([item], settings)
        except OperationalError:
            raise
        except Exception as exc:
            db.session.rollback()
            log.warning(
                "attempt delivery_id=%s number=%s refused by the database (%s); "
                "recorded without its response",
                item.work.claim.delivery_id,
                item.work.claim.attempt_number,
                type(exc).__name__,
            )
            reports += _record_together([_without_response(item, exc)], settings)
    return reports


def _record_together(finished: list[FinishedAttempt], settings: Settings) -> list[AttemptReport]:
    with serialized_writes():
        finished = with_deadlines(db.session.connection(), finished)  # per-type deadlines
        recorded = finish_attempts([(f.work.claim, f.row, f.outcome) for f in finished])
        kept = [item for item, ok in zip(finished, recorded, strict=True) if ok]
        record_health(kept, settings)
        announce_exhausted(kept)  # operational events
        certificates.write_pending(db.session.connection())  # new TLS certificates seen
        db.session.commit()
    return [_report(item) for item in kept]


def _without_response(item: FinishedAttempt, exc: Exception) -> FinishedAttempt:
    """The attempt with only what we made ourselves: the try, its outcome and why the rest
    is missing. The outcome stands (a 2xx is still a success)."""
    row = item.row | {
        "request_headers": {},
        "request_body": "",
        "response_headers": None,
        "response_body": None,
        "error_message": f"the database refused this attempt's record ({type(exc).__name__}); "
        "it was stored without the request and response",
    }
    return FinishedAttempt(item.work, row, item.outcome, item.started_at)


def _report(item: FinishedAttempt) -> AttemptReport:
    claim, row, outcome = item.work.claim, item.row, item.outcome
    log.info(
        "attempt delivery_id=%s event_id=%s endpoint_id=%s number=%s status=%s error=%s -> %s",
        claim.delivery_id,
        claim.event_id,
        claim.endpoint_id,
        claim.attempt_number,
        row["response_status"],
        row["error_class"],
        outcome.status,
    )
    return AttemptReport(
        claim.delivery_id, claim.attempt_number, outcome.status, outcome.next_attempt_at
    )
