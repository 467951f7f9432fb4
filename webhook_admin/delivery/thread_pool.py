"""The delivery threads of one worker process: a fixed number of slots, the executor that
runs work in them, and reservations (slots taken before the work is known).

The rule that keeps the runner from deadlocking is this API, not a comment: a delivery
thread never waits for a free thread. Every free thread may be reserved by the fresh
dispatcher, which may itself be waiting for that delivery thread to finish (a first version
deadlocked exactly so). So the two calls that wait, `start_when_free` and `reserve`, refuse
to run on a delivery thread (WaitOnDeliveryThread, at once, instead of a hang under load);
a delivery thread has `start_if_free`, which never waits, and runs the rest itself.

Every slot is given back by the pool itself when the work run in it returns (or raises).

All the threads are started when the pool is built (`prestart`), before the worker takes
work: `ThreadPoolExecutor` starts one per submit otherwise, so the first burst after a
worker starts (the whole of a benchmark's window, or a backlog after a deploy) paid a
thread start and its app context per delivery, on the dispatcher's thread, while the GIL
was busiest (issue 16: `py-spy dump` 1-2 s into scenario 2 showed the dispatcher in
`Thread.start` and half the pool not yet there)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


class WaitOnDeliveryThread(RuntimeError):
    """A delivery thread asked to wait for a free thread: it could wait on itself."""


class DeliveryPool:
    def __init__(
        self,
        threads: int,
        initializer: Callable[[], None] | None = None,
        prestart: bool = True,
    ):
        self.threads = threads
        self._slots = threading.BoundedSemaphore(threads)
        self._local = threading.local()

        def enter_delivery_thread() -> None:
            self._local.delivery_thread = True
            if initializer is not None:
                initializer()

        self._executor = ThreadPoolExecutor(
            threads, thread_name_prefix="delivery", initializer=enter_delivery_thread
        )
        if prestart:
            self._start_every_thread()

    def _start_every_thread(self) -> None:
        """Start all `threads` threads now: each submit below finds no idle thread (they all
        wait at the barrier), so the executor starts a new one for each."""
        everyone = threading.Barrier(self.threads + 1, timeout=60)
        for _ in range(self.threads):
            self._executor.submit(everyone.wait)
        # A thread that does not get there (its initializer failed: the executor is broken
        # and says so at the first submit) breaks the barrier: nothing waits on it any more.
        with contextlib.suppress(threading.BrokenBarrierError):
            everyone.wait()

    def started_threads(self) -> int:
        """Threads the executor has started (for the tests)."""
        return len(self._executor._threads)

    def on_delivery_thread(self) -> bool:
        return getattr(self._local, "delivery_thread", False)

    def _refuse_to_wait_here(self) -> None:
        if getattr(self._local, "delivery_thread", False):
            raise WaitOnDeliveryThread(
                "a delivery thread never waits for a free thread (every free one may be "
                "reserved by the dispatcher, which may be waiting for this one)"
            )

    # --- callers outside the pool (an RQ job's thread, the fresh dispatcher) may wait ----

    def start_when_free(self, work: Callable, *args) -> None:
        """Wait for a free thread (backpressure), then run `work(*args)` on it."""
        self._refuse_to_wait_here()
        self._slots.acquire()
        self.start_reserved(work, *args)

    def reserve(self, most: int) -> int:
        """Wait for one free thread, then take every other free one, up to `most` in all;
        returns how many are now the caller's (to `start_reserved` or `unreserve`)."""
        self._refuse_to_wait_here()
        self._slots.acquire()
        taken = 1
        while taken < most and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    # --- anyone, delivery threads included: nothing below waits for a thread ------------

    def start_if_free(self, work: Callable, *args) -> bool:
        """Run `work(*args)` on a free thread if there is one; False (nothing started) if
        every thread is busy or reserved."""
        if not self._slots.acquire(blocking=False):
            return False
        self.start_reserved(work, *args)
        return True

    def start_reserved(self, work: Callable, *args) -> None:
        """Run `work(*args)` in a slot the caller holds (reserved). Shutting down, the slot
        is given back and the executor's RuntimeError raised."""
        try:
            self._executor.submit(self._in_slot, work, args)
        except RuntimeError:
            self._slots.release()
            raise

    def unreserve(self, count: int = 1) -> None:
        """Give back reserved slots that were not used."""
        for _ in range(count):
            self._slots.release()

    def _in_slot(self, work: Callable, args: tuple) -> None:
        try:
            work(*args)
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        """Wait for the work started to finish; start nothing more."""
        self._executor.shutdown(wait=True)
