"""Where scenario 2's time goes (issue 16): one run of scenario 2 per case, with the receipts
per 0.1 s (how many requests were in flight), the worker's CPU per delivery and, with
BENCH_PROBE_DUMP=1, `py-spy dump` of each worker process mid-run (threads counted by the
function they wait in):

    BENCH_DB_NAME=bench_fast PYTHONPATH=. .venv/bin/python -m bench.s2_probe \
        ROUNDS /tmp/old@pg:spread pg:spread sqlite:spread:WEBHOOK_WORKER_THREADS=256 ...

Each case is [TREE@]DB:LAYOUT[:ENV=VALUE,...] (TREE: another checkout, e.g. the old code) (the pairs go to the worker); every round runs every
case, so the cases share the machine's state of the moment. BENCH_PROBE_VERBOSE=1 prints the
receipts per 0.1 s, when each event was answered, and the dumps."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import procs, scenarios
from .load import Database, ingest_many
from .run import PG_ADMIN_URL

HERE = procs.ROOT


def sqlite_env(env: scenarios.Env, name: str) -> scenarios.Env:
    path = procs.ROOT / "var" / "bench" / f"{name}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        procs.Path(str(path) + suffix).unlink(missing_ok=True)
    environ = procs.app_environ(f"sqlite:///{path}", env.redis.url(0))
    procs.migrate_and_seed(environ)
    plan = scenarios.Plan(**{**env.plan.__dict__, "workers": 1})
    return scenarios.Env(
        plan, env.receivers, env.redis, environ, Database(environ), procs.Gunicorn(environ)
    )


def dump_threads(pids: list[int]) -> str:
    lines = []
    for pid in pids:
        out = subprocess.run(
            [str(procs.BIN / "py-spy"), "dump", "--pid", str(pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        waits: collections.Counter[str] = collections.Counter()
        for block in out.split("\nThread ")[1:]:
            frames = [ln.strip() for ln in block.splitlines()[1:] if ln.strip()]
            top = " <- ".join(f.split(" (")[0] for f in frames[:3]) if frames else "?"
            waits[top] += 1
        lines.append(f"  pid {pid}:")
        lines += [f"    {n:4d} {where}" for where, n in waits.most_common(12)]
    return "\n".join(lines)


def one(env: scenarios.Env, one_port: bool, extra: dict[str, str], tree: Path) -> dict:
    plan = env.plan
    env.clean()
    env.db.add_endpoints(env.receivers.urls("slow", plan.s2_endpoints, one_port=one_port))
    procs.ROOT = tree  # the worker.py and code of this tree (the database is shared)
    try:
        workers = env.start_workers(**extra, PYTHONPATH=str(tree))
    finally:
        procs.ROOT = HERE
    pids = procs.process_tree(workers[0].pid)
    workers_only = pids[1:] or pids
    n = plan.s2_events * plan.s2_endpoints
    cpu0 = sum(procs.cpu_seconds(p) for p in pids)
    dumps: list[str] = []
    started = time.time()
    if os.environ.get("BENCH_PROBE_DUMP") == "1":

        def take() -> None:
            for at in (1.0, 2.0, 3.0):
                time.sleep(max(0.0, at - (time.time() - started)))
                dumps.append(f" at {at:.1f}s\n" + dump_threads(workers_only))

        threading.Thread(target=take, daemon=True).start()
    try:
        started = time.time()
        sent = ingest_many(env.web.url, plan.s2_events, threads=4)
        ingested = time.time()
        done = env.receivers.wait_count("slow", n, 600)
        cpu = sum(procs.cpu_seconds(p) for p in pids) - cpu0
    finally:
        procs.stop_all(workers)
    times = sorted(t for m, _p, _w, t in env.receivers.dump() if m == "slow")
    buckets = collections.Counter(int((t - started) * 10) for t in times)
    timeline = [buckets.get(i, 0) * 2 for i in range(max(buckets) + 1)]  # in flight ~ x2
    return {
        "rate": n / (done - started),
        "ingest_s": ingested - started,
        "first_receipt_s": times[0] - started,
        "cpu_ms": cpu / n * 1000,
        "in_flight_per_0.1s": timeline,
        "dumps": dumps,
        "answered_s": sorted(round(s.answered_at - started, 2) for s in sent),
    }


def main() -> None:
    """Each argument is a case [TREE@]DB:LAYOUT[:ENV=VALUE,...]; each round runs every
    case. TREE: another checkout (its worker.py and code; e.g. `git worktree add`)."""
    rounds = int(sys.argv[1])
    cases = []
    for arg in sys.argv[2:]:
        tree, _, arg = arg.rpartition("@")
        name, layout, *rest = arg.split(":")
        extra = dict(a.split("=", 1) for a in rest[0].split(",")) if rest else {}
        cases.append((Path(tree).resolve() if tree else HERE, name, layout, extra))
    plan = scenarios.Plan.make(False)
    # On a host shared with other benchmarks gunicorn can take over 30 s to come up.
    wait_for = procs.wait_for
    procs.wait_for = lambda fn, timeout, *a, **k: wait_for(fn, timeout * 4, *a, **k)
    env = scenarios.make_env(plan, PG_ADMIN_URL)
    envs = {"pg": env}
    try:
        if any(c[1] == "sqlite" for c in cases):
            envs["sqlite"] = sqlite_env(env, "s2-probe")
        for r in range(rounds):
            for tree, name, layout, extra in cases:
                with envs[name].db.app.app_context():  # both Databases are pushed
                    result = one(envs[name], layout == "one_port", extra, tree)
                print(
                    f"round {r + 1} {tree.name} {name} {layout} {extra}: {result['rate']:.0f}/s "
                    f"ingest {result['ingest_s']:.2f}s first receipt "
                    f"{result['first_receipt_s']:.2f}s cpu/delivery {result['cpu_ms']:.2f} ms"
                    f" load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                if os.environ.get("BENCH_PROBE_VERBOSE") == "1":
                    print("  in flight per 0.1 s:", result["in_flight_per_0.1s"], flush=True)
                    print("  events answered at:", result["answered_s"], flush=True)
                    for d in result["dumps"]:
                        print(d, flush=True)
    finally:
        for e in reversed(envs.values()):
            e.web.stop()
            e.db.close()
        env.redis.stop()
        env.receivers.stop()


if __name__ == "__main__":
    main()
