"""`make run` (scripts/dev_run.py): SIGTERM stops everything it started, as Ctrl-C does, and
so does a SIGTERM to make alone."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import wait_until

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> dict[int, str]:
    """pid -> command line of every process below `pid`, read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # The command name may hold spaces and parentheses: the ppid follows the last ")".
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = {}, list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        with contextlib.suppress(OSError):
            found[child] = (
                Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            ).decode()
        todo += parents.get(child, [])
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def serves(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def dev_environ(tmp_path, port: int) -> dict[str, str]:
    """A newcomer's shell environment, with everything of dev_run's under tmp_path."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("WEBHOOK_", "ADMIN_", "TEST_"))
        and name not in ("APP_ENV", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PORT")
    }
    return environ | {
        "PORT": str(port),
        "DEV_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path}/dev.db",
        # Nothing answers there: dev_run starts a redis-server of its own, as on a fresh host.
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "PYTHONUNBUFFERED": "1",
    }


def serve_then_signal(tmp_path, argv: list[str], signum: int, exit_code: int) -> None:
    """Start `argv` (dev_run.py, or make run), wait until it serves, send `signum` to that
    process alone, and check that it exits with `exit_code` and every process below it is
    gone."""
    port = free_port()
    log = tmp_path / "dev_run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=dev_environ(tmp_path, port), stdout=out, stderr=subprocess.STDOUT
        )
    children: dict[int, str] = {}
    try:
        wait_until(
            lambda: serves(port) and "is running" in log.read_text(),
            timeout=30,
            message=f"{argv} did not serve:\n{log.read_text()}",
        )
        children = descendants(process.pid)
        commands = " | ".join(children.values())
        assert "redis-server" in commands and "worker.py" in commands, commands
        assert any(" run --host 127.0.0.1" in c for c in children.values()), commands
        shell_env = (tmp_path / "var" / "dev.env").read_text()  # not the checkout's var/
        assert f"export WEBHOOK_APP_URL='http://127.0.0.1:{port}'" in shell_env

        process.send_signal(signum)

        process.wait(15)
        # Below make, dev_run.py may still be stopping its children when make has exited: wait
        # for them (the worker finishes its attempts in flight first).
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not any(alive(pid) for pid in children), timeout=25)
        left = {pid: command for pid, command in children.items() if alive(pid)}
        assert not left, f"still running after {signum.name}: {left}\n{log.read_text()}"
        assert not serves(port)
        assert process.returncode == exit_code, log.read_text()
    finally:
        for pid in [process.pid, *children]:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_stops_the_web_app_the_worker_and_the_redis_it_started(tmp_path, signum):
    argv = [sys.executable, str(ROOT / "scripts" / "dev_run.py")]
    serve_then_signal(tmp_path, argv, signum, exit_code=0)


def test_a_sigterm_to_make_alone_stops_everything_make_run_started(tmp_path):
    """`kill <make's pid>` or `timeout 60 make run` signal make alone (a terminal's Ctrl-C
    reaches the whole group; these do not). GNU make passes SIGTERM on to the recipe it
    runs, and dev_run.py stops what it started: nothing is left running."""
    argv = ["make", "--no-print-directory", "run"]
    serve_then_signal(tmp_path, argv, signal.SIGTERM, exit_code=-signal.SIGTERM)
