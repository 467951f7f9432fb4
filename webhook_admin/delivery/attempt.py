"""One delivery attempt from claim to record: the heart of the sender."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from ..clock import utcnow
from ..config import Settings
from ..extensions import db
from ..models import Delivery, DeliveryStatus, ErrorClass
from ..services.delivery_state import Claim, Outcome, claim_deliveries, finish_attempts
from ..write_lock import serialized_writes
from .envelope import build_request
from .health_writes import RecentSuccessWrites, record_health
from .retry_policy import RETRY_AFTER_STATUSES, next_delay, parse_retry_after
from .send_cache import EndpointCache, EndpointSnapshot, EnvelopeCache

log = logging.getLogger(__name__)
STORED_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class AttemptReport:
    delivery_id: int
    attempt_number: int
    status: str  # the delivery's status after the attempt
    retry_at: datetime | None = None  # naive UTC, when retrying


def decide(settings: Settings, claim: Claim, result, started_at) -> Outcome:
    """Succeeded, retry later (schedule, jitter, Retry-After), or give up."""
    if result.succeeded:
        return Outcome(DeliveryStatus.SUCCEEDED)
    # 410 disables the endpoint; a blocked destination will not become safe by waiting.
    if result.status_code == 410 or result.error_class == ErrorClass.BLOCKED:
        return Outcome(DeliveryStatus.FAILED)
    retry_after = None
    if result.status_code in RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(result.headers.get("retry-after"), started_at)
    delay = next_delay(settings.retry_schedule, claim.attempt_number, retry_after)
    if delay is None:
        return Outcome(DeliveryStatus.FAILED)
    return Outcome(DeliveryStatus.RETRYING, started_at + timedelta(seconds=delay))


def attempt_row(endpoint_id: int, url: str, claim: Claim, request, result, started_at) -> dict:
    body = result.body.decode("utf-8", errors="replace") if result.body is not None else None
    return {
        "delivery_id": claim.delivery_id,
        "endpoint_id": endpoint_id,
        "number": claim.attempt_number,
        "trigger": claim.trigger,
        "started_at": started_at,
        "duration_ms": result.duration_ms,
        "request_url": url,
        "request_headers": request.recorded_headers(),
        "request_body": request.body.decode("utf-8", errors="replace")[:STORED_BODY_LIMIT],
        "response_status": result.status_code,
        "response_headers": result.headers or None,
        "response_body": body[:STORED_BODY_LIMIT] if body is not None else None,
        "error_class": result.error_class,
        "error_message": result.error_message,
        "succeeded": result.succeeded,
    }


@dataclass(frozen=True)
class ClaimedWork:
    """A claimed delivery with what sending it needs, read in the claim's transaction."""

    claim: Claim
    endpoint: EndpointSnapshot
    body: bytes


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
        return ClaimedWork(
            claim, endpoints.get(claim.endpoint_id, claim.endpoint_version), envelopes.get(claim)
        )
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
    timeout = endpoint.timeout_seconds or settings.delivery_timeout
    request = build_request(
        claim.event_id,
        work.body,
        endpoint.signing_secrets(),
        endpoint.custom_headers,
        int(time.time()),
    )
    started_at = utcnow()
    result = sender.post(endpoint.url, request.body, request.headers, timeout=timeout)
    outcome = decide(settings, claim, result, started_at)
    row = attempt_row(endpoint.id, endpoint.url, claim, request, result, started_at)
    return FinishedAttempt(work, row, outcome, started_at)


def record_attempts(
    finished: list[FinishedAttempt], settings: Settings, recent: RecentSuccessWrites
) -> list[AttemptReport]:
    """Record attempts, their outcomes and what they say of their endpoints in one
    transaction (one commit for the batch); returns a report for each one whose lease held."""
    with serialized_writes():
        recorded = finish_attempts([(f.work.claim, f.row, f.outcome) for f in finished])
        kept = [item for item, ok in zip(finished, recorded, strict=True) if ok]
        record_health(kept, settings, recent)
        db.session.commit()
    return [_report(item) for item in kept]


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
