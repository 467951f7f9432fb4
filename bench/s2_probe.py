"""Where scenario 2's time goes (issue 16): one run of scenario 2 per case, with the receipts
per 0.1 s (how many requests were in flight) and the worker's CPU per delivery:

    BENCH_DB_NAME=bench_fast PYTHONPATH=. .venv/bin/python -m bench.s2_probe \
        ROUNDS /tmp/old@pg:spread pg:spread sqlite:spread:WEBHOOK_WORKER_THREADS=256 ...

Each case is [TREE@]DB:LAYOUT[:ENV=VALUE,...] (LAYOUT: spread, one_port or fast; TREE:
another checkout, e.g. the old code; the pairs go to the worker); every round runs every
case, so the cases share the machine's state of the moment. Options, in the environment:
- BENCH_PROBE_DUMP=1: `py-spy dump` of each worker process mid-run (at 1, 2 and 3 s, or at
  the seconds in BENCH_PROBE_DUMP_AT), threads counted by the function they wait in;
- BENCH_PROBE_PROFILE=DIR: each worker process's collapsed stacks there (`py-spy record
  --gil`: the thread holding the GIL; it slows the worker several times, so read shares,
  not rates; BENCH_PROBE_NONBLOCKING=1 samples without pausing it, at the rate it runs);
- BENCH_PROBE_CPU=1: where the machine's CPU went in the window, by kind of process
  (`cpu_share.py`);
- BENCH_PROBE_VERBOSE=1: the receipts per 0.1 s, when each event was answered, the dumps."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import cpu_share, procs, scenarios
from .load import Database, ingest_many
from .run import PG_ADMIN_URL

HERE = procs.ROOT
# When to dump the worker's threads, in seconds after the first ingest (BENCH_PROBE_DUMP_AT).
DUMP_AT = [float(s) for s in os.environ.get("BENCH_PROBE_DUMP_AT", "1,2,3").split(",")]


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
            [str(procs.BIN / "py-spy"), "dump", "--nonblocking", "--pid", str(pid)],
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


def one(env: scenarios.Env, layout: str, extra: dict[str, str], tree: Path) -> dict:
    """One run; `layout`: spread (200 ms receivers over their ports), one_port (all on one),
    fast (the fast receivers instead: the writes' share, as in scenario 1)."""
    plan = env.plan
    env.clean()
    mode = "fast" if layout == "fast" else "slow"
    urls = env.receivers.urls(mode, plan.s2_endpoints, one_port=layout == "one_port")
    env.db.add_endpoints(urls)
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
            for at in DUMP_AT:
                time.sleep(max(0.0, at - (time.time() - started)))
                dumps.append(f" at {at:.1f}s\n" + dump_threads(workers_only))

        threading.Thread(target=take, daemon=True).start()
    profilers = []
    if os.environ.get("BENCH_PROBE_PROFILE"):  # a folder: collapsed stacks per worker process
        for pid in workers_only:
            out = Path(os.environ["BENCH_PROBE_PROFILE"]) / f"{tree.name}-{pid}.txt"
            argv = [str(procs.BIN / "py-spy"), "record", "--pid", str(pid), "--format", "raw"]
            argv += ["--rate", "200", "--gil", "--output", str(out)]  # the thread holding the GIL
            if os.environ.get("BENCH_PROBE_NONBLOCKING") == "1":
                argv.append("--nonblocking")  # never pauses the worker: shares as it runs
            profilers.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
    share = cpu_share.CpuShare() if os.environ.get("BENCH_PROBE_CPU") == "1" else None
    try:
        if share is not None:
            share.start()
        started = time.time()
        sent = ingest_many(env.web.url, plan.s2_events, threads=4)
        ingested = time.time()
        done = env.receivers.wait_count(mode, n, 600)
        cpu = sum(procs.cpu_seconds(p) for p in pids) - cpu0
        if share is not None:
            share.stop()
    finally:
        for profiler in profilers:
            profiler.send_signal(2)  # py-spy writes its file on SIGINT
            profiler.wait(30)
        procs.stop_all(workers)
    times = sorted(t for m, _p, _w, t in env.receivers.dump() if m == mode)
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
        "cpu_share": share.report() if share is not None else "",
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
                    result = one(envs[name], layout, extra, tree)
                print(
                    f"round {r + 1} {tree.name} {name} {layout} {extra}: {result['rate']:.0f}/s "
                    f"ingest {result['ingest_s']:.2f}s first receipt "
                    f"{result['first_receipt_s']:.2f}s cpu/delivery {result['cpu_ms']:.2f} ms"
                    f" load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                if result["cpu_share"]:
                    print(result["cpu_share"], flush=True)
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
