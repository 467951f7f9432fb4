"""The sweeper: the database says what is due; make sure Redis carries a job for it.

Covers Redis restarted empty, an enqueue that failed after the commit, and a worker that died
holding a lease. Safe to run anywhere, any number of times: claims are atomic."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from flask import Flask, current_app

from ..clock import utcnow
from ..extensions import db
from ..models import DeliveryStatus
from ..queues import RETRY_QUEUE, enqueue_deliveries, get_redis, live_job_ids, redis_key
from ..services.data_protection import purge_delivered
from ..worker_presence import last_run_key
from .certificates import warn_expiring
from .claims import due_deliveries
from .deadlines import expire_overdue
from .guarded_pass import run_guarded_pass
from .lease_recovery import recover_expired_leases
from .runner import follow_up

log = logging.getLogger(__name__)
# A job due this recently may still be on its way from RQ's scheduler (it polls each second).
GRACE_SECONDS = 2
BATCH = 1000


# In the app's namespace: one sweeper per deployment, not one for every deployment on a Redis.
def lock_key() -> str:
    return redis_key("sweeper", "lock")


def sweep_once() -> dict:
    """One pass; returns counts for logs and the System page."""
    recovered = recover_expired_leases(current_app.config["SETTINGS"].retry_schedule)
    db.session.commit()
    # An interrupted try backs off like any failed one: its retry is scheduled, not sent now.
    requeued = sum(
        follow_up(r.delivery_id, r.attempts_made, r.retry_at)
        for r in recovered
        if r.status == DeliveryStatus.RETRYING
    )
    expired = expire_overdue(db.session.connection(), utcnow())  # per-type deadlines
    cutoff = utcnow() - timedelta(seconds=GRACE_SECONDS)
    due = due_deliveries(cutoff, BATCH)
    db.session.commit()
    if due:
        live = live_job_ids(due)
        orphans = [ref for ref in due if ref[0] not in live]
        if orphans and enqueue_deliveries(orphans, RETRY_QUEUE):
            requeued += len(orphans)
    certificates = warn_expiring(utcnow())  # endpoint.certificate_expiring at 14 and 3 days
    db.session.commit()
    stats = {
        "recovered": len(recovered),
        "requeued": requeued,
        "expired": expired,
        "certificates": certificates,
    }
    get_redis().set(last_run_key(), f"{time.time():.0f}")
    if recovered or requeued or expired:
        log.info("sweep recovered=%d requeued=%d expired=%d", len(recovered), requeued, expired)
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

    def _pass(self) -> None:
        lock_ms = max(int(self.interval * 900), 100)
        if get_redis().set(lock_key(), "1", nx=True, px=lock_ms):
            sweep_once()
            # Types that ask for it: erase sensitive values once delivered.
            purge_delivered()

    def run(self) -> None:
        while True:
            run_guarded_pass(self.app, log, "sweep", self._pass)
            if self._stop_event.wait(self.interval):
                return
