"""Per-endpoint cap on deliveries in flight inside one worker process.

A receiver that hangs until the timeout would otherwise fill every delivery thread and stall
healthy endpoints behind it. Over the cap, a delivery is parked (not claimed: it stays due
in the database, so a crash loses nothing) and handed back when that endpoint frees a slot.

A slow endpoint gets a smaller cap (a quarter of the normal one, at least 1): one whose
oldest request in flight has waited `slow_after` seconds, or whose last attempt timed out
(until it answers in time again). Ten endpoints that never answer then hold 10 x 2 threads
of a process instead of 10 x 8, which would be more than the whole pool.

An endpoint starts slow too, until its first answer in time in this process ("slow start",
as TCP does): otherwise endpoints that never answer hold their whole cap for the first
`slow_after` seconds after a worker starts, and again until their first timeout, which
stalls everybody else exactly when a backlog is being worked off. A healthy endpoint
leaves it with its first answer: one round trip at a quarter of the cap.

An endpoint that answers in time may borrow threads nobody else is using and go over its
cap, up to `burst` times it, while fewer than half of the process's delivery threads are
in flight ("burst"). One busy endpoint then gets the throughput its receiver can give: with
a cap of 8 a process kept only 8 requests in flight, and its threads spent most of their
time waiting for the GIL between round trips (scenario 1 of the benchmarks: ~700 -> ~890
deliveries/s with a cap of 16, ~950 with 32, in alternating runs). Fairness holds: endpoints
that all stop answering at the same moment hold at most about half the pool beyond their
caps, and each falls to the quarter cap after `slow_after`."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class EndpointGate:
    def __init__(
        self,
        cap: int,
        slow_after: float = 1.0,
        clock=time.monotonic,
        burst: int = 1,
        threads: int = 0,
    ):
        self.cap = cap
        self.slow_cap = max(1, cap // 4)
        self.burst_cap = cap * burst
        self.burst_below = threads // 2  # in flight in the process, for borrowing to start
        self.slow_after = slow_after
        self._clock = clock
        self._lock = threading.Lock()
        # endpoint -> start times of its deliveries in flight, oldest first
        self._active: dict[int, list[float]] = {}
        self._parked: defaultdict[int, deque[int]] = defaultdict(deque)
        self._timed_out: set[int] = set()
        self._answered: set[int] = set()  # answered in time at least once: out of slow start
        self._in_flight = 0  # all endpoints

    def enter(self, endpoint_id: int, delivery_id: int) -> float | None:
        """Take a slot for the endpoint (returns its ticket for `leave`), or park the
        delivery and return None."""
        with self._lock:
            now = self._clock()
            active = self._active.setdefault(endpoint_id, [])
            if self._room(endpoint_id, active, now) > 0:
                active.append(now)
                self._in_flight += 1
                return now
            if not active:
                del self._active[endpoint_id]
            self._parked[endpoint_id].append(delivery_id)
            return None

    def note_result(self, endpoint_id: int, timed_out: bool) -> None:
        with self._lock:
            if timed_out:
                self._timed_out.add(endpoint_id)
            else:
                self._timed_out.discard(endpoint_id)
                self._answered.add(endpoint_id)

    def leave(self, endpoint_id: int, ticket: float) -> list[int]:
        """Free the slot; returns the parked deliveries of the endpoint that may go now
        (one usually; more when its cap grew back after it recovered)."""
        with self._lock:
            active = self._active.get(endpoint_id, [])
            if ticket in active:
                active.remove(ticket)
                self._in_flight -= 1
            parked = self._parked.get(endpoint_id)
            free = self._room(endpoint_id, active, self._clock())
            released = []
            while parked and free > 0:
                # No slot is held for them: they pass `enter` again when they run (and
                # are parked again if a fresh delivery took the slot meanwhile).
                released.append(parked.popleft())
                free -= 1
            if parked is not None and not parked:
                del self._parked[endpoint_id]
            if not active:
                self._active.pop(endpoint_id, None)
            return released

    def _room(self, endpoint_id: int, active: list[float], now: float) -> int:
        """How many more deliveries of the endpoint may be in flight now."""
        if endpoint_id in self._timed_out or endpoint_id not in self._answered:
            return self.slow_cap - len(active)
        if active and now - active[0] >= self.slow_after:
            return self.slow_cap - len(active)
        borrowable = min(self.burst_cap - len(active), self.burst_below - self._in_flight)
        return max(self.cap - len(active), borrowable)

    def take_parked(self) -> list[int]:
        """Every parked delivery, unparked: a stopping worker queues them again."""
        with self._lock:
            taken = [delivery_id for queue in self._parked.values() for delivery_id in queue]
            self._parked.clear()
        return taken

    def parked_count(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._parked.values())
