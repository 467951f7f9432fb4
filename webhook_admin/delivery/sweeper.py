"""The sweeper: the database says what is due; make sure Redis carries a job for it.

Covers Redis restarted empty, an enqueue that failed after the commit, and a worker that died
holding a lease. Safe to run anywhere, any number of times: claims are atomic."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from flask import Flask
from redis.exceptions import RedisError

from ..clock import utcnow
from ..extensions import db
from ..queues import RETRY_QUEUE, enqueue_deliveries, get_redis, live_job_ids
from ..services.delivery_state import due_deliveries, recover_expired_leases
from ..services.retention import purge_expired

log = logging.getLogger(__name__)
# A job due this recently may still be on its way from RQ's scheduler (it polls each second).
GRACE_SECONDS = 2
BATCH = 1000
LOCK_KEY = "webhook-admin:sweeper:lock"
RETENTION_LOCK_KEY = "webhook-admin:retention:lock"
RETENTION_EVERY_SECONDS = 3600
LAST_RUN_KEY = "webhook-admin:sweeper:last-run"


def sweep_once() -> dict:
    """One pass; returns counts for logs and the System page."""
    recovered = recover_expired_leases()
    db.session.commit()
    requeued = 0
    if recovered and enqueue_deliveries(recovered, RETRY_QUEUE):
        requeued += len(recovered)
    cutoff = utcnow() - timedelta(seconds=GRACE_SECONDS)
    due = due_deliveries(cutoff, BATCH)
    db.session.commit()
    if due:
        live = live_job_ids(due)
        orphans = [ref for ref in due if ref[0] not in live]
        if orphans and enqueue_deliveries(orphans, RETRY_QUEUE):
            requeued += len(orphans)
    stats = {"recovered": len(recovered), "requeued": requeued}
    get_redis().set(LAST_RUN_KEY, f"{time.time():.0f}")
    if recovered or requeued:
        log.info("sweep recovered=%d requeued=%d", stats["recovered"], requeued)
    return stats


class SweeperThread(threading.Thread):
    """Runs sweep_once every interval in a worker process; a Redis lock makes one worker
    per interval do it, however many run."""

    def __init__(self, app: Flask, interval: float):
        super().__init__(name="sweeper", daemon=True)
        self.app = app
        self.interval = interval
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while True:
            with self.app.app_context():
                try:
                    lock_ms = max(int(self.interval * 900), 100)
                    if get_redis().set(LOCK_KEY, "1", nx=True, px=lock_ms):
                        sweep_once()
                    # Once an hour across all workers: the lock outlives the interval.
                    if get_redis().set(
                        RETENTION_LOCK_KEY, "1", nx=True, ex=RETENTION_EVERY_SECONDS
                    ):
                        purge_expired(self.app.config["SETTINGS"].retention_days)
                except RedisError as exc:
                    log.warning("sweep skipped, Redis unavailable: %s", exc)
                except Exception:
                    # The next pass tries again; a sweep must never kill the worker.
                    log.exception("sweep failed")
                    db.session.rollback()
                finally:
                    db.session.remove()
            if self._stop_event.wait(self.interval):
                return
