"""Retention: delete finished deliveries, their attempts and their events after the period.

Batched deletes, one short transaction each (see docs/decisions.md, issue 16: measured against
dropping partitions), run until nothing is due: a backlog of millions finishes in one call
instead of 100,000 rows an hour. Deliveries in progress are never blocked for long and never
purged:
- only finished deliveries go (succeeded, failed, cancelled, expired), whose creation and
  completion are both older than the cutoff (a delivery retried by hand yesterday stays);
- on PostgreSQL each batch locks its rows first (`FOR UPDATE SKIP LOCKED`): a manual retry that
  got there first is skipped, one that comes after waits for the batch's commit and finds the
  row gone;
- on SQLite the conditions are checked again inside the write transaction (one writer at a
  time), and each batch takes the process's write lock like any other write (write_lock.py).
Order per batch: attempts, then deliveries, then the events those deliveries leave without
any delivery; afterwards, old events that never had one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select

from ..clock import utcnow
from ..extensions import db
from ..models import Attempt, Delivery, DeliveryStatus, Event
from ..sqlite_pragmas import BUSY_TIMEOUT_MS
from ..write_lock import serialized_writes

log = logging.getLogger(__name__)

# Rows per transaction. Measured on an attempts-shaped table of 1M rows (bench.partition_probe,
# bench/findings.md "Retention at scale"): rows/s is the same at 500, 2,000 and 5,000 a batch,
# while the transaction (the time its locks are held) grows with the batch: 0.17 s median
# at 500, 1.1 s at 2,000, 2 s at 5,000 on the loaded 2-core host. SQLite holds its one write
# lock for the whole batch (every delivery write waits behind it), so it gets smaller ones.
BATCH = 500
SQLITE_BATCH = 200
# After each batch the purge sleeps this many times as long as the batch took: a purge of a
# backlog uses at most a quarter of the database's (and the host's) time, so deliveries keep
# flowing beside it. Scenario 9 at full speed: scenario 2 ran at 0.40-0.66x; a day of 1M
# deliveries still goes in well under an hour of wall time on a quiet host.
PAUSE_FACTOR = 3.0


@dataclass
class PurgeStats:
    """What one purge did: counts, and the longest batch (one transaction: the longest any
    concurrent writer of those rows could have waited)."""

    deliveries: int = 0
    attempts: int = 0
    events: int = 0
    batches: int = 0
    seconds: float = 0.0  # wall time, pauses included
    busy_s: float = 0.0  # inside batches
    longest_batch_s: float = 0.0
    finished: bool = True
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"deliveries": self.deliveries, "events": self.events}


def retention_cutoff(retention_days: float, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=retention_days)


def _final():
    # Not `status.in_(...)`: a literal list is re-rendered into the SQL on every execution.
    return or_(*(Delivery.status == s for s in DeliveryStatus.FINAL))


def _due(cutoff: datetime):
    """Finished, created and completed before the cutoff."""
    return (
        Delivery.created_at < cutoff,
        _final(),
        or_(Delivery.completed_at.is_(None), Delivery.completed_at < cutoff),
    )


def purge_batch(cutoff: datetime, batch: int = BATCH) -> tuple[int, int, int]:
    """Delete one batch of old finished deliveries with their attempts and the events they
    leave orphaned; the caller commits. Returns (deliveries, attempts, events)."""
    rows = db.session.execute(
        select(Delivery.id, Delivery.event_id)
        .where(*_due(cutoff))
        .order_by(Delivery.created_at)
        .limit(batch)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite renders nothing
    ).all()
    if not rows:
        return 0, 0, 0
    ids = [r.id for r in rows]
    # Checked again in the deletes: on SQLite the select above ran before this transaction
    # took the write lock, and a retry may have reopened a delivery in between.
    still_due = select(Delivery.id).where(Delivery.id.in_(ids), *_due(cutoff))
    attempts = db.session.execute(delete(Attempt).where(Attempt.delivery_id.in_(still_due)))
    deleted = db.session.execute(delete(Delivery).where(Delivery.id.in_(ids), *_due(cutoff)))
    events = _delete_orphans(sorted({r.event_id for r in rows}), cutoff)
    return deleted.rowcount, attempts.rowcount, events


def _delete_orphans(event_ids: list[str], cutoff: datetime) -> int:
    """Delete those of the events, received before the cutoff, that no delivery refers to."""
    orphan = (Event.received_at < cutoff, ~exists().where(Delivery.event_id == Event.id))
    locked = list(
        db.session.scalars(
            select(Event.id)
            .where(Event.id.in_(event_ids), *orphan)
            .with_for_update(skip_locked=True)
        )
    )
    if not locked:
        return 0
    return db.session.execute(delete(Event).where(Event.id.in_(locked), *orphan)).rowcount


def purge_orphan_events(cutoff: datetime, batch: int = BATCH) -> int:
    """Old events without any delivery (none subscribed, or left by an earlier purge); the
    caller commits."""
    ids = list(
        db.session.scalars(
            select(Event.id)
            .where(Event.received_at < cutoff, ~exists().where(Delivery.event_id == Event.id))
            .order_by(Event.received_at)
            .limit(batch)
        )
    )
    return _delete_orphans(ids, cutoff) if ids else 0


def purge_expired(
    retention_days: float,
    batch: int | None = None,
    max_seconds: float | None = None,
    on_batch: Callable[[PurgeStats], bool] | None = None,
    pause_factor: float = 0.0,
) -> PurgeStats:
    """Purge everything due, batch after batch, one commit each, until nothing is left.
    `on_batch` runs after each commit (the worker refreshes its Redis lock there); when it
    returns False, or `max_seconds` have passed, the purge stops with `finished` False and
    the next call goes on where it left off. `pause_factor`: after a full batch, sleep that
    many times the batch's duration (the worker passes PAUSE_FACTOR; 0 in tests)."""
    sqlite = db.engine.dialect.name == "sqlite"
    batch = batch or (SQLITE_BATCH if sqlite else BATCH)
    cutoff = retention_cutoff(retention_days)  # fixed for the whole purge
    stats = PurgeStats()
    started = time.monotonic()

    def run(step) -> bool:
        """One batch in its own transaction; True if it was full (more may be due)."""
        t0 = time.monotonic()
        try:
            with serialized_writes():
                count = step()
                db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        stats.batches += 1
        took = time.monotonic() - t0
        stats.busy_s += took
        stats.longest_batch_s = max(stats.longest_batch_s, took)
        out_of_time = max_seconds is not None and time.monotonic() - started > max_seconds
        if out_of_time or (on_batch is not None and not on_batch(stats)):
            stats.finished = False
        more = count >= batch and stats.finished
        if more and pause_factor:
            time.sleep(took * pause_factor)
        return more

    def deliveries_step() -> int:
        d, a, e = purge_batch(cutoff, batch)
        stats.deliveries, stats.attempts, stats.events = (
            stats.deliveries + d,
            stats.attempts + a,
            stats.events + e,
        )
        return d

    def events_step() -> int:
        e = purge_orphan_events(cutoff, batch)
        stats.events += e
        return e

    for step in (deliveries_step, events_step):
        while run(step):
            pass
        if not stats.finished:
            break
    stats.seconds = time.monotonic() - started
    if sqlite and stats.deliveries + stats.events:
        checkpoint_wal()
    if stats.deliveries or stats.events:
        log.info(
            "retention purge deliveries=%d attempts=%d events=%d batches=%d seconds=%.1f "
            "longest_batch_ms=%.0f finished=%s",
            stats.deliveries,
            stats.attempts,
            stats.events,
            stats.batches,
            stats.seconds,
            stats.longest_batch_s * 1000,
            stats.finished,
        )
    return stats


def checkpoint_wal() -> None:
    """After a purge on SQLite: copy the WAL back into the database and, if no reader holds
    it, truncate the file to zero. busy_timeout 0 on this connection for the checkpoint: with
    readers present TRUNCATE would otherwise hold the write lock while it waits for them
    (blocking every delivery); this way it does what it can and returns. Where it cannot
    truncate now, journal_size_limit (set at connect) trims the file when the log restarts."""
    with db.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all()
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
