"""Scenario 2 on SQLite (or PostgreSQL), a fresh database against one that already ran
(issue 16), in alternating rounds of one run:

    PYTHONPATH=. .venv/bin/python -m bench.after_run [ROUNDS] [--postgresql] [TREE ...]

- fresh: a new database file, then scenario 2 (100 endpoints answering in 200 ms, 40 events
  each) with `worker.py` at its defaults;
- after: a new database file, one earlier run first (2,000 deliveries, or
  BENCH_EARLIER_DELIVERIES, to a fast receiver,
  then the workers stopped by SIGTERM), its history kept, then the same scenario 2.

With several TREEs (checkouts with `.venv` symlinked, e.g. `git worktree add /tmp/old main`),
each round runs fresh and after for every tree, so old and new code share the machine's state
of the moment. Prints each run and the after/fresh ratio per round and tree.

With --postgresql each run has its own database on the bench's server, and each scenario 2
prints what PostgreSQL did in its window (checkpoints, autovacuum and autoanalyze runs of
that database, WAL written, blocks read, dead tuples): session 16 ruled out checkpoints and
autovacuum as the cause of the after case's slower rounds with it (bench/findings.md)."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import redis

import bench.procs as procs
from bench import scenarios
from bench.load import Database, ingest_many

DB_DIR = procs.ROOT / "var" / "bench"
# The earlier run; BENCH_EARLIER_DELIVERIES=20000 shows how the cost grows with it.
EARLIER_DELIVERIES = int(os.environ.get("BENCH_EARLIER_DELIVERIES", "2000"))


def new_database(name: str, redis_url: str, backend: str = "sqlite") -> dict[str, str]:
    """A new, migrated and seeded database: a file under var/bench/, or on PostgreSQL
    (scenario 8 in `make bench`) the database bench_history_<name> made anew."""
    if backend == "postgresql":
        from .run import PG_ADMIN_URL

        url = procs.prepare_postgres(PG_ADMIN_URL, f"bench_history_{name.replace('-', '_')}")
        environ = procs.app_environ(url, redis_url)
        procs.migrate_and_seed(environ)
        return environ
    path = DB_DIR / f"{name}.db"
    DB_DIR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    environ = procs.app_environ(f"sqlite:///{path}", redis_url)
    procs.migrate_and_seed(environ)
    return environ


def start_workers(env: scenarios.Env) -> list[procs.Child]:
    """`worker.py` at its defaults (on SQLite: one process), up and registered."""
    children = procs.start_workers(env.environ)
    expected = 1 if env.environ["DATABASE_URL"].startswith("sqlite") else env.plan.workers
    try:
        procs.wait_for(lambda: env.rq_workers_registered() >= expected, 60, 0.05, "RQ workers up")
    except Exception:
        procs.stop_all(children)
        raise
    return children


def earlier_run(env: scenarios.Env) -> None:
    """2,000 deliveries to one fast endpoint, then SIGTERM; the rows stay."""
    env.db.add_endpoints(env.receivers.urls("fast", 1))
    ingest_many(env.web.url, EARLIER_DELIVERIES, threads=4)
    workers = start_workers(env)
    try:
        procs.wait_for(
            lambda: env.db.succeeded() >= EARLIER_DELIVERIES, 300, 0.1, "earlier run delivered"
        )
    finally:
        procs.stop_all(workers)


def postgres_counters(url: str) -> dict[str, float]:
    """What the server and the database `url` have done so far (cumulative counters)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        checkpoints, wal = conn.execute(
            "SELECT checkpoints_timed + checkpoints_req,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') FROM pg_stat_bgwriter"
        ).fetchone()
        (reads,) = conn.execute(
            "SELECT blks_read FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        vacuums, analyzes, dead = conn.execute(
            "SELECT coalesce(sum(autovacuum_count), 0), coalesce(sum(autoanalyze_count), 0),"
            " coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables"
        ).fetchone()
    return {
        "checkpoints": checkpoints,
        "wal_mb": float(wal) / 1e6,
        "blocks_read": reads,
        "autovacuums": vacuums,
        "autoanalyzes": analyzes,
        "dead_tuples": dead,
    }


def scenario_2(env: scenarios.Env) -> dict:
    """scenarios.s23_ours without its clean(): the earlier run's rows stay."""
    url = env.environ["DATABASE_URL"]
    before = postgres_counters(url) if url.startswith("postgresql") else None
    result = _scenario_2(env)
    if before is not None:
        after = postgres_counters(url)
        window = ", ".join(f"{k} {float(after[k] - before[k]):.1f}" for k in before)
        print(f"  scenario 2 at {result['rate']:.0f}/s; in its window: {window}", flush=True)
    return result


def _scenario_2(env: scenarios.Env) -> dict:
    plan = env.plan
    redis.Redis.from_url(env.redis.url(0)).flushdb()
    env.receivers.reset()
    env.db.add_endpoints(env.receivers.urls("slow", plan.s2_endpoints))
    workers = start_workers(env)
    n = plan.s2_events * plan.s2_endpoints
    try:
        started = time.time()
        ingest_many(env.web.url, plan.s2_events, threads=4)
        done = env.receivers.wait_count("slow", n, 600)
    finally:
        procs.stop_all(workers)
    return {"rate": n / (done - started)}


def one(kind: str, tree: Path, receivers, redis_server, plan, backend: str = "sqlite") -> float:
    procs.ROOT = tree
    environ = new_database(f"after-run-{kind}", redis_server.url(0), backend)
    environ["PYTHONPATH"] = str(tree)
    db = Database(environ)
    try:  # its app context is popped even when gunicorn does not come up
        web = procs.Gunicorn(environ, name=f"gunicorn-{kind}")
        env = scenarios.Env(plan, receivers, redis_server, environ, db, web)
        try:
            if kind == "after":
                earlier_run(env)
            return scenario_2(env)["rate"]
        finally:
            web.stop()
    finally:
        db.close()


def main() -> None:
    args = sys.argv[1:]
    backend = "postgresql" if "--postgresql" in args else "sqlite"
    args = [a for a in args if a != "--postgresql"]
    rounds = int(args[0]) if args else 3
    trees = [Path(t).resolve() for t in args[1:]] or [procs.ROOT]
    plan = scenarios.Plan.make(False)
    receivers = procs.Receivers(fast=4, slow=8)
    redis_server = procs.RedisServer()
    ratios: dict[Path, list[float]] = {t: [] for t in trees}
    try:
        for round_ in range(rounds):
            for tree in trees:
                order = ("fresh", "after") if round_ % 2 == 0 else ("after", "fresh")
                rates = {k: one(k, tree, receivers, redis_server, plan, backend) for k in order}
                ratio = rates["after"] / rates["fresh"]
                ratios[tree].append(ratio)
                print(
                    f"round {round_ + 1} {tree.name}: fresh {rates['fresh']:.0f}/s, "
                    f"after {rates['after']:.0f}/s, after/fresh {ratio:.2f}",
                    flush=True,
                )
    finally:
        redis_server.stop()
        receivers.stop()
    for tree, values in ratios.items():
        print(
            f"{tree.name}: after/fresh median {statistics.median(values):.2f} "
            f"(rounds {', '.join(f'{v:.2f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
