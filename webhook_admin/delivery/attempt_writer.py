"""Records finished attempts in batches, on one thread of the worker process.

Recording an attempt is two statements and a commit; with every delivery thread doing its
own, a worker spent more CPU on those round trips than on sending. Delivery threads hand
their finished attempts here and go back to sending; this thread writes whatever has
gathered meanwhile in one transaction (one executemany per statement, one commit). Under
light load a batch is a single attempt, so nothing waits for company.

Durability is unchanged: until its row is committed, an attempt is a claim with a lease in
the database. If the process dies first, the lease expires and the sweeper records the try
as interrupted and sends the delivery again, as for a crash during the request itself."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from flask import Flask

from ..extensions import db
from .attempt import AttemptReport, FinishedAttempt, record_attempts

log = logging.getLogger(__name__)
_STOP = object()


class AttemptWriter(threading.Thread):
    def __init__(
        self,
        app: Flask,
        on_recorded: Callable[[AttemptReport], None],
        capacity: int,
        max_batch: int = 200,
    ):
        super().__init__(name="attempt-writer", daemon=True)
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.on_recorded = on_recorded
        self.max_batch = max_batch
        # Bounded: if the database falls behind, delivery threads wait here instead of
        # claiming more work than can be recorded.
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)

    def put(self, finished: FinishedAttempt) -> None:
        self._queue.put(finished)

    def stop(self) -> None:
        """Record everything handed over so far, then end."""
        self._queue.put(_STOP)
        self.join()

    def run(self) -> None:
        with self.app.app_context():
            stopping = False
            while not stopping:
                batch = [self._queue.get()]
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in batch:
                    stopping = True
                    batch = [item for item in batch if item is not _STOP]
                if batch:
                    self._write(batch)

    def _write(self, batch: list[FinishedAttempt]) -> None:
        try:
            reports = record_attempts(batch, self.settings)
        except Exception:
            # Not lost: the claims' leases expire and the sweeper records these tries as
            # interrupted and sends them again. Log it for the operator.
            log.exception("recording %d attempts failed", len(batch))
            db.session.rollback()
            return
        finally:
            db.session.close()
        for report in reports:
            try:
                self.on_recorded(report)
            except Exception:
                log.exception("follow-up failed delivery_id=%s", report.delivery_id)
