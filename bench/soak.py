"""`make soak`: steady load with faults for a bounded time, then prove nothing was lost.

Runs everything on 127.0.0.1: a private redis-server, the app (werkzeug, threaded), two
`worker.py` processes and three receivers (healthy; flaky with 500s, slow answers, resets and
hangs; mostly healthy). One worker is SIGKILLed and restarted every SOAK_KILL_EVERY seconds,
the other lives throughout so its RSS can be watched. When the time is up the load stops,
the queues drain, and the "nothing lost" invariants of tests/faults are checked.

    SOAK_SECONDS=180 SOAK_RATE=20 python -m bench.soak [--write-docs]

SOAK_DATABASE_URL selects PostgreSQL (default: a fresh SQLite file). Exit status 1 if an
invariant fails, the queue does not drain, or the steady worker's RSS grew by more than
SOAK_RSS_GROWTH_MB (default 40) after warm-up.

SOAK_RETENTION_MINUTES (issue 16) turns retention on at that many minutes (the workers'
retention thread then purges every tenth of it): every SOAK_SAMPLE_EVERY seconds (15) the
rows of attempts, deliveries and events and their size on disk (PostgreSQL:
pg_total_relation_size; SQLite: the file and its -wal) are sampled, and the run fails if
the attempts grew by more than 25 % between the first sample after warm-up (two
retention periods) and the end. On PostgreSQL the result names the server's `autovacuum`
setting: with it off (this workplace's CI cluster) the deleted rows stay on disk. The
"nothing lost" check then covers the retention window: older events may have lost their
finished deliveries to the purge."""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from werkzeug.serving import make_server

from tests.faults.fault_server import CUT, OK, RESET, Fault, FaultServer, hang
from tests.support.processes import WorkerProcess
from tests.support.redis_server import RedisServer, free_port

from .payload import PAYLOAD

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "reliability.md"
SCHEDULE = "1,2,4"
INGEST_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def flaky(webhook_id: str, nth: int) -> Fault:
    roll = random.random()
    if roll < 0.12:
        return Fault(status=500)
    if roll < 0.17:
        return RESET
    if roll < 0.20:
        return hang(3)  # past the 2 s deadline: a timeout
    if roll < 0.22:
        return CUT
    if roll < 0.32:
        return Fault(delay=random.uniform(0.3, 1.2))  # slow, but in time
    return OK


def deduplicating(server: FaultServer, script):
    """A receiver that already answered 2xx for this webhook-id answers 2xx again (Standard
    Webhooks receivers dedupe on it): a resend after a worker died mid-attempt is acked."""
    return lambda webhook_id, nth: OK if webhook_id in server.acked else script(webhook_id, nth)


def mostly_ok(webhook_id: str, nth: int) -> Fault:
    return Fault(status=503) if random.random() < 0.05 else OK


def retention_minutes() -> float | None:
    raw = os.environ.get("SOAK_RETENTION_MINUTES", "").strip()
    return float(raw) if raw else None


def environment(tmp: str, redis_url: str) -> dict[str, str]:
    database_url = os.environ.get("SOAK_DATABASE_URL") or f"sqlite:///{tmp}/soak.db"
    minutes = retention_minutes()
    retention = {"WEBHOOK_RETENTION_DAYS": f"{minutes / 1440:.6f}"} if minutes else {}
    return {
        **retention,
        "APP_ENV": "testing",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": base64.b64encode(os.urandom(36)).decode(),
        "WEBHOOK_INGEST_SECRET": INGEST_SECRET,
        "WEBHOOK_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "WEBHOOK_RETRY_SCHEDULE": SCHEDULE,
        "WEBHOOK_DELIVERY_TIMEOUT": "2",
        "WEBHOOK_SWEEP_INTERVAL": "1",
        "WEBHOOK_LEASE_SECONDS": "5",
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        "WEBHOOK_HEARTBEAT_INTERVAL": "1",
        "LOG_LEVEL": "WARNING",
    }


def prepare(app, urls: list[str]) -> list[int]:
    """Fresh schema, the catalog, and one endpoint per receiver URL."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from webhook_admin.extensions import db
    from webhook_admin.services.catalog import seed_catalog
    from webhook_admin.services.endpoints import EndpointInput, create_endpoint

    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        db.session.commit()
    upgrade()
    seed_catalog()
    ids = [create_endpoint(EndpointInput(u, ["transaction.approved"]), "soak")[0] for u in urls]
    db.session.commit()
    return [e.id for e in ids]


class Load(threading.Thread):
    """Posts signed events at a steady rate; a refused event is retried with the same id."""

    def __init__(self, base_url: str, rate: float):
        super().__init__(daemon=True, name="load")
        self.url = base_url + "/api/v1/events"
        self.rate = rate
        self.accepted: list[str] = []
        self.accepted_at: dict[str, float] = {}  # time.time() of the 2xx
        self.refused = 0
        self.latencies: list[float] = []
        self.stop_event = threading.Event()
        self.session = requests.Session()

    def post(self, event_id: str) -> bool:
        from .load import signed_headers

        body = json.dumps(
            {"type": "transaction.approved", "data": {**PAYLOAD, "n": event_id}}
        ).encode()
        key = base64.b64decode(INGEST_SECRET[len("whsec_") :])
        headers = signed_headers(event_id, body, key)
        started = time.monotonic()
        try:
            response = self.session.post(self.url, data=body, headers=headers, timeout=10)
        except requests.RequestException:
            return False
        self.latencies.append(time.monotonic() - started)
        return response.status_code in (200, 202)

    def run(self) -> None:
        n, next_at = 0, time.monotonic()
        while not self.stop_event.is_set():
            event_id = f"evt_soak_{n}"
            while not self.post(event_id):
                self.refused += 1
                time.sleep(0.5)
            self.accepted.append(event_id)
            self.accepted_at[event_id] = time.time()
            n += 1
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


def table_sizes(database_url: str) -> dict:
    """Rows of the three history tables and their size on disk, in MB."""
    from sqlalchemy import text

    from webhook_admin.extensions import db

    db.session.rollback()
    sample = {
        t: db.session.scalar(text(f"SELECT count(*) FROM {t}"))  # noqa: S608 (our names)
        for t in ("attempts", "deliveries", "events")
    }
    if db.engine.dialect.name == "postgresql":
        size = db.session.scalar(
            text(
                "SELECT pg_total_relation_size('attempts') + pg_total_relation_size('deliveries')"
                " + pg_total_relation_size('events')"
            )
        )
        sample["disk_mb"] = round(size / 2**20, 2)
    else:
        path = database_url.removeprefix("sqlite:///")
        sample["disk_mb"] = round(Path(path).stat().st_size / 2**20, 2)
        wal = Path(path + "-wal")
        sample["wal_mb"] = round((wal.stat().st_size if wal.exists() else 0) / 2**20, 2)
    db.session.rollback()
    return sample


def autovacuum_setting() -> str | None:
    """PostgreSQL's `autovacuum` (None on SQLite). Off, the rows the purge deletes stay dead
    on disk and the size grows whatever the purge does: read the size with it."""
    from sqlalchemy import text

    from webhook_admin.extensions import db

    if db.engine.dialect.name != "postgresql":
        return None
    value = db.session.scalar(text("SHOW autovacuum"))
    db.session.rollback()
    return value


def bounded(samples: list[dict], warmup: float) -> dict:
    """The attempts table stayed flat: its rows at the end against the first sample after
    `warmup` seconds (by then rows enter and leave at the same rate)."""
    after = [s for s in samples if s["t"] >= warmup]
    if len(after) < 2:
        return {"verdict": "too short (no sample after warm-up)", "ok": False}
    first, last = after[0], after[-1]
    growth = last["attempts"] / max(first["attempts"], 1) - 1
    return {
        "attempts_after_warmup": first["attempts"],
        "attempts_end": last["attempts"],
        "attempts_max_after_warmup": max(s["attempts"] for s in after),
        "growth_pct": round(growth * 100, 1),
        "disk_mb_after_warmup": first["disk_mb"],
        "disk_mb_end": last["disk_mb"],
        "ok": growth <= 0.25,
    }


def waiting_count() -> int:
    from sqlalchemy import func, select

    from webhook_admin.extensions import db
    from webhook_admin.models import Delivery

    db.session.rollback()
    return db.session.scalar(
        select(func.count()).where(Delivery.status.in_(("pending", "retrying", "in_flight")))
    )


def main(argv: list[str]) -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "180"))
    rate = float(os.environ.get("SOAK_RATE", "20"))
    kill_every = float(os.environ.get("SOAK_KILL_EVERY", "25"))
    rss_limit = float(os.environ.get("SOAK_RSS_GROWTH_MB", "40"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    tmp = tempfile.mkdtemp(prefix="soak-")
    redis = RedisServer(tmp)
    redis.start()
    env = environment(tmp, redis.url)
    from webhook_admin import create_app

    app = create_app(env)
    servers = [FaultServer(), FaultServer(flaky), FaultServer(mostly_ok)]
    for server in servers:
        server.script = deduplicating(server, server.script)
    for s in servers:
        s.__enter__()
    workers: list[WorkerProcess] = []
    try:
        with app.app_context():
            endpoint_ids = prepare(app, [s.url for s in servers])
        port = free_port()
        web = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        steady = WorkerProcess(env, "--threads", "8", "--name", "steady").start()
        victim = WorkerProcess(env, "--threads", "8").start()
        workers += [steady, victim]
        load = Load(f"http://127.0.0.1:{port}", rate)
        started = time.monotonic()
        load.start()
        kills, rss, next_kill = 0, [], started + kill_every
        minutes = retention_minutes()
        sample_every = float(os.environ.get("SOAK_SAMPLE_EVERY", "15"))
        samples: list[dict] = []
        next_sample = started
        print(f"soak: {seconds:.0f} s at {rate:g} events/s, kill a worker every {kill_every:g} s")
        while time.monotonic() - started < seconds:
            time.sleep(1)
            rss.append((time.monotonic() - started, rss_mb(steady.process.pid)))
            if minutes and time.monotonic() >= next_sample:
                with app.app_context():
                    sample = {"t": round(time.monotonic() - started)}
                    sample.update(table_sizes(env["DATABASE_URL"]))
                samples.append(sample)
                print(f"  {sample}", flush=True)
                next_sample += sample_every
            if time.monotonic() >= next_kill:
                victim.signal(signal.SIGKILL)
                victim.wait()
                kills += 1
                victim = WorkerProcess(env, "--threads", "8").start()
                workers.append(victim)
                next_kill += kill_every
        load.stop_event.set()
        load.join(15)
        ingest_done = time.monotonic()
        with app.app_context():
            while waiting_count() and time.monotonic() - ingest_done < 180:
                time.sleep(1)
            drain = time.monotonic() - ingest_done
            left = waiting_count()
            if minutes:
                # The purge runs in the workers: stopped, it cannot delete rows between the
                # check's reads (on PostgreSQL each read has its own snapshot).
                for w in workers:
                    w.stop()
                workers.clear()
            report = check(load, servers, endpoint_ids, left, minutes)
        web.shutdown()
        warm = [mb for t, mb in rss if t >= min(30.0, seconds / 3)]
        figures = {
            **report,
            "duration_s": round(seconds),
            "rate_per_s": rate,
            "workers_killed": kills,
            "ingest_refused": load.refused,
            "ingest_p50_ms": round(statistics.median(load.latencies) * 1000, 1),
            "ingest_p99_ms": round(statistics.quantiles(load.latencies, n=100)[98] * 1000, 1),
            "drain_s": round(drain, 1),
            "steady_worker_rss_mb_after_warmup": round(warm[0], 1),
            "steady_worker_rss_mb_end": round(warm[-1], 1),
            "steady_worker_rss_mb_max": round(max(warm), 1),
        }
        growth = warm[-1] - warm[0]
        ok = report["violations"] == 0 and left == 0 and growth <= rss_limit
        if minutes:
            flat = bounded(samples, 2 * minutes * 60)
            figures["retention"] = {
                "minutes": minutes,
                **flat,
                "autovacuum": autovacuum_setting(),
                "samples": samples,
            }
            ok = ok and flat["ok"]
        figures["result"] = "PASS" if ok else "FAIL"
        print(json.dumps(figures, indent=2))
        if "--write-docs" in argv:
            write_docs(figures)
        return 0 if ok else 1
    finally:
        for w in workers:
            w.stop()
        for s in servers:
            s.__exit__()
        redis.stop()


def check(
    load: Load, servers, endpoint_ids: list[int], left: int, minutes: float | None = None
) -> dict:
    from datetime import timedelta

    from sqlalchemy import func, select

    from tests.faults.invariants import check_invariants
    from webhook_admin.clock import utcnow
    from webhook_admin.extensions import db
    from webhook_admin.models import Attempt

    acked = {(w, e) for s, e in zip(servers, endpoint_ids, strict=True) for w in s.acked}
    accepted, cutoff = load.accepted, None
    if minutes:
        # With retention on, the check covers the window; 60 s of margin for purges that run
        # while it reads (each with a later cutoff than this one).
        window = minutes * 60 - 60
        cutoff = utcnow() - timedelta(seconds=window)
        accepted = [e for e in accepted if load.accepted_at[e] > time.time() - window]
    try:
        counts = check_invariants(
            tuple(int(x) for x in SCHEDULE.split(",")),
            accepted,
            acked,
            allow_waiting=False,
            retention_cutoff=cutoff,
        )
        violations = 0
    except AssertionError as exc:
        print(exc, file=sys.stderr)
        counts, violations = {}, int(str(exc).split()[0])
    classes = Counter(
        dict(
            db.session.execute(
                select(func.coalesce(Attempt.error_class, "none"), func.count()).group_by(
                    Attempt.error_class
                )
            ).all()
        )
    )
    # Sent again after the receiver had already answered 2xx (at-least-once in action).
    oks = Counter(
        (i, h.webhook_id)
        for i, s in enumerate(servers)
        for h in s.hits
        if h.fault.kind == "status" and 200 <= h.fault.status < 300
    )
    sent_again = sum(n - 1 for n in oks.values())
    return {
        "events_accepted": len(load.accepted),
        "deliveries": sum(counts.values()) if counts else None,
        "succeeded": counts.get("succeeded", 0),
        "failed_retries_exhausted": counts.get("failed", 0),
        "still_waiting_after_drain": left,
        "attempts": sum(classes.values()),
        "attempts_by_error_class": dict(sorted(classes.items())),
        "resent_after_2xx": sent_again,
        "violations": violations,
        "lost": violations,
    }


def write_docs(figures: dict) -> None:
    block = "```json\n" + json.dumps(figures, indent=2) + "\n```"
    text = DOCS.read_text() if DOCS.exists() else "<!-- soak:begin -->\n<!-- soak:end -->\n"
    text = re.sub(
        r"<!-- soak:begin -->.*<!-- soak:end -->",
        lambda _: f"<!-- soak:begin -->\n{block}\n<!-- soak:end -->",
        text,
        flags=re.S,
    )
    DOCS.write_text(text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
