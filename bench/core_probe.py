"""How much of the machine's cores a run actually got.

The benchmark host is a VM whose cores are shared: in one hour here the same ingest code
measured 350 and 650 events/s, and every process's CPU per request (the load generator's
too) rose and fell together. A single-threaded baseline (the requests loop) barely notices
when the second core is contended; our two worker processes do. So each scenario group
records this probe: the time of a fixed pure-Python loop run alone, and of two copies run
at once. With two free cores both take the same time; `parallel` < 1.0 says how much of
the second core was missing."""

from __future__ import annotations

import subprocess
import sys
import time

LOOP = "x = 0\nfor i in range(4_000_000):\n    x += i\n"


def _timed(copies: int) -> float:
    started = time.perf_counter()
    children = [subprocess.Popen([sys.executable, "-c", LOOP]) for _ in range(copies)]
    for child in children:
        child.wait()
    return time.perf_counter() - started


def probe() -> dict:
    """{"alone": s, "two_at_once": s, "parallel": alone / two_at_once}"""
    alone = min(_timed(1) for _ in range(2))
    both = min(_timed(2) for _ in range(2))
    return {"alone": alone, "two_at_once": both, "parallel": alone / both}
