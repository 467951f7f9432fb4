"""Per-endpoint cap on deliveries in flight inside one worker process.

A receiver that hangs until the timeout would otherwise fill every delivery thread and stall
healthy endpoints behind it. Over the cap, a delivery is parked (not claimed: it stays due
in the database, so a crash loses nothing) and handed back when that endpoint frees a slot."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque


class EndpointGate:
    def __init__(self, cap: int):
        self.cap = cap
        self._lock = threading.Lock()
        self._active: Counter[int] = Counter()
        self._parked: defaultdict[int, deque[int]] = defaultdict(deque)

    def enter(self, endpoint_id: int, delivery_id: int) -> bool:
        """Take a slot for the endpoint, or park the delivery and return False."""
        with self._lock:
            if self._active[endpoint_id] < self.cap:
                self._active[endpoint_id] += 1
                return True
            self._parked[endpoint_id].append(delivery_id)
            return False

    def leave(self, endpoint_id: int) -> int | None:
        """Free the slot; returns a parked delivery of the same endpoint to run next."""
        with self._lock:
            self._active[endpoint_id] -= 1
            if self._active[endpoint_id] <= 0:
                del self._active[endpoint_id]
            parked = self._parked.get(endpoint_id)
            if parked:
                next_id = parked.popleft()
                if not parked:
                    del self._parked[endpoint_id]
                return next_id
            return None

    def parked_count(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._parked.values())
