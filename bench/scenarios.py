"""The seven scenarios. Each returns metric rows; `run.py` repeats them and reports."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field

import redis
from rq import Queue

from . import baselines
from .load import Database, IngestClient, ingest_many, post_event
from .procs import (
    BIN,
    LOG_DIR,
    Child,
    Gunicorn,
    Receivers,
    RedisServer,
    app_environ,
    cpu_seconds,
    process_tree,
    rss_kib,
    start_workers,
    stop_all,
    wait_for,
)

CORES = os.cpu_count() or 1
CELERY_DB, RQ_PEER_DB = 1, 2


@dataclass
class Plan:
    """Sizes: full by default, smaller with --quick."""

    quick: bool
    runs: int = 3
    s1_deliveries: int = 2000
    s2_events: int = 40
    s2_endpoints: int = 100
    s3_blackholes: int = 10
    s4_rate: float = 50.0
    s4_seconds: float = 20.0
    s5_events: int = 2000
    s6_endpoints: int = 1000
    s7_checkpoints: tuple[int, int] = (5000, 50000)
    workers: int = CORES
    s7_time_limit: float = 420.0

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True,
            runs=1,
            s1_deliveries=1000,
            s2_events=20,
            s4_seconds=8.0,
            s5_events=600,
            s7_checkpoints=(1000, 10000),
        )


@dataclass
class Env:
    """What every scenario shares: receivers, Redis, the database, gunicorn."""

    plan: Plan
    receivers: Receivers
    redis: RedisServer
    environ: dict[str, str]  # the app's environment (PostgreSQL)
    db: Database
    web: Gunicorn
    notes: list[str] = field(default_factory=list)
    profile: bool = False

    def rq_workers_registered(self) -> int:
        return redis.Redis.from_url(self.redis.url(0)).scard("rq:workers")

    def start_workers(self, processes: int | None = None, **extra: str) -> list[Child]:
        """`python worker.py` (one process per core by default), up and registered."""
        children = start_workers({**self.environ, **extra}, processes)
        expected = processes or self.plan.workers
        wait_for(lambda: self.rq_workers_registered() >= expected, 60, 0.05, "RQ workers up")
        return children

    def clean(self) -> None:
        """An empty delivery pipeline: no events, endpoints or jobs; receivers zeroed."""
        self.db.reset()
        redis.Redis.from_url(self.redis.url(0)).flushdb()
        self.receivers.reset()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def latencies_ms(env: Env, sent, mode: str) -> list[float]:
    """Ingest-to-receipt per delivery: receipt time minus when the 202 came back."""
    answered = {s.event_id: s.answered_at for s in sent}
    return [
        (t - answered[wid]) * 1000
        for m, _port, wid, t in env.receivers.dump()
        if m == mode and wid in answered
    ]


def steady_rate(env: Env, mode: str) -> float:
    times = sorted(t for m, _p, _w, t in env.receivers.dump() if m == mode)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


# --- 1. fast receiver, queued first --------------------------------------------------------


def s1_ours(env: Env) -> dict:
    n = env.plan.s1_deliveries
    env.clean()
    env.db.add_endpoints(env.receivers.urls("fast", 1))
    ingest_many(env.web.url, n, threads=4)
    assert env.db.deliveries() == n
    env.receivers.reset()
    started = time.time()
    workers = start_workers(env.environ)
    profiler = None
    if env.profile:
        time.sleep(1.0)  # let the supervisor start its worker processes
        profiler = profile(process_tree(workers[0].pid)[-1], "s1-worker")
    try:
        wait_for(lambda: env.db.succeeded() >= n, 300, 0.05, f"{n} deliveries succeeded")
        elapsed = time.time() - started
        cpu = sum(cpu_seconds(p) for w in workers for p in process_tree(w.pid))
    finally:
        if profiler is not None:
            profiler.stop(signal.SIGINT)
        stop_all(workers)
    return {"rate": n / elapsed, "steady": steady_rate(env, "fast"), "cpu_ms": cpu * 1000 / n}


def profile(pid: int, name: str) -> Child:
    """py-spy record of a process (with --profile), collapsed stacks under var/bench/."""
    out = LOG_DIR.parent / f"profile-{name}.txt"
    argv = [
        str(BIN / "py-spy"),
        "record",
        "-p",
        str(pid),
        "-o",
        str(out),
        "-r",
        "200",
        "-f",
        "raw",
    ]
    return Child(f"py-spy-{name}", [*argv, "--threads", "--gil"])


def s1_requests_loop(env: Env) -> dict:
    n = env.plan.s1_deliveries
    env.receivers.reset()
    started = time.time()
    baselines.requests_loop(env.receivers.urls("fast", 1)[0], n)
    return {"rate": n / (time.time() - started)}


def drain_queued(env: Env, n: int, start_peer) -> dict:
    """Time a peer from its start until the fast receiver has the `n` queued posts."""
    started = time.time()
    child = start_peer()
    try:
        elapsed = env.receivers.wait_count("fast", n, 300) - started  # its n-th receipt
    finally:
        child.stop()
    return {"rate": n / elapsed, "steady": steady_rate(env, "fast")}


def queue_celery(env: Env, urls: list[str], n: int, timeout: float) -> None:
    os.environ["BENCH_CELERY_BROKER"] = env.redis.url(CELERY_DB)
    app = baselines.celery_app()
    task = app.tasks["bench.post"]
    body = baselines.BODY.decode()
    with app.producer_or_acquire() as prod:
        for i in range(n):
            task.apply_async((urls[i % len(urls)], body, timeout, f"celery-{i}"), producer=prod)


def start_celery(env: Env, pool: str, concurrency: int) -> Child:
    argv = [str(BIN / "celery"), "-A", "bench.celery_app", "worker", "--pool", pool]
    argv += ["-c", str(concurrency), "--loglevel", "WARNING"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return Child(f"celery-{pool}", argv, {"BENCH_CELERY_BROKER": env.redis.url(CELERY_DB)})


def s1_celery(env: Env, pool: str, concurrency: int) -> dict:
    n = env.plan.s1_deliveries
    redis.Redis.from_url(env.redis.url(CELERY_DB)).flushdb()
    env.receivers.reset()
    queue_celery(env, env.receivers.urls("fast", 1), n, 10)
    return drain_queued(env, n, lambda: start_celery(env, pool, concurrency))


def s1_rq_simple(env: Env) -> dict:
    n = env.plan.s1_deliveries
    conn = redis.Redis.from_url(env.redis.url(RQ_PEER_DB))
    conn.flushdb()
    env.receivers.reset()
    queue = Queue("bench", connection=conn)
    url = env.receivers.urls("fast", 1)[0]
    jobs = [
        Queue.prepare_data(
            "bench.baselines.post", (url, baselines.BODY, 10, f"rq-{i}"), result_ttl=0
        )
        for i in range(n)
    ]
    for start in range(0, n, 500):
        with conn.pipeline() as pipe:
            queue.enqueue_many(jobs[start : start + 500], pipeline=pipe)
            pipe.execute()
    argv = [str(BIN / "rq"), "worker", "-w", "rq.worker.SimpleWorker", "--burst"]
    argv += ["-u", env.redis.url(RQ_PEER_DB), "--logging_level", "WARNING", "bench"]
    return drain_queued(env, n, lambda: Child("rq-simple", argv))


# --- 2 and 3. 200 ms receivers, 100 endpoints (+ black holes) -------------------------------


def s23_ours(env: Env, blackholes: int, threads: int | None = None, one_port: bool = False) -> dict:
    """Scenarios 2 and 3; `one_port`: the 100 endpoints are paths on one host:port."""
    plan = env.plan
    env.clean()
    urls = env.receivers.urls("slow", plan.s2_endpoints, one_port=one_port)
    healthy = env.db.add_endpoints(urls)
    if blackholes:
        env.db.add_endpoints(env.receivers.urls("blackhole", blackholes))
    extra = {"WEBHOOK_DELIVERY_TIMEOUT": "5"} if blackholes else {}
    if threads:
        extra["WEBHOOK_WORKER_THREADS"] = str(threads)
    workers = env.start_workers(**extra)
    n = plan.s2_events * len(healthy)
    try:
        started = time.time()
        sent = ingest_many(env.web.url, plan.s2_events, threads=4)
        done = env.receivers.wait_count("slow", n, 600)
        elapsed = done - started
        lat = latencies_ms(env, sent, "slow")
    finally:
        stop_all(workers)
    return {
        "rate": n / elapsed,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "blackhole_hits": env.receivers.counts()["blackhole"],
    }


def s2_celery_gevent(env: Env) -> dict:
    plan = env.plan
    redis.Redis.from_url(env.redis.url(CELERY_DB)).flushdb()
    env.receivers.reset()
    child = start_celery(env, "gevent", 100)
    try:
        # Warm: the worker is up and consuming before the clock starts (as ours is).
        queue_celery(env, env.receivers.urls("fast", 1), 1, 5)
        env.receivers.wait_count("fast", 1, 60)
        env.receivers.reset()
        n = plan.s2_events * plan.s2_endpoints
        started = time.time()
        queue_celery(env, env.receivers.urls("slow", plan.s2_endpoints), n, 15)
        done = env.receivers.wait_count("slow", n, 600)
    finally:
        child.stop()
    return {"rate": n / (done - started)}


# --- 4. steady 50 events/s ------------------------------------------------------------------


def s4_latency(env: Env) -> dict:
    plan = env.plan
    env.clean()
    env.db.add_endpoints(env.receivers.urls("fast", 1))
    workers = env.start_workers()
    try:
        count = int(plan.s4_rate * plan.s4_seconds)
        sent = ingest_many(env.web.url, count, threads=4, rate=plan.s4_rate)
        env.receivers.wait_count("fast", count, 120)
        lat = latencies_ms(env, sent, "fast")
        queued = env.db.column(QUEUE_DELAY_SQL)
    finally:
        stop_all(workers)
    return {
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "max": max(lat),
        "to_attempt_p50": pct(queued, 50),
        "to_attempt_p99": pct(queued, 99),
    }


# Where the time goes: from the event's received_at (ingest) to its attempt's started_at
# (claimed, about to POST), in ms; both written by the app with the same host clock.
QUEUE_DELAY_SQL = """
SELECT extract(epoch FROM a.started_at - e.received_at) * 1000
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.id = d.event_id
"""


# --- 5. ingest ------------------------------------------------------------------------------


def s5_ingest(env: Env, db: Database, web: Gunicorn) -> dict:
    db.reset()
    redis.Redis.from_url(env.redis.url(0)).flushdb()
    db.add_endpoints(env.receivers.urls("fast", 3))
    ingest_many(web.url, 50, threads=4)  # warm the gunicorn workers
    started = time.time()
    sent = ingest_many(web.url, env.plan.s5_events, threads=4)
    elapsed = time.time() - started
    times = [s.response_ms for s in sent]
    return {"rate": len(sent) / elapsed, "p50": pct(times, 50), "p99": pct(times, 99)}


# --- 6. one event, 1,000 endpoints ----------------------------------------------------------


def s6_prepare(env: Env) -> None:
    env.clean()
    env.db.add_endpoints(env.receivers.urls("fast", env.plan.s6_endpoints))


def s6_fanout(env: Env, workers: list[Child]) -> dict:
    n = env.plan.s6_endpoints
    env.receivers.reset()
    client = IngestClient(env.web.url)
    sent = post_event(client)
    client.close()
    if sent.status != 202:
        raise RuntimeError(f"ingest answered {sent.status}")
    env.receivers.wait_count("fast", n, 120)
    last = max(t for m, _p, _w, t in env.receivers.dump() if m == "fast")
    return {"to_202_ms": sent.response_ms, "all_delivered_s": last - sent.sent_at}


# --- 7. worker memory -----------------------------------------------------------------------


def s7_memory(env: Env) -> dict:
    first, total = env.plan.s7_checkpoints
    fanout = 100
    env.clean()
    env.db.add_endpoints(env.receivers.urls("fast", fanout))
    workers = env.start_workers(processes=1)
    pid = workers[0].pid
    series: list[tuple[int, int]] = []
    result: dict[str, float] = {"start_kib": rss_kib(pid)}
    feeder = threading.Thread(
        target=ingest_many, args=(env.web.url, total // fanout), kwargs={"threads": 2}, daemon=True
    )
    try:
        feeder.start()
        deadline = time.monotonic() + env.plan.s7_time_limit
        while True:
            done = env.db.succeeded()
            rss = rss_kib(pid)
            series.append((done, rss))
            if "first_kib" not in result and done >= first:
                result["first_kib"] = rss
                result["first_at"] = done
            if done >= total or (time.monotonic() > deadline and "first_kib" in result):
                # Past the time limit: report what was reached, under its real count.
                result["last_kib"] = rss
                result["last_at"] = done
                break
            if time.monotonic() > deadline + 300:
                raise TimeoutError("scenario 7 did not reach its first checkpoint")
            time.sleep(0.25)
        feeder.join(1)
    finally:
        stop_all(workers)
    result["growth_pct"] = (result["last_kib"] / result["first_kib"] - 1) * 100
    result["series"] = series
    return result


def summarize(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def make_env(plan: Plan, pg_admin_url: str) -> Env:
    from .procs import migrate_and_seed, prepare_postgres

    receivers = Receivers(fast=4, slow=8, blackhole=2)
    redis_server = RedisServer()
    # BENCH_DB_NAME: two benchmarks at once on one server must not drop each other's database.
    database_url = prepare_postgres(pg_admin_url, os.environ.get("BENCH_DB_NAME", "bench"))
    environ = app_environ(database_url, redis_server.url(0))
    migrate_and_seed(environ)
    db = Database(environ)
    web = Gunicorn(environ)
    return Env(plan, receivers, redis_server, environ, db, web)
