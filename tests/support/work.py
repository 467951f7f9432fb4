"""Run the delivery pipeline in the test process: an RQ SimpleWorker in burst mode."""

from __future__ import annotations

from flask import Flask
from rq import SimpleWorker

from webhook_admin.delivery.runner import DeliveryRunner, install_runner
from webhook_admin.queues import FRESH, RETRY, get_queue, get_redis


def run_queued_jobs(
    app: Flask,
    rounds: int = 10,
    max_jobs: int | None = None,
    runner: DeliveryRunner | None = None,
) -> None:
    """Work the queues until empty (or `max_jobs` jobs); retries that are due at once are
    queued again by the attempt itself, so a few rounds drain a whole retry schedule of zeros.
    A new runner each call unless one is given (to keep its caches across calls)."""
    install_runner(runner or DeliveryRunner(app, threads=1))
    queues = [get_queue(FRESH), get_queue(RETRY)]
    for _ in range(rounds):
        if not any(q.count for q in queues):
            return
        SimpleWorker(queues, connection=get_redis()).work(
            burst=True, logging_level="WARNING", max_jobs=max_jobs
        )
        if max_jobs is not None:
            return
