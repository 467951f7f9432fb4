"""Turn raw results into rows, a console table, docs/benchmarks.md and docs/benchmarks.svg."""

from __future__ import annotations

import html
import platform
import sqlite3
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from .procs import ROOT, WEB_WORKER_OPTIONS, WEB_WORKERS

WEB_COMMAND = f"gunicorn -w {WEB_WORKERS} {' '.join(WEB_WORKER_OPTIONS)} wsgi:app"

DOCS = ROOT / "docs"
FINDINGS = Path(__file__).with_name("findings.md")
LIVE_RESULTS = Path(__file__).with_name("live_results.md")
# The page benchmark at 10M (bench/pages.py prints; its sections are written by hand here).
PAGES_RESULTS = Path(__file__).with_name("pages_results.md")


@dataclass
class Row:
    section: str
    name: str
    unit: str
    median: float
    low: float
    high: float
    runs: int
    target: str = ""
    met: bool | None = None
    chart: bool = False  # a throughput bar in the SVG


def stat(raw: dict, key: str, field: str) -> tuple[float, float, float, int] | None:
    values = [r[field] for r in raw.get(key, []) if field in r]
    if not values:
        return None
    return statistics.median(values), min(values), max(values), len(values)


def build_rows(raw: dict, plan) -> list[Row]:
    rows: list[Row] = []

    def add(section, name, unit, key, field, target="", check=None, chart=False):
        s = stat(raw, key, field)
        if s is None:
            return None
        met = check(s[0]) if check else None
        rows.append(Row(section, name, unit, *s, target=target, met=met, chart=chart))
        return s[0]

    def ratio(section, name, key_a, key_b, target, threshold):
        """Median of the per-round ratios (the runs alternate: round i of both shared the
        machine's state); the ratio of the medians when the runs do not pair up."""
        a, b = raw.get(key_a, []), raw.get(key_b, [])
        if not a or not b:
            return None
        if len(a) == len(b):
            ratios = [x["rate"] / y["rate"] for x, y in zip(a, b, strict=True) if y["rate"]]
        else:
            ratios = [stat(raw, key_a, "rate")[0] / stat(raw, key_b, "rate")[0]]
        r, low, high = statistics.median(ratios), min(ratios), max(ratios)
        rows.append(Row(section, name, "x", r, low, high, len(ratios), target, r >= threshold))
        return r

    s1 = "1 fast receiver"
    add(s1, "ours (worker.py)", "deliv/s", "s1_ours", "rate", chart=True)
    add(s1, "ours, steady state (first to last receipt)", "deliv/s", "s1_ours", "steady")
    add(s1, "ours, worker CPU per delivery", "ms", "s1_ours", "cpu_ms")
    add(s1, "requests.Session loop", "deliv/s", "s1_loop", "rate", chart=True)
    add(s1, "Celery prefork c=cores", "deliv/s", "s1_celery_prefork", "rate", chart=True)
    add(s1, "Celery gevent c=100", "deliv/s", "s1_celery_gevent", "rate", chart=True)
    add(s1, "RQ SimpleWorker", "deliv/s", "s1_rq_simple", "rate", chart=True)
    to_loop = ratio(
        s1, "ours / requests loop", "s1_ours", "s1_loop", ">= 0.40 (stretch 0.60)", 0.40
    )
    if to_loop:
        rows[-1].name += f" ({to_loop / 0.60:.0%} of the 0.60 stretch)"
    ratio(s1, "ours / Celery prefork", "s1_ours", "s1_celery_prefork", ">= 1.0", 1.0)

    s2 = "2 200 ms receivers"
    ours2 = add(
        s2, "ours", "deliv/s", "s2_ours", "rate", ">= 1,000", lambda v: v >= 1000, chart=True
    )
    add(s2, "Celery gevent c=100", "deliv/s", "s2_celery_gevent", "rate", chart=True)
    ratio(s2, "ours / Celery gevent", "s2_ours", "s2_celery_gevent", ">= 2.0", 2.0)
    rows += s2_sqlite_and_one_port_rows(raw, s2)
    p99_2 = add(s2, "ours ingest-to-receipt p99", "ms", "s2_ours", "p99")
    add(s2, "ours ingest-to-receipt p50", "ms", "s2_ours", "p50")
    add(
        s2,
        "ours, WEBHOOK_WORKER_THREADS=64 (1 run; the default: see the header)",
        "deliv/s",
        "s2_ours_64_threads",
        "rate",
        chart=True,
    )
    add(s2, "ours, 64 threads, p99", "ms", "s2_ours_64_threads", "p99")

    s3 = f"3 + {plan.s3_blackholes} black holes"
    if ours2:
        add(
            s3,
            "healthy throughput",
            "deliv/s",
            "s3_ours",
            "rate",
            f">= {0.8 * ours2:.0f} (80% of s2)",
            lambda v: v >= 0.8 * ours2,
            chart=True,
        )
    if p99_2:
        add(
            s3,
            "healthy ingest-to-receipt p99",
            "ms",
            "s3_ours",
            "p99",
            f"<= {2 * p99_2:.0f} (2x s2)",
            lambda v: v <= 2 * p99_2,
        )
    add(s3, "healthy ingest-to-receipt p50", "ms", "s3_ours", "p50")
    add(s3, "requests that reached the black holes", "req", "s3_ours", "blackhole_hits")

    s4 = f"4 steady {plan.s4_rate:g} ev/s"
    add(s4, "ingest-to-receipt p50", "ms", "s4", "p50", "<= 25", lambda v: v <= 25)
    add(s4, "ingest-to-receipt p99", "ms", "s4", "p99", "<= 100", lambda v: v <= 100)
    add(s4, "ingest-to-receipt max", "ms", "s4", "max")
    add(s4, "event received to POST start (app clock), p50", "ms", "s4", "to_attempt_p50")
    add(s4, "event received to POST start (app clock), p99", "ms", "s4", "to_attempt_p99")

    s5 = "5 ingest, fan-out 3"
    add(s5, "PostgreSQL", "events/s", "s5_postgres", "rate", ">= 500", lambda v: v >= 500)
    add(s5, "PostgreSQL response p99", "ms", "s5_postgres", "p99")
    add(s5, "SQLite", "events/s", "s5_sqlite", "rate")
    add(s5, "SQLite response p99", "ms", "s5_sqlite", "p99")
    add(
        s5,
        "web CPU per event, schema enforced",
        "ms",
        "s5_validation",
        "cpu_ms_per_event_with_schema",
    )
    add(
        s5, "web CPU per event, no schema", "ms", "s5_validation", "cpu_ms_per_event_without_schema"
    )
    add(s5, "schema validation per event", "us", "s5_validation", "validation_us_per_event")
    add(
        s5,
        "validation's share of ingest CPU",
        "%",
        "s5_validation",
        "micro_share_pct",
        "<= 10 (else try fastjsonschema)",
        lambda v: v <= 10,
    )

    s6 = f"6 one event to {plan.s6_endpoints}"
    add(s6, "time to 202", "ms", "s6", "to_202_ms", "<= 500", lambda v: v <= 500)
    add(s6, "time until all delivered", "s", "s6", "all_delivered_s", "<= 5", lambda v: v <= 5)

    first, last = plan.s7_checkpoints
    s7 = "7 worker memory"
    add(s7, f"RSS after {first:,} deliveries", "MiB", "s7", "first_kib")
    reached = stat(raw, "s7", "last_at")
    if reached:
        last = int(reached[0])
    add(s7, f"RSS after {last:,} deliveries", "MiB", "s7", "last_kib")
    add(s7, "growth", "%", "s7", "growth_pct", "<= 10", lambda v: v <= 10)
    rows += history_rows(raw)
    rows += retention_rows(raw)
    for row in rows:
        if row.unit == "MiB":
            row.median, row.low, row.high = (v / 1024 for v in (row.median, row.low, row.high))
    return rows


def s2_sqlite_and_one_port_rows(raw: dict, section: str) -> list[Row]:
    """Scenario 2 on SQLite and with all 100 endpoints on one host:port (issue 16), run in
    alternating rounds with s2_ours: the one-port ratio is the median of per-round ratios."""
    rows = []
    for key, name, target, floor in (
        ("s2_sqlite", "ours on SQLite (one worker process per core)", ">= 600", 600.0),
        ("s2_one_port", "ours, 100 endpoints on one host:port", "", None),
    ):
        s = stat(raw, key, "rate")
        if s is not None:
            met = None if floor is None else s[0] >= floor
            rows.append(Row(section, name, "deliv/s", *s, target=target, met=met, chart=True))
    one, spread = raw.get("s2_one_port", []), raw.get("s2_ours", [])
    if one and spread:
        ratios = [a["rate"] / b["rate"] for a, b in zip(one, spread, strict=False) if b["rate"]]
        r = statistics.median(ratios)
        rows.append(
            Row(
                section,
                "one host:port / spread over ports",
                "x",
                r,
                min(ratios),
                max(ratios),
                len(ratios),
                ">= 0.90",
                r >= 0.90,
            )
        )
    return rows


def history_rows(raw: dict) -> list[Row]:
    """Scenario 8 (issue 16, bench/history_scenarios.py): history/empty and after/fresh, the
    median of the per-round ratios (each round ran both, alternating which went first)."""
    rows: list[Row] = []
    build = (raw.get("s8_build") or [{}])[-1]

    def ratio(section: str, name: str, key_a: str, key_b: str, threshold: float) -> None:
        pairs = zip(raw.get(key_a, []), raw.get(key_b, []), strict=False)
        ratios = [a["rate"] / b["rate"] for a, b in pairs if b["rate"]]
        if ratios:
            r = statistics.median(ratios)
            low, high = min(ratios), max(ratios)
            rows.append(
                Row(
                    section, name, "x", r, low, high, len(ratios), f">= {threshold}", r >= threshold
                )
            )

    for db, label, threshold in (("pg", "PostgreSQL", 0.90), ("sqlite", "SQLite", 0.85)):
        section = f"8 history, {label}"
        n = build.get(f"{db}_rows")
        size = f"{n:,} rows of history" if n else "history"
        for s in ("1", "2"):
            history, empty = f"s8_{db}_s{s}_history", f"s8_{db}_s{s}_empty"
            ratio(section, f"scenario {s} at {size} / empty", history, empty, threshold)
        after, fresh = f"s8_{db}_s2_after", f"s8_{db}_s2_fresh"
        ratio(section, "scenario 2 after one earlier run / fresh", after, fresh, 0.90)
        for key in (f"s8_{db}_s{s}_{kind}" for s in "12" for kind in ("history", "empty")):
            stats = stat(raw, key, "rate")
            if stats:
                _, _, s, kind = key.split("_")
                rows.append(Row(section, f"scenario {s[1]}, {kind}", "deliv/s", *stats))
        seconds = build.get(f"{db}_build_s")
        if seconds:
            name = f"history build ({n:,} rows, once: the database is kept)"
            rows.append(Row(section, name, "s", seconds, seconds, seconds, 1))
    return rows


def retention_rows(raw: dict) -> list[Row]:
    """Scenario 9 (issue 16, bench/retention_bench.py): scenario 2 while a purge of 1M old
    rows runs, against scenario 2 beside the same history, alternating rounds."""
    rows: list[Row] = []
    section = "9 retention purge"
    history = raw.get("s9_history", [{}])[0]
    with_purge, without = raw.get("s9_with_purge", []), raw.get("s9_without", [])
    pairs = list(zip(with_purge, without, strict=False))
    if pairs:
        ratios = [w["rate"] / o["rate"] for w, o in pairs if o["rate"]]
        r = statistics.median(ratios)
        rows.append(
            Row(
                section,
                f"s2 while purging {history.get('rows', 0):,} old rows / without",
                "x",
                r,
                min(ratios),
                max(ratios),
                len(ratios),
                ">= 0.80",
                r >= 0.80,
            )
        )

    def add(name, unit, key, field):
        s = stat(raw, key, field)
        if s is not None:
            rows.append(Row(section, name, unit, *s))

    add("s2 beside the history, no purge", "deliv/s", "s9_without", "rate")
    add("s2 while the purge runs", "deliv/s", "s9_with_purge", "rate")
    add("purge during s2, deliveries", "deliv/s", "s9_with_purge", "purge_deliveries_per_s")
    add("whole purge (rounds + rest), rows", "rows/s", "s9_purge", "rows_per_s")
    add("whole purge, deliveries", "deliv/s", "s9_purge", "deliveries_per_s")
    add("purge time (rounds + rest)", "s", "s9_purge", "seconds")
    add(
        "whole purge time (projected if the rest was cut short)",
        "s",
        "s9_purge",
        "projected_seconds",
    )
    add("longest purge batch (one transaction)", "ms", "s9_purge", "longest_batch_ms")
    add("longest purge statement", "ms", "s9_purge", "longest_statement_ms")
    add("due rows left after the purge", "rows", "s9_purge", "due_left")
    return rows


def fmt(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def verdict(row: Row) -> str:
    return "" if row.met is None else ("met" if row.met else "NOT met")


def table(rows: list[Row]) -> str:
    header = f"{'scenario':<24} {'metric':<52} {'median':>9} {'min':>9} {'max':>9} {'unit':<8} {'target':<24} verdict"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.section:<24} {r.name[:52]:<52} {fmt(r.median):>9} {fmt(r.low):>9} "
            f"{fmt(r.high):>9} {r.unit:<8} {r.target:<24} {verdict(r)}"
        )
    return "\n".join(lines)


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info(env) -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    try:
        pg = env.db.app.extensions["sqlalchemy"].engine
        with pg.connect() as conn:
            pg_version = conn.execute(text("SHOW server_version")).scalar()
    except Exception as exc:  # the report must still be written
        pg_version = f"? ({type(exc).__name__})"
    import celery
    import gevent
    import rq

    settings = env.db.app.config["SETTINGS"]
    return {
        "workers": f"one `python worker.py` with its defaults ({env.plan.workers} processes "
        f"on this host, {settings.worker_threads} delivery threads each)",
        "nproc": str(env.plan.workers),
        "web_workers": WEB_WORKERS,
        "web_command": WEB_COMMAND,
        "memory": mem,
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": str(pg_version),
        "sqlite": sqlite3.sqlite_version,
        "redis": _run(["redis-server", "--version"]).split(" v=")[-1].split(" ")[0],
        "libraries": f"rq {rq.__version__}, celery {celery.__version__}, gevent {gevent.__version__}",
    }


def svg_chart(rows: list[Row]) -> str:
    bars = [r for r in rows if r.chart]
    width, left, right, bar_h, gap, top = 920, 380, 90, 20, 8, 46
    height = top + len(bars) * (bar_h + gap) + 30
    scale_max = max([r.high for r in bars] + [1])
    span = width - left - right
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        '<text x="10" y="22" font-size="15" font-weight="bold">webhook-admin throughput '
        "(deliveries/s, median; whisker = min..max)</text>",
    ]
    section = None
    y = top
    for r in bars:
        ours = r.name.startswith("ours") or r.section.startswith("3")
        color = "#2b6cb0" if ours else "#a0aec0"
        w = span * r.median / scale_max
        label = html.escape(f"{r.section.split(' ', 1)[0]}. {r.name}")
        if r.section != section:
            section = r.section
            out.append(
                f'<line x1="10" x2="{width - 10}" y1="{y - 4}" y2="{y - 4}" stroke="#e2e8f0"/>'
            )
        out.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{label}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>')
        x1, x2 = left + span * r.low / scale_max, left + span * r.high / scale_max
        mid = y + bar_h / 2
        out.append(f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{mid}" y2="{mid}" stroke="#1a202c"/>')
        for x in (x1, x2):
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y + 4}" y2="{y + bar_h - 4}" stroke="#1a202c"/>'
            )
        out.append(
            f'<text x="{max(w, x2 - left) + left + 6:.1f}" y="{y + 14}">{fmt(r.median)}</text>'
        )
        y += bar_h + gap
    out.append(
        f'<text x="10" y="{height - 10}" fill="#4a5568">blue: webhook-admin; grey: '
        "baselines and peers measured in the same run</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_docs(rows, raw, errors, plan, machine, elapsed) -> None:
    DOCS.mkdir(exist_ok=True)
    (DOCS / "benchmarks.svg").write_text(svg_chart(rows))
    mode = "quick (1 run each, smaller counts)" if plan.quick else "full (median of 3 runs)"
    generated = time.strftime(
        "%Y-%m-%d %H:%M UTC", time.gmtime(machine.get("finished", time.time()))
    )
    md = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`"
        + (" --quick" if plan.quick else "")
        + "); do not edit the figures by hand, run it again.",
        "",
        f"- Date: {generated}; mode: {mode}; took {elapsed / 60:.1f} min",
        f"- Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['memory']} RAM, "
        f"Linux {machine['kernel']}; load average {machine.get('load', '?')} (other "
        "processes on the host add noise)",
        f"- Python {machine['python']}, PostgreSQL {machine['postgresql']}, "
        f"SQLite {machine['sqlite']}, Redis {machine['redis']}; {machine['libraries']}",
        f"- Delivery workers: {machine.get('workers', '?')} unless a row says otherwise; web: "
        f"`{machine.get('web_command', WEB_COMMAND)}`; database PostgreSQL "
        "unless a row says SQLite.",
        "- Everything (receivers, Redis, gunicorn, workers, peers, load generator) shares the "
        "same machine, so every figure includes the cost of the receivers and the database.",
        core_checks_line(machine.get("core_checks", {})),
        "",
        "![throughput chart](benchmarks.svg)",
        "",
        "## Results",
        "",
        "| scenario | metric | median | min | max | unit | runs | target | verdict |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for r in rows:
        md.append(
            f"| {r.section} | {r.name} | {fmt(r.median)} | {fmt(r.low)} | {fmt(r.high)} | "
            f"{r.unit} | {r.runs} | {r.target} | {('**' + verdict(r) + '**') if r.met is False else verdict(r)} |"
        )
    if errors:
        md += ["", "## Scenarios that failed in this run", ""]
        md += [f"- `{k}`: {v}" for k, v in errors.items()]
    series = (raw.get("s7") or [{}])[0].get("series")
    if series:
        step = max(1, len(series) // 12)
        points = ", ".join(f"{d:,}: {kib / 1024:.0f} MiB" for d, kib in series[::step])
        md += ["", f"Worker RSS by deliveries succeeded (scenario 7): {points}."]
    md += ["", METHOD]
    if FINDINGS.exists():
        md += ["", FINDINGS.read_text().strip()]
    if LIVE_RESULTS.exists():  # `make bench-live` (bench/live.py) writes it; kept here
        md += ["", LIVE_RESULTS.read_text().strip()]
    if PAGES_RESULTS.exists():
        md += ["", PAGES_RESULTS.read_text().strip()]
    (DOCS / "benchmarks.md").write_text("\n".join(md) + "\n")


METHOD = """## How each figure is measured

1. **Fast receiver** (an asyncio HTTP/1.1 keep-alive server answering 200 at once): the events
   are ingested through gunicorn with the workers stopped (one endpoint, so N events = N
   deliveries), then the workers are started and the clock runs from their start until the
   database says every delivery succeeded (polled every 50 ms). So the figure includes worker
   start-up; "steady state" is first-to-last receipt at the receiver. Peers get the same N
   posts to the same receiver: a bare `requests.Session().post` loop in the bench process;
   Celery 5 prefork (concurrency = cores) and gevent (concurrency 100) pools and an RQ
   `SimpleWorker`, each with a task that calls `requests.post(url, data=..., timeout=...)`,
   tasks queued first on the same redis-server (another db), then the worker started; the
   clock runs from the worker's start to the N-th receipt. Celery runs with
   `--without-gossip --without-mingle --without-heartbeat`.
2. **200 ms receivers**: 100 endpoints on 8 receiver ports that answer after 200 ms, each
   subscribed to the event type; the workers are started and idle, then the events are
   ingested (4 client threads) and the clock runs from the first ingest request to the last
   receipt. Latency is receipt time minus the time the load generator got the 202 for that
   event (both `time.time()` on the same host). The Celery gevent peer (concurrency 100) gets
   the same 4,000 posts to the same receivers, started and warmed first the same way.
3. **Black holes**: as 2, plus endpoints on ports that accept connections and never answer;
   the workers run with `WEBHOOK_DELIVERY_TIMEOUT=5`. Throughput and latency count the
   healthy endpoints only.
4. **Steady load**: one fast endpoint, events ingested open-loop at a fixed rate (event i is
   sent at start + i/rate) from 4 keep-alive sessions; latency as in 2.
5. **Ingest**: 3 endpoints subscribed, no workers running (the jobs wait in Redis), 4 client
   threads with keep-alive sessions sending signed events (Standard Webhooks) as fast as they
   are answered; events/s over the whole batch and the p99 of the response times. After 50
   warm-up events.
   Validation's share (`s5_validation`, PostgreSQL): the web processes' CPU per event with
   the seeded schema of `transaction.approved` enforced and with it removed, alternating, and
   the in-process CPU of the validator lookup plus validation (bench/validation_share.py).
6. **Fan-out**: 1,000 endpoints on 4 fast receiver ports (distinct paths), workers idle; one
   event; time to its 202, and from sending it to the 1,000th receipt.
7. **Memory**: one `worker.py` process, 100 fast endpoints, events ingested while it works;
   VmRSS from /proc when the database count of succeeded deliveries passes each checkpoint.
   One run only.
- **Scenario 2 on SQLite and on one host:port** (issue 16; `s2_sqlite`, `s2_one_port`): run
   in the same alternating rounds as scenario 2 (`s2_ours`, then `s2_one_port`, `s2_sqlite`,
   Celery gevent). `s2_one_port`: the same 100 endpoints, all paths on the first of the slow
   receiver's ports (`Receivers.urls("slow", 100, one_port=True)`: a partner platform with
   one URL per merchant); its ratio is the median of the per-round one-port / spread ratios.
   `s2_sqlite`: scenario 2 on a new SQLite file with a gunicorn of its own, `worker.py` at its
   defaults there (one process per core, the threads in the header); the file is emptied
   between rounds.
   `python -m bench.s2_probe` runs the same cases (and other trees' code) alone, with the
   receipts per 0.1 s, `py-spy dump` and `py-spy record --gil` of the workers, and where the
   machine's CPU went by kind of process (`BENCH_PROBE_CPU=1`, `bench/cpu_share.py`).
   A window ends at the receiver's own record of its n-th receipt (polled every 0.1 s,
   `BENCH_RECEIPT_POLL`), for ours and the baselines alike.
8. **History** (issue 16, bench/history_scenarios.py): scenarios 1 and 2 (as above) on a
   database that already holds N delivered deliveries, each with one attempt (a ~1 KB JSON
   request body of varying values, a ~50-byte response) and their events (one event to 3
   deliveries), spread over the last 29.5 days on 100 disabled endpoints of their own that no
   scenario event matches; built by `python -m bench.history` with SQL in bulk (PostgreSQL
   `INSERT ... SELECT generate_series`, secondary indexes and constraints rebuilt after, then
   `VACUUM (ANALYZE)`; SQLite a recursive CTE) and kept between runs (`bench_history_pg`,
   `var/bench/bench_history_sqlite.db`, rebuilt when the marker table `bench_history` differs:
   rows, builder version; a newer Alembic head is migrated in place). N = 10,000,000 on PostgreSQL, 1,000,000 on SQLite
   (--quick: 1,000,000 and 200,000). Against an empty database (PostgreSQL the bench's own,
   SQLite a new file) in alternating rounds (one run of each per round, which goes first
   alternating); between runs only the scenario's own rows are deleted (above the history's
   largest ids and newest `received_at`, by index), and its progress counts only those. The
   ratio is the median of the per-round history/empty ratios. "After one earlier run / fresh":
   `bench/after_run.py` on both databases (scenario 2 on a new database, and on a new one after
   2,000 deliveries to a fast receiver and a SIGTERM of the worker), alternating.
9. **Retention purge** (issue 16, bench/retention_bench.py): the 100 endpoints of scenario 2,
   then 1M delivered deliveries 31-40 days old (past the 30-day retention), each with an
   attempt (~1 KB request body) and its event, built with `INSERT ... SELECT
   generate_series` (BENCH_S9_ROWS; 100k with --quick). Then alternating rounds of scenario
   2 beside that history: without a purge, and with `bench.retention_purge` (the worker's
   `purge_expired`, paced as in the worker, in a process of its own) started just before
   the ingest and stopped, after its batch in progress, at the last receipt; the next round
   goes on where it stopped. The workers' own retention thread is held off by its Redis
   lock. The ratio is the median of the per-round ratios. After the rounds the rest of the
   backlog is purged alone at full speed for at most BENCH_S9_REST_SECONDS (150): rows/s,
   the whole purge's time (projected from that rate when cut short), the longest batch (one
   transaction, commit included) and the longest single statement (timed around the
   driver's execute)."""


def core_checks_line(checks: dict[str, float]) -> str:
    """The core check before each scenario (bench/core_probe.py), as one line of the page."""
    if not checks:
        return "- Core check: not recorded in this run."
    shown = ", ".join(f"{number}: {value:.2f}" for number, value in checks.items())
    return (
        "- Core check before each scenario (two copies of a CPU-bound loop at once, against "
        f"one alone; 1.00 = both cores free, 0.50 = one core's worth): {shown}. The host's "
        "cores are shared; a low value depresses our two-process figures and the peers', "
        "not the single-threaded requests loop."
    )
