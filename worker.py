"""Run delivery workers: `python worker.py [--processes N] [--threads N] [--burst]`.

By default one process per CPU core. Each runs an RQ SimpleWorker (no fork per job, no fork
at all), RQ's scheduler in a thread, a dispatcher that drains the fresh queue in batches, a
pool of delivery threads and the sweeper. Run it on any number of hosts for more throughput."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading

from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.exceptions import StopRequested

from webhook_admin import create_app
from webhook_admin.delivery.fresh_dispatcher import FreshDispatcher
from webhook_admin.delivery.heartbeat import Heartbeat, default_worker_name
from webhook_admin.delivery.retention_thread import RetentionThread
from webhook_admin.delivery.runner import DeliveryRunner, install_runner
from webhook_admin.delivery.scheduler_thread import SchedulerThread
from webhook_admin.delivery.sweeper import SweeperThread
from webhook_admin.delivery.warm_start import open_pooled_connections
from webhook_admin.extensions import db
from webhook_admin.logging_setup import configure_logging
from webhook_admin.queues import (
    FRESH,
    MAINTENANCE,
    RETRY,
    enqueue_deliveries,
    get_queue,
    make_redis,
    queue_name,
    redis_target,
    use_worker_redis,
)
from webhook_admin.rq_internals import request_stop, unended_registration

REDIS_RETRY_SECONDS = 2.0


class DeliveryWorker(SimpleWorker):
    """RQ's SimpleWorker, noting stop signals: RQ also leaves its loop when Redis goes away
    (and says "quitting"), and only a signal may end this process."""

    stop_signalled = False

    def request_stop(self, signum, frame):
        DeliveryWorker.stop_signalled = True
        super().request_stop(signum, frame)

    def _install_signal_handlers(self):
        super()._install_signal_handlers()
        # A stop signal that came after work_until_stopped looked at the flag but before
        # RQ's handlers were in place went to note_stop only: RQ would never see it and
        # would block on its queues until the next job (found by a flaky SIGTERM test).
        if DeliveryWorker.stop_signalled:
            request_stop(self)


def note_stop(signum, frame) -> None:
    """Until RQ installs its own handlers, a stop signal is only noted (no abrupt exit)."""
    DeliveryWorker.stop_signalled = True


def work_until_stopped(queues, redis, name: str | None, burst: bool) -> None:
    """Run RQ's loop; after a Redis outage start it again, until SIGTERM/SIGINT (or burst)."""
    log = logging.getLogger("worker")
    pause = threading.Event()

    def stop_waiting(signum, frame) -> None:
        DeliveryWorker.stop_signalled = True
        pause.set()

    previous: DeliveryWorker | None = None
    while not DeliveryWorker.stop_signalled:
        try:
            if previous is None and name is not None:
                release_name_of_dead_worker(redis, name)
            elif previous is not None:
                # RQ could not record the last loop's end while Redis was away, and Redis
                # may still hold its registration (a replica promoted by Sentinel, a restart
                # from a snapshot): RQ then refuses a worker of the same --name as "an active
                # worker named ... already", a ValueError, and the process would exit.
                previous.register_death()
            previous = DeliveryWorker(queues, connection=redis, name=name)
            previous.work(burst=burst, logging_level="WARNING")
        except RedisError as exc:  # RQ's teardown talks to Redis too
            log.warning("worker loop ended, Redis unavailable: %s", exc)
        except StopRequested:  # a signal while RQ was installing its handlers
            return
        if burst or DeliveryWorker.stop_signalled:
            return
        # RQ's handlers talk to Redis; while it is away a signal just ends the wait.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop_waiting)
        log.warning("worker loop restarting in %.0f s (Redis was unavailable)", REDIS_RETRY_SECONDS)
        if pause.wait(REDIS_RETRY_SECONDS):
            return


def release_name_of_dead_worker(redis, name: str) -> None:
    """A worker of this --name that died without a goodbye (SIGKILL, the stop timeout, the
    OOM killer) leaves its RQ registration for up to 8 minutes (RQ's worker TTL + 60 s), and
    RQ refuses the name meanwhile: under `Restart=always` the process would exit again and
    again. A registration made on this host by a process that is gone (or by this very pid:
    a restarted container) is released; any other is a second live worker of that name."""
    held = unended_registration(DeliveryWorker, redis, name)
    if held is None:
        return
    if held.hostname != socket.gethostname() or (
        held.pid != os.getpid() and process_is_alive(held.pid)
    ):
        raise SystemExit(
            f"another worker named {name!r} is running (host {held.hostname}, pid {held.pid}):"
            " each worker needs a name of its own (--name)"
        )
    logging.getLogger("worker").warning(
        "worker name %s was still registered by pid %s, which is gone: released", name, held.pid
    )
    held.register_death()


def process_is_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def hand_back(dispatcher: FreshDispatcher | None, runner: DeliveryRunner) -> None:
    """Queue again what this process took and never claimed: popped by the dispatcher, or
    parked behind an endpoint's cap. Their old jobs look live to the sweeper for a minute
    (a young "started" job), so a rolling restart would hold them back that long; queued
    now, the next worker sends them at once. They are still due in the database either way,
    and a second job is harmless (the claim is atomic)."""
    left = (dispatcher.left_over if dispatcher is not None else []) + runner.gate.take_parked()
    if left and enqueue_deliveries(sorted(set(left)), FRESH):
        logging.getLogger("worker").info(
            "stopping: %d unclaimed deliveries queued again", len(left)
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes (default WEBHOOK_WORKER_PROCESSES, else one per CPU core)",
    )
    parser.add_argument("--threads", type=int, default=None, help="delivery threads per process")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--no-sweeper", action="store_true", help="leave sweeping to others")
    parser.add_argument("--name", default=None, help="worker name (default: host and pid)")
    return parser.parse_args(argv)


def die_with_parent() -> None:
    """In a child: get SIGTERM (a warm shutdown) if the supervising process dies."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(processes: int, args: argparse.Namespace) -> int:
    """Run `processes` single-process workers (one Python process can use one core: the GIL)
    and pass SIGTERM/SIGINT on; each finishes its attempts in flight before exiting.

    Children are forked from this process after its imports (~0.7 s of them), so they start
    working at once instead of importing everything again. Nothing here holds a connection
    or a thread yet, and each child builds an app of its own."""
    children = []
    for index in range(processes):
        name = f"{args.name}-{index + 1}" if args.name else None  # RQ names must be unique
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                die_with_parent()
                code = run_worker_process(create_app(web=False), args, name)
            except BaseException:
                logging.getLogger("worker").exception("worker process failed")
            finally:
                logging.shutdown()
                os._exit(code)
        children.append(pid)

    def forward(signum, frame) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    return max(codes)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    configure_logging()
    app = create_app(web=False)
    settings = app.config["SETTINGS"]
    processes = process_count(args, settings)
    if processes > 1:
        return supervise(processes, args)
    return run_worker_process(app, args, args.name)


def process_count(args: argparse.Namespace, settings) -> int:
    """--processes, else WEBHOOK_WORKER_PROCESSES, else one per core, on either database: a
    Python process uses one core. On SQLite too (issue 16): the writes are short batched
    transactions, so two processes on 2 cores queued little on the file's one writer and
    delivered 1.03-1.35x what one did (docs/decisions.md)."""
    return args.processes or settings.worker_processes or os.cpu_count() or 1


def run_worker_process(app, args: argparse.Namespace, name: str | None) -> int:
    """One worker process: delivery threads, the fresh dispatcher, RQ's worker for retries
    and maintenance, its scheduler, the sweeper and the heartbeat."""
    settings = app.config["SETTINGS"]
    threads = args.threads or settings.worker_threads
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, note_stop)
    with app.app_context():
        redis = use_worker_redis()
        runner = DeliveryRunner(app, threads)  # its threads are all started (thread_pool.py)
        open_pooled_connections(db.engine)  # before the first burst, not in it
        install_runner(runner)
        sweeper = retention = None
        if not args.burst and not args.no_sweeper:
            sweeper = SweeperThread(app, settings.sweep_interval)
            sweeper.start()
            # Its own thread: a purge of a large backlog must not hold up the sweeps.
            retention = RetentionThread(app, settings.retention_days)
            retention.start()
        # Fresh deliveries are drained in batches by the dispatcher (RQ's per-job bookkeeping
        # costs more than a delivery); RQ's worker runs retries and maintenance jobs. In burst
        # mode RQ's worker takes all three, so it returns only when everything is done.
        dispatcher = None
        # Every queue name carries this database's prefix (queues.py): a worker never takes
        # the jobs of another deployment sharing the Redis.
        rq_kinds = [RETRY, MAINTENANCE]
        if args.burst:
            rq_kinds.insert(0, FRESH)
        else:
            dispatcher = FreshDispatcher(runner, redis, queue_name(FRESH), batch=min(threads, 100))
            dispatcher.start()
        queues = [get_queue(kind) for kind in rq_kinds]
        logging.getLogger("worker").info(
            "worker starting pid=%s threads=%s queues=%s redis=%s",
            os.getpid(),
            threads,
            ",".join(q.name for q in queues),
            redis_target(settings),
        )
        scheduler = SchedulerThread([queue_name(RETRY), queue_name(MAINTENANCE)], redis)
        scheduler.start()
        # Presence for the System page and /metrics; its own connection, with timeouts.
        heartbeat = Heartbeat(
            make_redis(settings),
            name or default_worker_name(),
            threads,
            lambda: list(runner.in_flight.copy().values()),
            settings.heartbeat_interval,
        )
        heartbeat.start()
        try:
            work_until_stopped(queues, redis, name, args.burst)
        finally:
            # Warm shutdown (SIGTERM/SIGINT): finish and record what is in flight, then exit.
            heartbeat.set_state("stopping")
            if dispatcher is not None:
                dispatcher.stop()
            scheduler.stop()
            if sweeper is not None:
                sweeper.stop()
            if retention is not None:
                retention.stop()
            runner.shutdown()
            hand_back(dispatcher, runner)
            heartbeat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
