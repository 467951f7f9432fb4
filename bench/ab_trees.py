"""A/B of two checkouts on bench scenarios 1, 2 and 5, in alternating rounds of one run
(receivers, Redis and the PostgreSQL database shared; each tree's own gunicorn and workers):

    BENCH_AB_DB_URL=postgresql://.../scratch PYTHONPATH=. .venv/bin/python -m bench.ab_trees \
        OLD_TREE NEW_TREE [ROUNDS] [s1,s2,s5]

OLD_TREE is e.g. a `git worktree add /tmp/old <commit>` with `.venv` symlinked. The database of
BENCH_AB_DB_URL is emptied (its public schema dropped) and migrated by NEW_TREE's migrations
(expand only: the old code runs on them). Prints the median of each tree and new/old."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import bench.procs as procs
from bench import scenarios


def make_env(plan):
    """scenarios.make_env, on BENCH_AB_DB_URL (emptied) instead of creating `bench`."""
    import psycopg

    from bench.load import Database

    db_url = os.environ["BENCH_AB_DB_URL"]  # emptied: a scratch database of your own
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    receivers = procs.Receivers(fast=4, slow=8, blackhole=2)
    redis_server = procs.RedisServer()
    environ = procs.app_environ(db_url, redis_server.url(0))
    procs.migrate_and_seed(environ)
    return scenarios.Env(
        plan, receivers, redis_server, environ, Database(environ), procs.Gunicorn(environ)
    )


def main() -> None:
    trees = {"old": Path(sys.argv[1]).resolve(), "new": Path(sys.argv[2]).resolve()}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    only = set(sys.argv[4].split(",")) if len(sys.argv) > 4 else {"s1", "s2", "s5"}
    plan = scenarios.Plan.make(False)
    env = make_env(plan)
    base_environ = dict(env.environ)
    shared_web = env.web
    results: dict[str, dict[str, list[dict]]] = {t: {} for t in trees}
    webs = {}
    try:
        for tree, root in trees.items():
            procs.ROOT = root
            env.environ = {**base_environ, "PYTHONPATH": str(root)}
            webs[tree] = procs.Gunicorn(env.environ, name=f"gunicorn-{tree}")
        for round_ in range(rounds):
            order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
            for tree in order:
                procs.ROOT = trees[tree]
                env.environ = {**base_environ, "PYTHONPATH": str(trees[tree])}
                env.web = webs[tree]
                run_scenarios(env, only, results[tree], f"round {round_ + 1} {tree}")
    finally:
        for web in webs.values():
            web.stop()
        shared_web.stop()
        env.db.close()
        env.redis.stop()
        env.receivers.stop()
    report(results, only)


def run_scenarios(env, only: set[str], results: dict[str, list[dict]], label: str) -> None:
    """One round of the chosen scenarios on `env`, each result appended to `results[key]`."""
    for key, fn in (
        ("s1", lambda: scenarios.s1_ours(env)),
        ("s2", lambda: scenarios.s23_ours(env, 0)),
        ("s5", lambda: scenarios.s5_ingest(env, env.db, env.web)),
    ):
        if key not in only:
            continue
        t0 = time.monotonic()
        value = fn()
        results.setdefault(key, []).append(value)
        shown = {k: round(v, 2) for k, v in value.items()}
        print(f"{label} {key} ({time.monotonic() - t0:.0f}s) {shown}", flush=True)


def report(results: dict[str, dict[str, list[dict]]], only: set[str]) -> None:
    """Save the raw results and print each metric's medians and new/old."""
    (procs.LOG_DIR.parent / "ab-results.json").write_text(json.dumps(results, indent=1))
    for key, metrics in (
        ("s1", ("rate", "steady", "cpu_ms")),
        ("s2", ("rate", "p50", "p99")),
        ("s5", ("rate", "p50", "p99")),
    ):
        if key not in only:
            continue
        for metric in metrics:
            old = [r[metric] for r in results["old"][key]]
            new = [r[metric] for r in results["new"][key]]
            mo, mn = statistics.median(old), statistics.median(new)
            print(
                f"{key} {metric}: old median {mo:.2f} {[round(x, 2) for x in old]}, "
                f"new median {mn:.2f} {[round(x, 2) for x in new]}, new/old {mn / mo:.3f}"
            )


if __name__ == "__main__":
    main()
