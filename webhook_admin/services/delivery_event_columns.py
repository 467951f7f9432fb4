"""The event's type and merchant on each delivery (migration 0011): the monitor's filters by
merchant, type and category read them instead of joining events, once every delivery has them.

Fan-out writes both columns from 0011 on. The deliveries written before it are filled here,
in batches of one short transaction each, oldest first (the worker does it after its
retention purge; `flask deliveries fill-event-columns` does it at once). Until none is left
empty the filters keep joining events, so a half-filled table never hides a delivery from a
filter: `columns_filled` decides, by one probe of the partial index of the rows left to fill
(ix_deliveries_unfilled) per web process every RECHECK_SECONDS."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select, update

from ..extensions import db
from ..models import Delivery, Event
from ..write_lock import serialized_writes

log = logging.getLogger(__name__)

# Rows per transaction: each row updated writes an entry in every index of deliveries (the
# new columns are indexed, so no update is HOT); as retention's batches, short enough that a
# claim or finish of one of those rows waits well under a second.
BATCH = 1000
SQLITE_BATCH = 200
# How long a web process trusts its last answer to "is every delivery filled?". Asked
# again after that even when it was yes: during a rolling deploy from a release before 0011
# the old release's ingest still writes deliveries without the copies, and until the fill
# reaches them the filters must join again (one index probe per process per interval).
RECHECK_SECONDS = 30.0
_STATE_KEY = "delivery_event_columns"


def _unfilled():
    return Delivery.event_type.is_(None)


def columns_filled() -> bool:
    """True when no delivery lacks its event's type: the filters may read the delivery's own
    columns. Remembered per app for RECHECK_SECONDS."""
    state = current_app.extensions.setdefault(_STATE_KEY, {"filled": False, "asked": -math.inf})
    if time.monotonic() - state["asked"] < RECHECK_SECONDS:
        return state["filled"]
    state["filled"] = db.session.scalar(select(Delivery.id).where(_unfilled()).limit(1)) is None
    state["asked"] = time.monotonic()
    return state["filled"]


def forget_filled() -> None:
    """Ask the database again next time (after rows were emptied by hand, in tests)."""
    current_app.extensions.pop(_STATE_KEY, None)


def fill_batch(after_id: int, batch: int) -> tuple[int, int | None]:
    """Copy the event's type and merchant onto the next `batch` empty deliveries with an id
    above `after_id`; the caller commits. Returns (rows filled, the last id looked at, None
    when none was left)."""
    ids = db.session.scalars(
        select(Delivery.id)
        .where(_unfilled(), Delivery.id > after_id)
        .order_by(Delivery.id)
        .limit(batch)
    ).all()
    if not ids:
        return 0, None
    events = Event.__table__
    of_its_event = events.c.id == Delivery.event_id
    filled = db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), _unfilled())
        .values(
            event_type=select(events.c.type).where(of_its_event).scalar_subquery(),
            merchant_id=select(events.c.merchant_id).where(of_its_event).scalar_subquery(),
        )
        .execution_options(synchronize_session=False)
    )
    return filled.rowcount, ids[-1]


@dataclass
class FillStats:
    rows: int = 0
    batches: int = 0
    seconds: float = 0.0
    longest_batch_s: float = 0.0
    finished: bool = True


def fill_event_columns(
    batch: int | None = None,
    on_batch: Callable[[FillStats], bool] | None = None,
    pause_factor: float = 0.0,
) -> FillStats:
    """Fill every delivery written before migration 0011, batch after batch, one commit
    each. `on_batch` runs after each commit; when it returns False the fill stops with
    `finished` False (the next call starts again from the oldest empty row). `pause_factor`:
    after each batch, sleep that many times its duration (the worker's share of the host, as
    retention's)."""
    batch = batch or (SQLITE_BATCH if db.engine.dialect.name == "sqlite" else BATCH)
    stats = FillStats()
    started = time.monotonic()
    after_id = 0
    while True:
        t0 = time.monotonic()
        try:
            with serialized_writes():
                rows, last_id = fill_batch(after_id, batch)
                db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        if last_id is None:
            break
        took = time.monotonic() - t0
        stats.rows += rows
        stats.batches += 1
        stats.longest_batch_s = max(stats.longest_batch_s, took)
        after_id = last_id
        if on_batch is not None and not on_batch(stats):
            stats.finished = False
            break
        if pause_factor:
            time.sleep(took * pause_factor)
    stats.seconds = time.monotonic() - started
    if stats.rows:
        log.info(
            "delivery event columns filled rows=%d batches=%d seconds=%.1f "
            "longest_batch_ms=%.0f finished=%s",
            stats.rows,
            stats.batches,
            stats.seconds,
            stats.longest_batch_s * 1000,
            stats.finished,
        )
    return stats
