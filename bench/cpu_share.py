"""Where the machine's CPU went during a window, by kind of process (issue 16).

The benchmarks share 2 cores between what they measure (the workers, gunicorn, PostgreSQL,
Redis) and what measures it (the load generator, the receivers). `CpuShare` reads every
process's CPU time from /proc when it starts and then every `interval` seconds, so a
process that exits inside the window (a worker stopped at the end of a round) still counts
up to its last reading, and reports the seconds used per kind (the first words of its
command line) and how busy the machine was:

    with CpuShare() as share:
        ...  # the window
    print(share.report())
"""

from __future__ import annotations

import collections
import os
import threading

from .procs import cpu_seconds


def _machine() -> tuple[int, int]:
    """(all jiffies, idle jiffies) since boot, all cores."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # idle + iowait


def _processes() -> dict[int, tuple[str, float]]:
    """pid -> (kind, CPU seconds used so far)."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline") as f:
                argv = f.read().split("\0")
            found[int(name)] = (kind_of(argv), cpu_seconds(int(name)))
        except OSError:  # gone meanwhile
            continue
    return found


def kind_of(argv: list[str]) -> str:
    """`python -m bench.receiver ...` -> "bench.receiver"; `.../worker.py` -> "worker.py";
    `postgres: 15/main: postgres test ...` -> "postgres"."""
    words = [w for w in argv if w]
    if not words:
        return "kernel"
    if words[0].startswith("postgres"):
        return "postgres"
    program = os.path.basename(words[0])
    if program.startswith("python") and len(words) > 1:
        if words[1] == "-m" and len(words) > 2:
            return words[2]
        return os.path.basename(words[1])
    return program


class CpuShare:
    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self._stop = threading.Event()
        self._first: dict[int, tuple[str, float]] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._busy: list[float] = []
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._first = self._last = _processes()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def __enter__(self) -> CpuShare:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _sample(self) -> None:
        before = _machine()
        while not self._stop.wait(self.interval):
            self._read()
            now = _machine()
            self._busy.append(1 - (now[1] - before[1]) / max(1, now[0] - before[0]))
            before = now

    def _read(self) -> None:
        self._last = {**self._last, **_processes()}

    def seconds_by_kind(self) -> dict[str, float]:
        used: collections.Counter[str] = collections.Counter()
        for pid, (kind, seconds) in self._last.items():
            used[kind] += seconds - self._first.get(pid, (kind, 0.0))[1]
        return {kind: s for kind, s in used.most_common() if s >= 0.01}

    def report(self) -> str:
        busy = ", ".join(f"{b:.2f}" for b in self._busy)
        lines = [f"  machine busy per {self.interval} s (1.0 = both cores): {busy}"]
        lines += [f"  {s:6.2f} s  {kind}" for kind, s in self.seconds_by_kind().items()]
        return "\n".join(lines)
