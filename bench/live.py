"""Live pages benchmark (#15): 50 open delivery monitors, idle and at 50 events/s.

    python -m bench.live [--clients 50] [--seconds 20] [--rate 50] [--baseline-ref REF]
    make bench-live

Simulated clients poll exactly as the pages do (requests.Session each, one thread each):
- **live** (this branch): the feed every 2 s with its cursor, the strip every 5 s with its
  version, and each in-flight row every 2 s until it answers 286;
- **old, open** (the baseline's code): the page loaded once; only its in-flight rows poll; a
  new delivery never appears;
- **old, reloaded every 2 s** (the baseline's code): the only way to see new deliveries before
  the live pages.
The baseline is the commit before the live pages (`git archive` into var/bench/, served by its
own gunicorn with the same settings); the same run, the same database, the same Redis.

Reported per scenario: the web app's CPU (gunicorn master and workers, % of one core),
requests/s, response bytes/s, the share of 204 answers, ingest p99 (the load generator's POSTs
to the same gunicorn) and the delay from ingest to the row reaching the page. DB queries per
poll are counted in-process (SQLAlchemy events, Flask test client). Writes docs/benchmarks.md's
live section (kept by `make bench`, which appends bench/live_results.md). Asserts nothing."""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .load import Database, ingest_many
from .procs import (
    ROOT,
    Gunicorn,
    Receivers,
    RedisServer,
    app_environ,
    cpu_seconds,
    migrate_and_seed,
    prepare_postgres,
    process_tree,
    start_workers,
    stop_all,
)

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "webhook_admin_bench_live"
EMAIL, PASSWORD = "monitor@bench.example", "bench password for the live pages"
RESULTS = ROOT / "bench" / "live_results.md"
DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- live-pages:start -->", "<!-- live-pages:end -->"

ROW = re.compile(
    r'<tr id="delivery-(\d+)"(?: class="live"( data-live-watch="([^"]+)")?( hx-get)?)?'
)
EVENT = re.compile(
    r'<tr id="delivery-\d+"[^>]*>\s*<td><a [^>]*>[^<]*</a>\s*<div class="muted small mono">([^<]+)</div>'
)
AFTER = re.compile(r'data-live-after="(\d+)"')
VERSION = re.compile(r'id="live-strip"[^>]*?data-live-version="([0-9a-f]+)"', re.S)


def baseline_checkout(ref: str | None) -> tuple[Path, str]:
    """The code before the live pages: the parent of the commit that added views/live.py."""
    if ref is None:
        added = subprocess.run(
            ["git", "log", "--format=%H", "--diff-filter=A", "--", "webhook_admin/views/live.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        ref = added[-1] + "^"
    sha = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    target = ROOT / "var" / "bench" / f"baseline-{sha}"
    if not (target / "wsgi.py").exists():
        archive = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True, check=True)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(target, filter="data")
    return target, sha


def session_cookie(base: str) -> str:
    """Log in once through the form; every client sends the same session cookie. The
    production cookie is Secure, so requests would not send it over http: it goes by hand."""
    page = requests.get(base + "/login", timeout=10)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    jar = {c.name: c.value for c in page.cookies}
    answer = requests.post(
        base + "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())},
        allow_redirects=False,
        timeout=10,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"bench login failed: {answer.status_code}")
    jar |= {c.name: c.value for c in answer.cookies}
    return "; ".join(f"{k}={v}" for k, v in jar.items())


@dataclass
class Tally:
    requests: int = 0
    bytes: int = 0
    no_content: int = 0
    seen: dict[str, float] = field(default_factory=dict)  # event id -> first time on the page
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, response: requests.Response) -> None:
        size = len(response.content) + sum(len(k) + len(v) + 4 for k, v in response.headers.items())
        with self.lock:
            self.requests += 1
            self.bytes += size + 17  # the status line
            self.no_content += response.status_code == 204

    def saw(self, html: str, now: float) -> None:
        with self.lock:
            for event_id in EVENT.findall(html):
                self.seen.setdefault(event_id, now)


class Client(threading.Thread):
    """One open monitor page, polling as its page does until `stop` is set."""

    def __init__(self, mode: str, base: str, cookie: str, tally: Tally, stop: threading.Event):
        super().__init__(daemon=True)
        self.mode, self.base, self.tally, self.stop = mode, base, tally, stop
        self.http = requests.Session()
        self.http.headers["Cookie"] = cookie
        self.live_rows: dict[int, float] = {}  # id -> next poll time
        self.sightings: dict[str, float] = {}
        self.shown: set[int] = set()
        self.watched: dict[int, str] = {}
        self.query = "&status=failed" if mode == "live-filtered" else ""

    def get(self, path: str, htmx: bool = True) -> requests.Response:
        headers = {"HX-Request": "true"} if htmx else {}
        response = self.http.get(self.base + path, headers=headers, timeout=30)
        self.tally.count(response)
        return response

    def take_rows(self, html: str, now: float, replace: bool = False) -> None:
        if replace:
            self.shown.clear()
            self.watched.clear()
            self.live_rows.clear()
        for row_id, watch, state, polls in ROW.findall(html):
            row_id = int(row_id)
            self.shown.add(row_id)
            self.watched.pop(row_id, None)
            if watch:
                self.watched[row_id] = state  # refreshed through the feed's poll
            elif polls:
                self.live_rows.setdefault(row_id, now + 2)  # polls for itself
        for event_id in EVENT.findall(html):
            self.sightings.setdefault(event_id, now)

    def run(self) -> None:
        time.sleep(random.uniform(0, 2))  # pages are not opened in step
        page = self.get("/deliveries" + self.query.replace("&", "?"), htmx=False).text
        self.take_rows(page, time.time())
        after = int(AFTER.search(page).group(1)) if AFTER.search(page) else 0
        version = VERSION.search(page).group(1) if VERSION.search(page) else ""
        next_feed = next_strip = time.monotonic()
        next_feed += 2
        next_strip += 5
        while not self.stop.is_set():
            now = time.monotonic()
            if self.mode == "reload" and now >= next_feed:
                self.take_rows(self.get("/deliveries", htmx=False).text, time.time(), True)
                next_feed += 2
            if self.mode.startswith("live") and now >= next_feed:
                # As static/live.js: the rows themselves until 200 are shown, then only how
                # many (the page waits behind "N new"); the rows in flight it brought are
                # watched through this same poll.
                params = f"after={after}&show_endpoint=1{self.query}"
                if self.watched:
                    params += "&watch=" + ",".join(
                        f"{i}.{state}" for i, state in list(self.watched.items())[:200]
                    )
                if len(self.shown) >= 200:
                    params += "&count=1"
                else:
                    have = sorted(i for i in self.shown if i > after)[:200]
                    params += "&have=" + ",".join(map(str, have)) if have else ""
                answer = self.get(f"/deliveries/feed?{params}")
                after = int(answer.headers.get("X-Live-Cursor", after))
                if answer.status_code == 200:
                    self.take_rows(answer.text, time.time())
                next_feed += 2
            if self.mode.startswith("live") and now >= next_strip:
                answer = self.get(f"/deliveries/strip?version={version}")
                if answer.status_code == 200 and VERSION.search(answer.text):
                    version = VERSION.search(answer.text).group(1)
                next_strip += 5
            if self.mode != "reload":
                wall = time.time()
                for row_id, due in list(self.live_rows.items()):
                    if wall >= due:
                        answer = self.get(f"/deliveries/{row_id}/row?show_endpoint=1")
                        if answer.status_code == 286 or answer.status_code >= 400:
                            del self.live_rows[row_id]
                        else:
                            self.live_rows[row_id] = wall + 2
            self.stop.wait(0.05)
        with self.tally.lock:
            for event_id, at in self.sightings.items():
                self.tally.seen.setdefault((self.name, event_id), at)


def web_cpu(web: Gunicorn) -> float:
    return sum(
        cpu_seconds(pid) for pid in process_tree(web.child.pid) if Path(f"/proc/{pid}").exists()
    )


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def scenario(name, web, mode, clients, cookie, seconds, rate) -> dict:
    tally, stop = Tally(), threading.Event()
    pool = [Client(mode, web.url, cookie, tally, stop) for _ in range(clients)]
    for client in pool:
        client.start()
    time.sleep(2.5)  # every page loaded
    with tally.lock:
        tally.requests = tally.bytes = tally.no_content = 0
    cpu0, t0 = web_cpu(web), time.monotonic()
    sent = ingest_many(web.url, int(rate * seconds), threads=4, rate=rate) if rate else []
    if not rate:
        time.sleep(seconds)
    elapsed = time.monotonic() - t0
    cpu = web_cpu(web) - cpu0
    with tally.lock:
        requests_done, size, no_content = tally.requests, tally.bytes, tally.no_content
    time.sleep(3)  # the last rows reach the pages
    stop.set()
    for client in pool:
        client.join(30)
    delays = []
    for s in sent:
        for client in pool:
            at = tally.seen.get((client.name, s.event_id))
            if at is not None:
                delays.append((at - s.sent_at) * 1000)
    row = {
        "scenario": name,
        "pages": clients if mode != "none" else 0,
        "cpu": 100 * cpu / elapsed,
        "rps": requests_done / elapsed,
        "bps": size / elapsed,
        "share_204": 100 * no_content / requests_done if requests_done else None,
        "ingest_p99": pct([s.response_ms for s in sent], 0.99),
        "delay_p50": pct(delays, 0.50),
        "delay_p95": pct(delays, 0.95),
        "seen": len(delays) / (len(sent) * clients) * 100 if sent and mode != "none" else None,
        "unseen": {"open": "never shown", "live-filtered": "none match"}.get(mode, "–"),
    }
    print(
        f"  {name}: cpu {row['cpu']:.1f} %, {row['rps']:.1f} req/s, {row['bps'] / 1024:.1f} KiB/s"
        + (f", ingest p99 {row['ingest_p99']:.1f} ms" if sent else "")
        + (f", row after {row['delay_p50']:.0f}/{row['delay_p95']:.0f} ms" if delays else ""),
        flush=True,
    )
    return row


def queries_per_poll(environ: dict[str, str]) -> list[tuple[str, int]]:
    """SQL statements per request, counted in-process on this branch's code."""
    from sqlalchemy import event

    from webhook_admin import create_app
    from webhook_admin.extensions import db
    from webhook_admin.models import Delivery, Endpoint
    from webhook_admin.services.live_strip import strip_memo

    app = create_app(environ)
    client = app.test_client()
    base = "https://localhost"  # the session cookie is Secure
    page = client.get("/login", base_url=base).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answer = client.post(
        "/login",
        base_url=base,
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        headers={"Referer": base + "/login"},  # Flask-WTF checks it over https
    )
    if answer.status_code != 302:
        raise RuntimeError(
            f"in-process login failed: {answer.status_code} {answer.get_data()[:300]}"
        )
    with app.app_context():
        newest = db.session.query(db.func.max(Delivery.id)).scalar() or 0
        endpoint_id = db.session.query(db.func.min(Endpoint.id)).scalar()
        one_back = newest - 1
    counted = []

    def count(path: str, label: str, htmx: bool = True) -> int:
        seen = []
        with app.app_context():
            listener = lambda *a: seen.append(1)  # noqa: E731
            event.listen(db.engine, "before_cursor_execute", listener)
            try:
                headers = {"HX-Request": "true"} if htmx else {}
                response = client.get(path, base_url=base, headers=headers)
            finally:
                event.remove(db.engine, "before_cursor_execute", listener)
        counted.append((f"{label} ({response.status_code})", len(seen)))
        return response

    strip_version = VERSION.search(count("/deliveries", "/deliveries, the whole page", False).text)
    strip_memo.clear()
    count("/deliveries/strip", "strip, computed (once per 5 s per process)")
    count(f"/deliveries/strip?version={strip_version.group(1)}", "strip, unchanged")

    count(f"/deliveries/feed?after={newest}&show_endpoint=1", "feed, nothing new")
    count(f"/deliveries/feed?after={one_back}&show_endpoint=1", "feed, one new row")
    count(f"/deliveries/{newest}/row?show_endpoint=1", "one row's own poll")
    webhooks = count("/webhooks", "/webhooks, the whole page", False).text
    version = re.search(r'id="endpoint-feed"[^>]*?data-live-version="([0-9a-f]+)"', webhooks, re.S)
    count(f"/webhooks/live?version={version.group(1)}", "Webhook Management rows, unchanged")
    count("/webhooks/live?version=x", "Webhook Management rows, changed")
    shown = count(f"/webhooks/{endpoint_id}", "endpoint page, whole", False).text
    version = re.search(r'id="endpoint-stats"[^>]*?data-live-version="([0-9a-f]+)"', shown, re.S)
    count(
        f"/webhooks/{endpoint_id}/stats?version={version.group(1)}", "endpoint figures, unchanged"
    )
    count(f"/webhooks/{endpoint_id}/stats?version=x", "endpoint figures, changed")
    return counted


def fmt(value, unit="") -> str:
    if value is None:
        return "–"
    return f"{value:,.1f}{unit}" if value < 100 else f"{value:,.0f}{unit}"


def markdown(rows, queries, args, sha, load) -> str:
    out = [
        START,
        "## Live pages (#15): 50 open monitors",
        "",
        f"Generated by `make bench-live` (`python -m bench.live --clients {args.clients} "
        f"--seconds {args.seconds} --rate {args.rate}`) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average {load}. Baseline: commit `{sha}` (the code before the live pages), "
        "served by its own gunicorn in the same run with the same database and Redis. "
        "Web: `gunicorn -w 4 -k gthread --threads 4`, PostgreSQL, one `worker.py`, one fast "
        "receiver endpoint (each event is one delivery). Everything shares the 2 cores.",
        "",
        "| scenario | pages | web CPU (% of a core) | requests/s | KiB/s | 204 share | ingest p99 (ms) | ingest to row p50 / p95 (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        delay = (
            f"{fmt(r['delay_p50'])} / {fmt(r['delay_p95'])}"
            if r["delay_p50"] is not None
            else (r.get("unseen", "–") if r["pages"] and r["ingest_p99"] is not None else "–")
        )
        out.append(
            f"| {r['scenario']} | {r['pages']} | {fmt(r['cpu'])} | {fmt(r['rps'])} | "
            f"{fmt(r['bps'] / 1024)} | {fmt(r['share_204'], ' %')} | {fmt(r['ingest_p99'])} | {delay} |"
        )
    out += [
        "",
        "Reading it: web CPU includes ingest's own cost (the same gunicorn takes both; compare "
        'with "no pages"). An idle live page costs one feed poll per 2 s and one strip poll '
        "per 5 s, all `204`, about 3 ms of CPU each (the session's user, one primary-key "
        "lookup and the security headers). At 50 events/s a page at the top takes the new rows "
        'until it shows 200, then only counts them behind "N new" (`count=1`), so its cost '
        "falls to the count query; the rows in flight it brought are refreshed by the same poll "
        "(`watch=`). The old page reloaded every 2 s (the only way to see new deliveries "
        "before) re-renders 50 rows and the filters each time and shows at most 50 of the 100 "
        "created in 2 s. Ingest p99 moves a lot between runs on this shared 2-core machine "
        "(compare the two runs without live polling); it is not a steady effect of the pages. "
        "Ingest to row is from the load generator's POST to the poll answer that carried the "
        "row (the page's interval is 2 s, so p50 is about 1 s).",
        "",
        "DB statements per request (this branch, counted in-process; the first is the "
        "session's user):",
        "",
        "| request | statements |",
        "| --- | ---: |",
    ]
    out += [f"| {label} | {n} |" for label, n in queries]
    out += ["", END]
    return "\n".join(out)


def write_docs(section: str) -> None:
    RESULTS.write_text(section + "\n")
    text = DOCS.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=50, help="events/s in the busy runs")
    parser.add_argument("--baseline-ref", default=None, help="git ref of the old code")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--queries-only", action="store_true", help="only the DB statement counts")
    args = parser.parse_args(argv)
    load = f"{os.getloadavg()[0]:.2f}"
    baseline, sha = baseline_checkout(args.baseline_ref)
    redis, receivers = RedisServer(), Receivers(fast=1)
    environ = app_environ(prepare_postgres(PG_ADMIN_URL, PG_DB), redis.url())
    ours = environ | {"PYTHONPATH": str(ROOT)}
    old = environ | {"PYTHONPATH": str(baseline)}
    migrate_and_seed(ours)
    database = Database(ours)
    from webhook_admin.extensions import db
    from webhook_admin.services.users import create_user

    database.add_endpoints(receivers.urls("fast", 1))
    create_user(EMAIL, "viewer", PASSWORD, "bench")
    db.session.commit()
    workers = start_workers(ours)
    web = Gunicorn(ours, name="gunicorn-live")
    web_old = Gunicorn(old, name="gunicorn-baseline", cwd=baseline)
    rows = []
    try:
        ingest_many(web.url, 200, threads=4)  # a monitor with history
        time.sleep(2)
        cookie = session_cookie(web.url)
        cookie_old = session_cookie(web_old.url)
        if args.queries_only:
            print(queries_per_poll(ours))
            return 0
        plan = [
            ("no pages", web, "none", 0, cookie),
            (f"old code, {args.clients} pages open", web_old, "open", args.clients, cookie_old),
            (
                f"old code, {args.clients} pages reloaded every 2 s",
                web_old,
                "reload",
                args.clients,
                cookie_old,
            ),
            (f"live pages, {args.clients} pages", web, "live", args.clients, cookie),
            (
                f"live pages, {args.clients} pages filtered to failed",
                web,
                "live-filtered",
                args.clients,
                cookie,
            ),
        ]
        for load_name, rate in (("idle", 0), (f"{args.rate:g} events/s", args.rate)):
            print(f"{load_name}:", flush=True)
            if rate:  # warm both servers' ingest path first
                ingest_many(web.url, 100, threads=4, rate=rate)
                ingest_many(web_old.url, 100, threads=4, rate=rate)
            for name, server, mode, clients, jar in plan:
                rows.append(
                    scenario(f"{load_name}: {name}", server, mode, clients, jar, args.seconds, rate)
                )
        queries = queries_per_poll(ours)
    finally:
        web.stop()
        web_old.stop()
        stop_all(workers)
        database.close()
        receivers.stop()
        redis.stop()
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "live.json").write_text(
        json.dumps({"rows": rows, "queries": queries, "sha": sha, "load": load})
    )
    section = markdown(rows, queries, args, sha, load)
    print(section)
    if not args.no_docs:
        write_docs(section)
        print(f"wrote {DOCS.relative_to(ROOT)} and {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
