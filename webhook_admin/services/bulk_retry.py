"""Retries by hand: one delivery now, or every failed delivery of one endpoint over a time
range (count first, then a background job)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ..extensions import db
from ..models import Delivery, DeliveryStatus, Trigger
from .audit import record_audit
from .data_protection import purged_reason
from .delivery_state import request_retry

log = logging.getLogger(__name__)
BATCH_SIZE = 500
# What a person may send again: failed, succeeded (on purpose), a retrying one sooner, or an
# expired one (past its type's deadline: a person decides it is still worth sending).
RETRYABLE = (
    DeliveryStatus.FAILED,
    DeliveryStatus.SUCCEEDED,
    DeliveryStatus.RETRYING,
    DeliveryStatus.EXPIRED,
)


class RetryRefused(ValueError):
    """The delivery cannot be retried now (in flight, pending, cancelled, or its data erased)."""


def retry_delivery(delivery: Delivery, actor: str, remote_addr: str | None = None) -> int:
    """Make one delivery due now (trigger manual) and audit it; returns the attempts made
    before, for the caller to enqueue `(id, attempts)` after its commit."""
    attempts_made = delivery.attempts_count
    was_expired = delivery.status == DeliveryStatus.EXPIRED
    purged = purged_reason(delivery.event_id)
    if purged:
        raise RetryRefused(purged)
    if delivery.status not in RETRYABLE or not request_retry(delivery, trigger=Trigger.MANUAL):
        raise RetryRefused(f"delivery {delivery.id} is {delivery.status}; it cannot be retried now")
    record_audit(
        actor,
        "delivery.retry",
        "delivery",
        delivery.id,
        None,
        {"event_id": delivery.event_id, "endpoint_id": delivery.endpoint_id}
        # Past the deadline: the audit says a person chose to send it anyway.
        | ({"was_expired": True} if was_expired else {}),
        remote_addr=remote_addr,
    )
    return attempts_made


@dataclass(frozen=True)
class RetryScope:
    endpoint_id: int
    since: datetime | None = None
    until: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "endpoint_id": self.endpoint_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }

    @classmethod
    def from_dict(cls, values: dict) -> RetryScope:
        def parse(raw):
            return datetime.fromisoformat(raw) if raw else None

        return cls(
            int(values["endpoint_id"]), parse(values.get("since")), parse(values.get("until"))
        )


def _failed_in_scope(scope: RetryScope):
    conditions = [
        Delivery.endpoint_id == scope.endpoint_id,
        Delivery.status == DeliveryStatus.FAILED,
    ]
    if scope.since:
        conditions.append(Delivery.created_at >= scope.since)
    if scope.until:
        conditions.append(Delivery.created_at < scope.until)
    return conditions


def count_failed(scope: RetryScope) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Delivery).where(*_failed_in_scope(scope))
    )


def record_bulk_retry_request(
    scope: RetryScope, count: int, actor: str, remote_addr: str | None = None
) -> None:
    record_audit(
        actor,
        "delivery.bulk_retry",
        "endpoint",
        scope.endpoint_id,
        None,
        scope.as_dict() | {"failed_count": count},
        remote_addr=remote_addr,
    )


def retry_failed(
    scope: RetryScope, actor: str, enqueue: Callable[[list[tuple[int, int]]], object]
) -> int:
    """Make each failed delivery in scope due now (trigger manual), committing per batch and
    enqueueing after each commit. Returns how many were retried."""
    retried, last_id = 0, None
    while True:
        query = select(Delivery).where(*_failed_in_scope(scope)).order_by(Delivery.id)
        if last_id is not None:
            query = query.where(Delivery.id > last_id)
        batch = list(db.session.scalars(query.limit(BATCH_SIZE)))
        if not batch:
            break
        last_id = batch[-1].id
        # (id, attempts made): the job id the sweeper expects for this delivery's next try.
        refs = [(d.id, d.attempts_count) for d in batch]
        ids = [ref for ref, d in zip(refs, batch, strict=True) if request_retry(d, Trigger.MANUAL)]
        db.session.commit()
        enqueue(ids)
        retried += len(ids)
    record_audit(
        actor,
        "delivery.bulk_retry_done",
        "endpoint",
        scope.endpoint_id,
        None,
        scope.as_dict() | {"retried": retried},
    )
    db.session.commit()
    log.info("bulk retry done endpoint_id=%s retried=%s", scope.endpoint_id, retried)
    return retried
