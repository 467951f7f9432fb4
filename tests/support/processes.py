"""Real worker processes (`python worker.py`) for tests, with their output kept for failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, environ: dict[str, str], *args: str):
        self.environ = {**os.environ, **environ, "PYTHONUNBUFFERED": "1"}
        self.args = args
        self.log = tempfile.NamedTemporaryFile(prefix="worker-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py"), *self.args],
            cwd=ROOT,
            env=self.environ,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        return self

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        os.unlink(self.log.name)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout}s")
