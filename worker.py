"""Run delivery workers: `python worker.py [--threads N] [--burst]`.

One process runs an RQ SimpleWorker (no fork per job, no fork at all), RQ's scheduler in a
thread, a pool of delivery threads and the sweeper. Run more processes, on any number of
hosts, for more throughput."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rq import SimpleWorker

from webhook_admin import create_app
from webhook_admin.delivery.runner import DeliveryRunner, install_runner
from webhook_admin.delivery.scheduler_thread import SchedulerThread
from webhook_admin.delivery.sweeper import SweeperThread
from webhook_admin.logging_setup import configure_logging
from webhook_admin.queues import (
    FRESH_QUEUE,
    MAINTENANCE_QUEUE,
    RETRY_QUEUE,
    get_queue,
    use_worker_redis,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="delivery threads per process")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--no-sweeper", action="store_true", help="leave sweeping to others")
    parser.add_argument("--name", default=None, help="worker name (default: host and pid)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging()
    app = create_app()
    settings = app.config["SETTINGS"]
    threads = args.threads or settings.worker_threads
    with app.app_context():
        redis = use_worker_redis()
        runner = DeliveryRunner(app, threads)
        install_runner(runner)
        sweeper = None
        if not args.burst and not args.no_sweeper:
            sweeper = SweeperThread(app, settings.sweep_interval)
            sweeper.start()
        # Fresh deliveries first: RQ takes from the first non-empty queue in this order.
        queues = [get_queue(n) for n in (FRESH_QUEUE, RETRY_QUEUE, MAINTENANCE_QUEUE)]
        worker = SimpleWorker(queues, connection=redis, name=args.name)
        logging.getLogger("worker").info(
            "worker starting pid=%s threads=%s queues=%s",
            os.getpid(),
            threads,
            ",".join(q.name for q in queues),
        )
        scheduler = SchedulerThread([q.name for q in queues], redis)
        scheduler.start()
        try:
            worker.work(burst=args.burst, logging_level="WARNING")
        finally:
            # Warm shutdown (SIGTERM/SIGINT): finish and record what is in flight, then exit.
            scheduler.stop()
            if sweeper is not None:
                sweeper.stop()
            runner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
