"""`python -m bench.run [--quick] [--only 1,2,...]`: run the scenarios, print a table, write
docs/benchmarks.md and docs/benchmarks.svg. BENCH_QUICK=1 is the same as --quick.
PostgreSQL: BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test) is only used to
create and drop the database `bench`; everything runs on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from . import core_probe, history_scenarios, report, retention_bench, scenarios, validation_share
from .load import Database
from .procs import ROOT, Gunicorn, app_environ, migrate_and_seed, stop_all

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


class Runner:
    def __init__(self, env: scenarios.Env):
        self.env = env
        self.raw: dict[str, list[dict]] = {}
        self.errors: dict[str, str] = {}
        self.core_checks: dict[str, float] = {}

    def start_group(self, number: int, title: str) -> None:
        """Print the scenario's title and check how much of the second core is free now."""
        check = core_probe.probe()
        self.core_checks[str(number)] = round(check["parallel"], 2)
        print(f"{number}. {title} (core check: {check['parallel']:.2f})", flush=True)

    def repeat(self, key: str, fn, *args, runs: int | None = None) -> None:
        self.rounds([(key, fn, *args)], runs)

    def rounds(self, items: list[tuple], runs: int | None = None) -> None:
        """Run each (key, fn, *args) once per round, round after round: ours and its
        baselines then share the machine's state of the moment (the host's cores are shared,
        and a slow spell during all of ours but none of a baseline's runs skewed ratios)."""
        runs = runs or self.env.plan.runs
        for i in range(runs):
            for key, fn, *args in items:
                if key in self.errors:
                    continue
                t0 = time.monotonic()
                try:
                    value = fn(self.env, *args)
                except Exception as exc:  # one broken scenario must not hide the others
                    self.errors[key] = f"{type(exc).__name__}: {exc}"
                    traceback.print_exc()
                    continue
                self.raw.setdefault(key, []).append(value)
                shown = {k: round(v, 2) for k, v in value.items() if isinstance(v, int | float)}
                elapsed = time.monotonic() - t0
                print(f"  {key} run {i + 1}/{runs} ({elapsed:.1f}s): {shown}", flush=True)


def run_sqlite_ingest(runner: Runner) -> None:
    env = runner.env
    path = ROOT / "var" / "bench" / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    environ = app_environ(f"sqlite:///{path}", env.redis.url(0))
    migrate_and_seed(environ)
    db = Database(environ)
    web = Gunicorn(environ, name="gunicorn-sqlite")
    try:
        runner.repeat("s5_sqlite", lambda e: scenarios.s5_ingest(e, db, web))
    finally:
        web.stop()
        db.close()


def run_scenario_2(runner: Runner) -> None:
    """Scenario 2 in alternating rounds (issue 16): PostgreSQL with the endpoints spread over
    ports, the same on one host:port, on SQLite (a database file of its own, `worker.py` at
    its defaults there: one process), and Celery gevent. Both Databases push an app context,
    so each scenario runs inside its own."""
    env = runner.env
    lite = sqlite_env(env, "bench-s2")

    def on(target: scenarios.Env, fn, *args):
        def run(_env: scenarios.Env) -> dict:
            with target.db.app.app_context():
                return fn(target, *args)

        return run

    try:
        runner.rounds(
            [
                ("s2_ours", on(env, scenarios.s23_ours, 0)),
                ("s2_one_port", on(env, scenarios.s23_ours, 0, None, True)),
                ("s2_sqlite", on(lite, scenarios.s23_ours, 0)),
                ("s2_celery_gevent", scenarios.s2_celery_gevent),
            ]
        )
    finally:
        lite.web.stop()
        lite.db.close()


def sqlite_env(env: scenarios.Env, name: str) -> scenarios.Env:
    """The bench's receivers and Redis, on a new SQLite file with its own gunicorn; one
    worker process expected (worker.py's default on SQLite)."""
    path = ROOT / "var" / "bench" / f"{name}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    environ = app_environ(f"sqlite:///{path}", env.redis.url(0))
    migrate_and_seed(environ)
    plan = scenarios.Plan(**{**env.plan.__dict__, "workers": 1})
    web = Gunicorn(environ, name=f"gunicorn-{name}")
    return scenarios.Env(plan, env.receivers, env.redis, environ, Database(environ), web)


def run_fanout(runner: Runner) -> None:
    env = runner.env
    scenarios.s6_prepare(env)
    workers = env.start_workers()
    try:
        runner.repeat("s6", lambda e: scenarios.s6_fanout(e, workers))
    finally:
        stop_all(workers)


def run_history(runner: Runner) -> None:
    """Scenario 8 (issue 16): bench/history_scenarios.py; the 10M PostgreSQL history is
    built once and kept (database bench_history_pg)."""
    history_scenarios.run(runner, PG_ADMIN_URL)


def run_retention(runner: Runner) -> None:
    """Scenario 9 (issue 16): scenario 2 with and without a purge of 1M old rows."""
    runner.start_group(9, "scenario 2 while retention purges 1M old rows")
    retention_bench.run(runner)


def rewrite_docs(path: Path) -> int:
    """Docs from a saved results file (e.g. after editing bench/findings.md)."""
    saved = json.loads(path.read_text())
    plan = scenarios.Plan(
        **{**saved["plan"], "s7_checkpoints": tuple(saved["plan"]["s7_checkpoints"])}
    )
    rows = report.build_rows(saved["raw"], plan)
    print(report.table(rows))
    report.write_docs(rows, saved["raw"], saved["errors"], plan, saved["machine"], saved["elapsed"])
    print("wrote docs/benchmarks.md and docs/benchmarks.svg")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1"
    )
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8,9", help="scenario numbers, e.g. 1,4")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker in scenario 1")
    parser.add_argument("--report", metavar="JSON", help="rewrite docs/ from a saved results file")
    parser.add_argument("--no-docs", action="store_true", help="print only, do not write docs/")
    args = parser.parse_args(argv)
    only = {int(x) for x in args.only.split(",") if x.strip()}
    if args.report:
        return rewrite_docs(Path(args.report))
    plan = scenarios.Plan.make(args.quick)
    started = time.time()
    print(f"bench: {'quick' if plan.quick else 'full'} mode, {plan.runs} run(s) each", flush=True)
    load_before = os.getloadavg()[0]
    env = scenarios.make_env(plan, PG_ADMIN_URL)
    env.profile = args.profile
    runner = Runner(env)
    cores = scenarios.CORES
    try:
        if 1 in only:
            runner.start_group(1, "fast receiver, deliveries queued first")
            runner.rounds(
                [
                    ("s1_ours", scenarios.s1_ours),
                    ("s1_loop", scenarios.s1_requests_loop),
                    ("s1_celery_prefork", scenarios.s1_celery, "prefork", cores),
                    ("s1_celery_gevent", scenarios.s1_celery, "gevent", 100),
                    ("s1_rq_simple", scenarios.s1_rq_simple),
                ]
            )
        if 2 in only:
            runner.start_group(2, "200 ms receivers, 100 endpoints")
            run_scenario_2(runner)
            runner.repeat("s2_ours_64_threads", scenarios.s23_ours, 0, 64, runs=1)
        if 3 in only:
            runner.start_group(3, "scenario 2 plus black-hole endpoints")
            runner.repeat("s3_ours", scenarios.s23_ours, plan.s3_blackholes)
        if 4 in only:
            runner.start_group(4, "steady 50 events/s, latency")
            runner.repeat("s4", scenarios.s4_latency)
        if 5 in only:
            runner.start_group(5, "ingest, fan-out to 3 endpoints")
            runner.repeat("s5_postgres", lambda e: scenarios.s5_ingest(e, e.db, e.web))
            # Schema validation's share of that ingest CPU (issue 15): A/B and in process.
            runner.repeat(
                "s5_validation",
                lambda e: validation_share.measure(
                    e.db, e.web, e.redis.url(0), e.plan.s5_events, rounds=2
                ),
                runs=1,
            )
            run_sqlite_ingest(runner)
        if 6 in only:
            runner.start_group(6, "one event to 1,000 endpoints")
            run_fanout(runner)
        if 7 in only:
            runner.start_group(7, "worker memory")
            runner.repeat("s7", scenarios.s7_memory, runs=1)
        if 8 in only:
            runner.start_group(8, "history: 10M rows (PostgreSQL), 1M (SQLite); after a run")
            run_history(runner)
        if 9 in only:
            run_retention(runner)
    finally:
        machine = report.machine_info(env)
        machine["load"] = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
        machine["core_checks"] = runner.core_checks
        machine["finished"] = time.time()
        env.web.stop()
        env.db.close()
        env.redis.stop()
        env.receivers.stop()
    elapsed = time.time() - started
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    raw_path = out / f"results-{'quick' if plan.quick else 'full'}.json"
    raw_path.write_text(
        json.dumps(
            {
                "plan": plan.__dict__,
                "raw": runner.raw,
                "errors": runner.errors,
                "machine": machine,
                "elapsed": elapsed,
            },
            indent=1,
        )
    )
    rows = report.build_rows(runner.raw, plan)
    print()
    print(report.table(rows))
    for key, message in runner.errors.items():
        print(f"ERROR {key}: {message}")
    print(f"\nbench took {elapsed / 60:.1f} min; raw results in {raw_path.relative_to(ROOT)}")
    if not args.no_docs:
        report.write_docs(rows, runner.raw, runner.errors, plan, machine, elapsed)
        print("wrote docs/benchmarks.md and docs/benchmarks.svg")
    return 1 if runner.errors else 0


if __name__ == "__main__":
    sys.exit(main())
