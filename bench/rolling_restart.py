"""`make roll`: a rolling restart under load, bounded (~2 minutes), with figures.

Everything on 127.0.0.1: a private redis-server, PostgreSQL (ROLL_DATABASE_URL, an admin URL;
a database `bench_roll` is created on its server) or SQLite when ROLL_DATABASE_URL=sqlite,
gunicorn as docs/operations.md runs it, three `worker.py` processes (the three worker hosts
of docs/deployment.md), two receivers that answer 200 at once.

Signed events go in at ROLL_RATE (50) events/s, fanned out to both receivers. After a steady
phase, each worker is stopped with SIGTERM and started again, one after the other, then
gunicorn gets a HUP (a graceful reload: new web workers, old ones finish their requests).
Then a steady phase again, the load stops, the deliveries drain, and the invariants of
tests/faults are checked.

    python -m bench.rolling_restart [--write-docs]

Reported: events accepted; lost (an accepted event some receiver never got a 2xx for);
sent twice in all, and sent twice while the first send's lease was still valid (the
claim must make that impossible); ingest p50/p99 steady and during the roll, and their
ratio; delivery latency (ingest to receipt) p99 steady and during the roll; how long each
worker took to stop and gunicorn to reload; connections the client had to retry (a
keep-alive connection closed by a web worker that was reloaded). Exit status 1 if anything
was lost or sent twice within a lease, or the roll's ingest p99 is 2x the steady one or more.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import requests

from bench.load import signed_headers
from bench.procs import (
    BIN,
    LOG_DIR,
    ROOT,
    WEB_WORKERS,
    Child,
    Gunicorn,
    RedisServer,
    app_environ,
    flask_cli,
    migrate_and_seed,
    prepare_postgres,
    process_tree,
    wait_for,
)
from tests.support.receiver import Receiver

from .payload import PAYLOAD

DOCS = ROOT / "docs" / "reliability.md"
WORKERS = 3
LEASE_SECONDS = 120  # the default: 2 x max(delivery timeout, 60)


class Load(threading.Thread):
    """Open loop: one request per 1/rate s, each on a thread of a small pool (a slow answer
    does not slow the rate). A connection error is retried with the same webhook-id."""

    def __init__(self, url: str, rate: float):
        super().__init__(daemon=True, name="load")
        self.url = url + "/api/v1/events"
        self.rate = rate
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}  # event id -> monotonic time of its first post
        self.accepted: set[str] = set()
        self.samples: list[tuple[float, float]] = []  # (sent at, seconds to the answer)
        self.retried_connections = 0
        self.other_answers: list[int] = []
        self.local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def post(self, event_id: str) -> None:
        body = json.dumps(
            {"type": "transaction.approved", "data": {**PAYLOAD, "id": event_id}}
        ).encode()
        started = time.monotonic()
        with self.lock:
            self.sent[event_id] = started
        for _ in range(20):
            try:
                response = self.session().post(
                    self.url, data=body, headers=signed_headers(event_id, body), timeout=10
                )
            except requests.ConnectionError:
                with self.lock:
                    self.retried_connections += 1
                self.local.session = requests.Session()
                continue
            if response.status_code == 503:
                time.sleep(0.2)
                continue
            with self.lock:
                self.samples.append((started, time.monotonic() - started))
                if response.status_code in (200, 202):
                    self.accepted.add(event_id)
                else:
                    self.other_answers.append(response.status_code)
            return

    def run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(16) as pool:
            n, next_at = 0, time.monotonic()
            while not self.stop_event.is_set():
                pool.submit(self.post, f"evt_roll_{n}_{uuid.uuid4().hex[:8]}")
                n += 1
                next_at += 1 / self.rate
                time.sleep(max(0.0, next_at - time.monotonic()))


def p(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def start_worker(environ: dict[str, str], n: int, generation: int) -> Child:
    name = f"roll-worker-{n}-{generation}"
    (LOG_DIR / f"{name}.log").unlink(missing_ok=True)  # worker_ready reads it
    return Child(
        name,
        [sys.executable, str(ROOT / "worker.py"), "--processes", "1", "--name", f"w{n}"],
        environ,
    )


def worker_ready(child: Child) -> bool:
    return child.log_path.exists() and "worker starting" in child.log_path.read_text()


def database(environ_url: str | None) -> str:
    if environ_url == "sqlite":
        path = ROOT / "var" / "bench" / "roll.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        return f"sqlite:///{path}"
    return prepare_postgres(
        environ_url or "postgresql://postgres@127.0.0.1:5432/postgres", "bench_roll"
    )


def main(argv: list[str]) -> int:
    rate = float(os.environ.get("ROLL_RATE", "50"))
    steady_s = float(os.environ.get("ROLL_STEADY_SECONDS", "20"))
    pause_s = float(os.environ.get("ROLL_PAUSE_SECONDS", "4"))
    redis = RedisServer()
    database_url = database(os.environ.get("ROLL_DATABASE_URL"))
    environ = app_environ(database_url, redis.url(0), LOG_LEVEL="INFO")
    children: list[Child] = []
    web = None
    with Receiver() as first, Receiver() as second:
        try:
            migrate_and_seed(environ)
            for receiver in (first, second):
                flask_cli(
                    environ, "endpoints", "add", receiver.url, "--event", "transaction.approved"
                )
            workers = [start_worker(environ, n, 0) for n in range(1, WORKERS + 1)]
            children += workers
            wait_for(lambda: all(worker_ready(w) for w in workers), 30, 0.1, "workers")
            control = str(LOG_DIR / "roll-gunicorn.ctl")
            web = Gunicorn(environ, name="roll-gunicorn", control_socket=control)
            load = Load(web.url, rate)
            load.start()
            time.sleep(3)  # warm-up, not counted
            windows = {"steady": [time.monotonic()]}
            time.sleep(steady_s)
            windows["steady"].append(time.monotonic())
            # 1. every worker, one after the other: SIGTERM, wait for it, start it again.
            windows["workers"] = [time.monotonic()]
            stop_seconds = []
            for n in range(WORKERS):
                old = workers[n]
                t = time.monotonic()
                old.process.send_signal(signal.SIGTERM)
                old.process.wait(60)
                stop_seconds.append(round(time.monotonic() - t, 2))
                old.stop()
                workers[n] = start_worker(environ, n + 1, 1)
                children.append(workers[n])
                wait_for(lambda w=workers[n]: worker_ready(w), 30, 0.1, "restarted worker")
                time.sleep(pause_s)
            windows["workers"].append(time.monotonic())
            # 2. every gunicorn worker, through the control socket (scripts/gunicorn_roll.py).
            windows["web_roll"] = [time.monotonic()]
            t = time.monotonic()
            rolled = Child(
                "roll-web-roll", [sys.executable, "scripts/gunicorn_roll.py", "--socket", control]
            )
            rolled.process.wait(120)
            web_roll_seconds = round(time.monotonic() - t, 2)
            rolled.stop()
            time.sleep(pause_s)
            windows["web_roll"].append(time.monotonic())
            # 3. the same with a HUP, for comparison: old workers stop as the new ones start.
            windows["hup"] = [time.monotonic()]
            web_pids = set(process_tree(web.child.pid)) - {web.child.pid}
            t = time.monotonic()
            web.child.process.send_signal(signal.SIGHUP)
            wait_for(
                lambda: (
                    not (set(process_tree(web.child.pid)) & web_pids)
                    and len(process_tree(web.child.pid)) > 1
                ),
                60,
                0.05,
                "gunicorn reload",
            )
            hup_seconds = round(time.monotonic() - t, 2)
            time.sleep(pause_s)
            windows["hup"].append(time.monotonic())
            time.sleep(steady_s / 2)
            load.stop_event.set()
            load.join(30)
            wanted = {(e, r) for e in load.accepted for r in (0, 1)}

            def received() -> set[tuple[str, int]]:
                return {
                    (q.headers.get("webhook-id"), i)
                    for i, r in enumerate((first, second))
                    for q in list(r.requests)
                }

            drained_from = time.monotonic()
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: wanted <= received(), 120, 0.5, "drain")
            drain_s = time.monotonic() - drained_from
            figures = report(load, (first, second), wanted - received(), windows)
            figures.update(
                {
                    "rate_per_s": rate,
                    "database": "postgresql" if database_url.startswith("postgresql") else "sqlite",
                    "worker_processes": WORKERS,
                    "web_workers": WEB_WORKERS,
                    "worker_stop_s": stop_seconds,
                    "web_roll_s": web_roll_seconds,
                    "hup_reload_s": hup_seconds,
                    "drain_s": round(drain_s, 1),
                    "invariant_violations": check(
                        database_url, redis.url(0), load, (first, second)
                    ),
                }
            )
        finally:
            for child in children:
                child.stop()
            if web is not None:
                web.stop()
            redis.stop()
    ok = (
        figures["lost"] == 0
        and figures["sent_twice_within_lease"] == 0
        and figures["invariant_violations"] == 0
        and figures["ingest_p99_ratio_roll_to_steady"] < 2
    )  # the HUP's figures are reported, not judged: docs/deployment.md says why
    figures["result"] = "PASS" if ok else "FAIL"
    print(json.dumps(figures, indent=2))
    if "--write-docs" in argv:
        write_docs(figures)
    return 0 if ok else 1


def report(load: Load, receivers, missing, windows: dict[str, list[float]]) -> dict:
    """Lost and sent-twice counts; ingest and delivery latency per phase of the run."""
    sends: dict[tuple[str, int], list[float]] = defaultdict(list)
    for i, receiver in enumerate(receivers):
        for request in receiver.requests:
            sends[(request.headers.get("webhook-id"), i)].append(request.received_at)
    twice = {k: sorted(v) for k, v in sends.items() if len(v) > 1}
    within_lease = sum(1 for v in twice.values() if v[1] - v[0] < LEASE_SECONDS)
    first_receipt = {k: min(v) for k, v in sends.items()}

    def ingest(phases: tuple[str, ...]) -> list[float]:
        return [s for t, s in load.samples if any(a <= t < b for a, b in map(windows.get, phases))]

    def delivery(phases: tuple[str, ...]) -> list[float]:
        return [
            first_receipt[(e, i)] - sent
            for e, sent in load.sent.items()
            if any(a <= sent < b for a, b in map(windows.get, phases))
            for i in range(len(receivers))
            if (e, i) in first_receipt
        ]

    figures = {
        "events_accepted": len(load.accepted),
        "deliveries_expected": 2 * len(load.accepted),
        "lost": len(missing),
        "sent_twice": len(twice),
        "sent_twice_within_lease": within_lease,
        "ingest_other_answers": len(load.other_answers),
        "ingest_connections_retried": load.retried_connections,
    }
    steady_p99 = p(ingest(("steady",)), 99)
    for name, phases in (
        ("steady", ("steady",)),
        ("roll", ("workers", "web_roll")),
        ("workers", ("workers",)),
        ("web_roll", ("web_roll",)),
        ("hup", ("hup",)),
    ):
        samples = ingest(phases)
        figures[f"ingest_p50_ms_{name}"] = round(p(samples, 50) * 1000, 1)
        figures[f"ingest_p99_ms_{name}"] = round(p(samples, 99) * 1000, 1)
        figures[f"ingest_max_ms_{name}"] = round(max(samples, default=0) * 1000, 1)
        figures[f"delivery_p99_ms_{name}"] = round(p(delivery(phases), 99) * 1000, 1)
        if name != "steady" and steady_p99:
            figures[f"ingest_p99_ratio_{name}_to_steady"] = round(p(samples, 99) / steady_p99, 2)
    return figures


def check(database_url: str, redis_url: str, load: Load, receivers) -> int:
    """The invariants of tests/faults against the run's database; the number of violations."""
    from sqlalchemy import select

    from tests.faults.invariants import check_invariants
    from webhook_admin import create_app
    from webhook_admin.config import DEFAULT_RETRY_SCHEDULE
    from webhook_admin.models import Endpoint

    app = create_app(app_environ(database_url, redis_url, APP_ENV="testing"))
    with app.app_context():
        from webhook_admin.extensions import db

        urls = {e.url: e.id for e in db.session.scalars(select(Endpoint))}
        acked = {(q.headers.get("webhook-id"), urls[r.url]) for r in receivers for q in r.requests}
        try:
            check_invariants(DEFAULT_RETRY_SCHEDULE, list(load.accepted), acked)
            return 0
        except AssertionError as exc:
            print(exc, file=sys.stderr)
            return int(str(exc).split()[0]) if str(exc).split()[0].isdigit() else 1
        finally:
            db.session.remove()
            db.engine.dispose()


def write_docs(figures: dict) -> None:
    block = "```json\n" + json.dumps(figures, indent=2) + "\n```"
    text = DOCS.read_text()
    text = re.sub(
        r"<!-- roll:begin -->.*<!-- roll:end -->",
        lambda _: f"<!-- roll:begin -->\n{block}\n<!-- roll:end -->",
        text,
        flags=re.S,
    )
    DOCS.write_text(text)


if __name__ == "__main__":
    assert Path(BIN).exists()
    sys.exit(main(sys.argv[1:]))
