"""Scenario 9 (issue 16): scenario 2 while retention purges 1M old rows, against scenario 2
beside the same history without a purge, in alternating rounds.

Setup, once: the 100 slow endpoints, then S9_ROWS delivered deliveries 31-40 days old (past
the default 30-day retention), each with one attempt (~1 KB request body) and its event,
built in SQL (`INSERT ... SELECT generate_series`, PostgreSQL). Per round: the rows of the
round before (the recent ones) are deleted, Redis flushed, the workers started, then 40
events to each endpoint, as scenario 2. In a "with" round `bench.retention_purge` (the
purge in a process of its own) starts just before the ingest and is stopped (after its
batch in progress) when the last delivery arrives; the next "with" round goes on where it
stopped; it paces itself as the worker's does (services/retention.py PAUSE_FACTOR). After
the rounds the rest of the backlog is purged alone at full speed (for at most
BENCH_S9_REST_SECONDS): the whole backlog's time and rows/s. The workers' own retention thread is held off by its Redis lock (set before each
round), so only the measured purge runs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import redis
from sqlalchemy import text

from .load import ingest_many
from .procs import BIN, LOG_DIR, Child, stop_all, wait_for
from .scenarios import latencies_ms, pct

ROWS_FULL, ROWS_QUICK = 1_000_000, 100_000
HISTORY_DAYS = (31, 40)  # the old rows' ages, past the default WEBHOOK_RETENTION_DAYS=30
CHUNK = 250_000  # rows per INSERT ... SELECT (one transaction each)
# The rest of the backlog, after the rounds, runs at most this long (make bench's time): the
# figures are its rows/s and the whole purge's time projected from it when it is cut short.
REST_SECONDS = float(os.environ.get("BENCH_S9_REST_SECONDS", "150"))

EVENTS_SQL = """
INSERT INTO events (id, type, data, occurred_at, received_at, body_sha256, source,
                    delivery_count)
SELECT 'evt_hist_' || g, 'transaction.approved',
       json_build_object('transaction_id', 'txn_' || g, 'amount', g % 10000),
       now() at time zone 'utc' - interval '{oldest} days' + g * interval '{step} seconds',
       now() at time zone 'utc' - interval '{oldest} days' + g * interval '{step} seconds',
       md5(g::text) || md5(g::text), 'ingest', 1
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g
"""
DELIVERIES_SQL = """
INSERT INTO deliveries (event_id, endpoint_id, status, attempts_count, next_trigger,
                        last_status_code, last_attempt_at, created_at, completed_at)
SELECT 'evt_hist_' || g, ids[1 + g % cardinality(ids)], 'succeeded', 1, 'automatic', 200,
       at, at, at
FROM (SELECT g, CAST(:endpoints AS integer[]) AS ids,
             now() at time zone 'utc' - interval '{oldest} days' + g * interval '{step} seconds'
             AS at
      FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g) AS s
"""
ATTEMPTS_SQL = """
INSERT INTO attempts (delivery_id, endpoint_id, number, trigger, started_at, duration_ms,
                      request_url, request_headers, request_body, response_status,
                      response_headers, response_body, error_class, error_message, succeeded)
SELECT d.id, d.endpoint_id, 1, 'automatic', d.created_at, 200,
       'http://127.0.0.1:9/hook', '{"content-type": "application/json"}',
       repeat(md5(d.id::text), 32), 200, '{}', 'ok', NULL, NULL, true
FROM deliveries d
WHERE d.id BETWEEN :lo AND :hi AND d.event_id LIKE 'evt_hist_%'
"""


RECENT = "now() at time zone 'utc' - interval '1 day'"
CLEAN_RECENT_SQL = (
    f"DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE created_at > {RECENT})",  # noqa: S608, E501
    f"DELETE FROM deliveries WHERE created_at > {RECENT}",  # noqa: S608
    f"DELETE FROM events WHERE received_at > {RECENT}",  # noqa: S608
)


DUE_SQL = (
    "SELECT count(*) FROM deliveries WHERE created_at < now() at time zone 'utc' - "
    "interval '30 days'"
)


def history_rows(plan) -> int:
    return int(os.environ.get("BENCH_S9_ROWS", ROWS_QUICK if plan.quick else ROWS_FULL))


def build_history(env, n: int, endpoint_ids: list[int]) -> dict:
    """n old delivered deliveries with an attempt and an event each; returns timings."""
    newest, oldest = HISTORY_DAYS
    step = (oldest - newest) * 86400 / n
    db = env.db
    from webhook_admin.extensions import db as sa

    started = time.monotonic()
    first_delivery = sa.session.execute(
        text("SELECT coalesce(max(id), 0) + 1 FROM deliveries")
    ).scalar()
    for lo in range(1, n + 1, CHUNK):
        hi = min(n, lo + CHUNK - 1)
        sa.session.execute(text(EVENTS_SQL.format(oldest=oldest, step=step)), {"lo": lo, "hi": hi})
        sa.session.execute(
            text(DELIVERIES_SQL.format(oldest=oldest, step=step)),
            {"lo": lo, "hi": hi, "endpoints": endpoint_ids},
        )
        sa.session.commit()
    last_delivery = sa.session.execute(text("SELECT max(id) FROM deliveries")).scalar()
    for lo in range(first_delivery, last_delivery + 1, CHUNK):
        sa.session.execute(text(ATTEMPTS_SQL), {"lo": lo, "hi": lo + CHUNK - 1})
        sa.session.commit()
    sa.session.commit()
    with sa.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE events, deliveries, attempts")
    built = time.monotonic() - started
    return {"rows": n, "build_s": built, "sizes_mb": db_sizes(db)}


def db_sizes(db) -> dict[str, float]:
    sizes = {}
    for table in ("events", "deliveries", "attempts"):
        sizes[table] = db.scalar(f"SELECT pg_total_relation_size('{table}')") / 2**20
    return sizes


def clean_recent(env) -> None:
    """Remove the last round's rows (newer than the history), jobs and receipts."""
    from webhook_admin.delivery.retention_thread import lock_key
    from webhook_admin.extensions import db as sa

    for sql in CLEAN_RECENT_SQL:
        sa.session.execute(text(sql))
    sa.session.commit()
    r = redis.Redis.from_url(env.redis.url(0))
    r.flushdb()
    r.set(lock_key(), "bench", ex=3600)  # the workers' retention thread stays off
    env.receivers.reset()


class Purge:
    """bench.retention_purge in its own process; `stop` returns what it reported."""

    def __init__(self, env, name: str, pause: float | None = None):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.out = LOG_DIR / f"{name}.json"
        self.out.unlink(missing_ok=True)
        self.out.with_suffix(".started").unlink(missing_ok=True)
        argv = [str(BIN / "python"), "-m", "bench.retention_purge", str(self.out)]
        extra = {} if pause is None else {"BENCH_S9_PAUSE": str(pause)}
        self.child = Child(name, argv, {**env.environ, **extra})

    def started(self) -> bool:
        return self.out.with_suffix(".started").exists()

    def stop(self, timeout: float = 60) -> dict:
        self.child.stop(timeout=timeout)
        return json.loads(self.out.read_text()) if self.out.exists() else {}

    def wait(self, timeout: float) -> dict:
        """Until it is done (or `timeout`, then stopped), and what it reported."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.child.process.wait(timeout)
        return self.stop()


def s2_round(env, purge: bool, state: dict) -> dict:
    """Scenario 2 beside the history; with `purge`, the purge runs during it."""
    plan = env.plan
    clean_recent(env)
    endpoints = state["endpoints"]
    workers = env.start_workers()
    n = plan.s2_events * len(endpoints)
    purger = Purge(env, f"s9-purge-{state['round']}") if purge else None
    state["round"] += 1
    try:
        if purger:
            # Under way (past its imports, ~1-5 s on a loaded host) when the first event
            # arrives: in a quick run the purge otherwise started after most of the round.
            wait_for(purger.started, 60, 0.05, "the purge process")
            time.sleep(0.3)
        started = time.time()
        sent = ingest_many(env.web.url, plan.s2_events, threads=4)
        done = env.receivers.wait_count("slow", n, 600)
        lat = latencies_ms(env, sent, "slow")
    finally:
        report = purger.stop() if purger else {}
        stop_all(workers)
    result = {"rate": n / (done - started), "p50": pct(lat, 50), "p99": pct(lat, 99)}
    if purger:
        state["purged"].append(report)
        result.update(
            {
                "purge_deliveries_per_s": report.get("deliveries_per_s", 0.0),
                "purge_rows_per_s": report.get("rows_per_s", 0.0),
                "purge_busy_rows_per_s": report.get("busy_rows_per_s", 0.0),
                "purge_longest_batch_ms": report.get("longest_batch_ms", 0.0),
                "purge_longest_statement_ms": report.get("longest_statement_ms", 0.0),
            }
        )
    return result


def finish_purge(env, state: dict) -> dict:
    """The rest of the backlog, alone; then the whole purge's figures (rounds + rest)."""
    clean_recent(env)
    due_before = env.db.scalar(DUE_SQL)
    rest = Purge(env, "s9-purge-rest", pause=0).wait(REST_SECONDS)  # alone: full speed
    parts = [*state["purged"], rest]
    seconds = sum(p.get("seconds", 0.0) for p in parts)
    deliveries = sum(p.get("deliveries", 0) for p in parts)
    rows = sum(p.get("rows", 0) for p in parts)
    left = env.db.scalar(DUE_SQL)
    longest = max(parts, key=lambda p: p.get("longest_statement_ms", 0.0))
    return {
        "deliveries": deliveries,
        "rows": rows,
        "seconds": seconds,
        "deliveries_per_s": deliveries / seconds if seconds else 0.0,
        "rows_per_s": rows / seconds if seconds else 0.0,
        "alone_rows_per_s": rest.get("rows_per_s", 0.0),
        "longest_batch_ms": max(p.get("longest_batch_ms", 0.0) for p in parts),
        "longest_statement_ms": longest.get("longest_statement_ms", 0.0),
        "longest_statement": longest.get("longest_statement", ""),
        "due_left": left,
        "due_before_rest": due_before,
        # Cut short: what the whole backlog would have taken at the rate of the rest.
        "projected_seconds": seconds + left / rest["deliveries_per_s"]
        if left and rest.get("deliveries_per_s")
        else seconds,
        "sizes_mb_after": db_sizes(env.db),
    }


def run(runner) -> None:
    """Scenario 9 in `make bench` (bench/run.py --only 9)."""
    env = runner.env
    env.clean()
    state = {
        "endpoints": env.db.add_endpoints(env.receivers.urls("slow", env.plan.s2_endpoints)),
        "round": 0,
        "purged": [],
    }
    n = history_rows(env.plan)
    runner.repeat("s9_history", lambda e: build_history(e, n, state["endpoints"]), runs=1)
    if "s9_history" in runner.errors:
        return
    runner.rounds(
        [
            ("s9_without", lambda e: s2_round(e, False, state)),
            ("s9_with_purge", lambda e: s2_round(e, True, state)),
        ]
    )
    runner.repeat("s9_purge", lambda e: finish_purge(e, state), runs=1)
    env.clean()  # the next scenario starts from an empty database


if __name__ == "__main__":
    sys.exit("run it through bench.run: python -m bench.run --only 9")
