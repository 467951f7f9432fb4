"""Replace every gunicorn web worker with a fresh one (new code) without a pause in service:
`python scripts/gunicorn_roll.py --socket /run/webhook-admin/gunicorn.ctl`.

A HUP starts the new workers and stops the old ones at the same moment, so for as long as
the new ones take to import the app (~1-5 s on a busy host) nobody accepts: ingest requests
wait in the listen backlog (bench/rolling_restart.py measured it). This script goes through
gunicorn's control socket instead, one worker at a time (--step): it adds a worker (which
imports the code on disk now), waits until it has entered its request loop (its first
heartbeat), then removes one, which stops the oldest gracefully (it finishes its requests
and answers kept-alive connections with "Connection: close"). Configuration changes still
need a restart; code changes do not. Exit status 1 if a new worker does not come up within
--timeout seconds: nothing more is removed, and old and new workers serve side by side."""

from __future__ import annotations

import argparse
import sys
import time

from gunicorn.ctl.client import ControlClient, ControlClientError


def booted(worker: dict) -> bool:
    """A worker's heartbeat file carries the monotonic time of its last beat once its run
    loop has started, and its creation's wall-clock time before: a beat of a few seconds
    ago means booted."""
    beat = worker.get("last_heartbeat")
    return beat is not None and 0 <= beat < 10


def command(socket_path: str, line: str, *args: str) -> dict:
    """One command per connection: gunicorn's control server answers one and hangs up."""
    with ControlClient(socket_path) as client:
        return client.send_command(line, list(args))


def workers(socket_path: str) -> list[dict]:
    """The master answers between forks: while it spawns, a query may be cut off; ask again."""
    for _ in range(50):
        try:
            return command(socket_path, "show workers")["workers"]
        except ControlClientError:
            time.sleep(0.1)
    return command(socket_path, "show workers")["workers"]


def roll(socket_path: str, timeout: float, step: int = 1) -> int:
    """Replace the workers `step` at a time: booting one takes most of a core for ~0.7 s,
    and booting them all at once starved the old ones still serving (ingest p99 7.45x
    steady on the 2-core benchmark host; the whole roll one at a time: 1.22x)."""
    old = {w["pid"] for w in workers(socket_path)}
    started: set[int] = set()
    while len(started) < len(old):
        count = min(step, len(old) - len(started))
        known = {w["pid"] for w in workers(socket_path)} | old | started
        command(socket_path, "worker add", str(count))
        deadline = time.monotonic() + timeout
        while True:
            fresh = [w for w in workers(socket_path) if w["pid"] not in known]
            if len(fresh) >= count and all(booted(w) for w in fresh):
                break
            if time.monotonic() > deadline:
                print(
                    f"a new worker did not come up within {timeout:g} s after {len(started)} "
                    f"of {len(old)} were replaced: nothing more removed, old and new serve "
                    "side by side; read the log, then run again or restart",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.1)
        started.update(w["pid"] for w in fresh)
        command(socket_path, "worker remove", str(count))  # the oldest go first
    # The old ones finish their requests (at most gunicorn's --graceful-timeout).
    deadline = time.monotonic() + 60
    while {w["pid"] for w in workers(socket_path)} & old and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"replaced {len(old)} web workers")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--socket", required=True, help="gunicorn's --control-socket path")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for boot")
    parser.add_argument("--step", type=int, default=1, help="workers replaced at a time")
    args = parser.parse_args(argv)
    return roll(args.socket, args.timeout, max(1, args.step))


if __name__ == "__main__":
    sys.exit(main())
