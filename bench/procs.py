"""The processes a benchmark needs, all on 127.0.0.1: receivers, redis-server, gunicorn,
`python worker.py`, Celery and RQ workers. Every child is stopped by its own pid."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOG_DIR = ROOT / "var" / "bench" / "logs"
INGEST_SECRET = "whsec_" + base64.b64encode(b"b" * 32).decode()
INGEST_KEY = b"b" * 32
ENCRYPTION_KEY = Fernet.generate_key().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:g}s")


def child_environ(env: dict[str, str] | None) -> dict[str, str]:
    """Every process under test (ours and the peers) keeps its compiled bytecode, as an
    installed deployment does: a development shell may set PYTHONDONTWRITEBYTECODE, which
    makes each start compile the project's own modules again (~0.1 s of a worker's start;
    installed packages were compiled by pip). `__pycache__/` is git-ignored."""
    merged = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    merged.pop("PYTHONDONTWRITEBYTECODE", None)
    return merged


class Child:
    """A subprocess with its output in var/bench/logs/<name>.log."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT
    ):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_environ(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# How often the benchmarks ask the receivers how many requests arrived. Each ask is an HTTP
# request to the receiver process, on the 2 cores the system under test runs on: asking
# every 20 ms (until 2026-12-01), the bench process used 0.85 s of CPU in a scenario-2
# window, every 0.1 s 0.13-0.15 s (bench/cpu_share.py; both with the ingest client in it).
RECEIPT_POLL = float(os.environ.get("BENCH_RECEIPT_POLL", "0.1"))


class Receivers:
    """The receiver process (bench/receiver.py) and its control port."""

    def __init__(self, fast: int = 4, slow: int = 0, blackhole: int = 0):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.receiver", "--fast", str(fast), "--slow", str(slow)]
            + ["--blackhole", str(blackhole)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        self.ports = json.loads(self.process.stdout.readline())
        self.control = f"http://127.0.0.1:{self.ports['control'][0]}"
        self._session = requests.Session()

    def urls(self, mode: str, count: int, one_port: bool = False) -> list[str]:
        """`count` URLs spread over the ports of a mode (distinct paths), or all on the
        mode's first port with `one_port` (a partner platform with one URL per merchant)."""
        ports = self.ports[mode][:1] if one_port else self.ports[mode]
        return [f"http://127.0.0.1:{ports[i % len(ports)]}/hook/{i}" for i in range(count)]

    def counts(self) -> dict[str, int]:
        return self._session.get(self.control + "/count", timeout=10).json()

    def dump(self) -> list[tuple[str, int, str, float]]:
        return [tuple(r) for r in self._session.get(self.control + "/dump", timeout=60).json()]

    def reset(self) -> None:
        self._session.post(self.control + "/reset", timeout=10)

    def wait_count(self, mode: str, n: int, timeout: float, poll: float = RECEIPT_POLL) -> float:
        """Block until `n` requests of a mode arrived; returns when the n-th arrived (the
        receiver's record, time.time()), not when a poll saw it: the end of a window is then
        exact however seldom we ask, and asking seldom keeps this process (on the cores it
        measures) quiet."""
        wait_for(lambda: self.counts()[mode] >= n, timeout, poll, f"{n} {mode} receipts")
        return sorted(t for m, _port, _id, t in self.dump() if m == mode)[n - 1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class RedisServer:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.child = Child(
            "redis",
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", self.dir, "--databases", "16"],
        )
        wait_for(self._ping, 10, what="redis-server")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        self.child.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def app_environ(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "SECRET_KEY": "bench-secret-key-" + "x" * 32,
        "WEBHOOK_INGEST_SECRET": INGEST_SECRET,
        "WEBHOOK_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        **extra,
    }


def flask_cli(environ: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", *args],
        cwd=ROOT,
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def prepare_postgres(admin_url: str, name: str) -> str:
    """Drop and create database `name` on the server of `admin_url`; returns its URL."""
    import psycopg

    base = admin_url.rsplit("/", 1)[0]

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def migrate_and_seed(environ: dict[str, str]) -> None:
    flask_cli(environ, "db", "upgrade")
    flask_cli(environ, "catalog", "seed")


# The production web server as docs/operations.md runs it: two workers per core (a request
# spends part of its time waiting on the database; the second worker uses the core), each
# with 4 threads and keep-alive (SoftPOS keeps its connection; a sync worker closes it).
WEB_WORKERS = 2 * (os.cpu_count() or 1)
WEB_WORKER_OPTIONS = ["-k", "gthread", "--threads", "4", "--keep-alive", "5"]


class Gunicorn:
    def __init__(
        self,
        environ: dict[str, str],
        workers: int = WEB_WORKERS,
        name: str = "gunicorn",
        control_socket: str | None = None,
        cwd: Path = ROOT,  # another checkout's code (bench/live.py's baseline)
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        control = ["--control-socket", control_socket] if control_socket else []
        self.child = Child(
            name,
            [str(BIN / "gunicorn"), "-w", str(workers), *WEB_WORKER_OPTIONS, *control]
            + ["-b", f"127.0.0.1:{self.port}", "wsgi:app"],
            environ,
            cwd,
        )
        try:
            wait_for(self._up, 60, 0.1, "gunicorn")  # 60 s: a loaded shared host is slow
        except BaseException:
            self.child.stop()  # not left behind, serving, when the bench gives up on it
            raise

    def _up(self) -> bool:
        if not self.child.alive():
            raise RuntimeError(f"gunicorn exited, see {self.child.log_path}")
        try:
            requests.get(self.url + "/login", timeout=1)
            return True
        except requests.RequestException:
            return False

    def stop(self) -> None:
        self.child.stop()


def start_workers(environ: dict[str, str], processes: int | None = None) -> list[Child]:
    """One `python worker.py`: with its defaults it supervises one process per core;
    `processes=1` runs a single worker process (no supervisor)."""
    args = [] if processes is None else ["--processes", str(processes)]
    return [Child("worker", [sys.executable, str(ROOT / "worker.py"), *args], environ)]


def process_tree(pid: int) -> list[int]:
    """The pid and its descendants (worker.py's supervisor and its worker processes)."""
    pids, pending = [], [pid]
    while pending:
        current = pending.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def stop_all(children: list[Child]) -> None:
    for child in children:
        if child.alive():
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        child.stop()
