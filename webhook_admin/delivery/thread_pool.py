"""The delivery threads of one worker process: a fixed number of slots, the executor that
runs work in them, and reservations (slots taken before the work is known).

The rule that keeps the runner from deadlocking is this API, not a comment: a delivery
thread never waits for a free thread. Every free thread may be reserved by the fresh
dispatcher, which may itself be waiting for that delivery thread to finish (a first version
deadlocked exactly so). So the two calls that wait, `start_when_free` and `reserve`, refuse
to run on a delivery thread (WaitOnDeliveryThread, at once, instead of a hang under load);
a delivery thread has `start_if_free`, which never waits, and runs the rest itself.

Every slot is given back by the pool itself when the work run in it returns (or raises).

All the threads are started when the pool is built, before the worker takes work: started
on demand, the first burst after a worker starts (the whole of a benchmark's window, or a
backlog after a deploy) paid a thread start and its app context per delivery, on the
dispatcher's thread, while the GIL was busiest (issue 16: `py-spy dump` 1-2 s into scenario 2
showed the dispatcher in `Thread.start` and half the pool not yet there).

The threads are our own, fed by one `queue.SimpleQueue`, not a `ThreadPoolExecutor`: every
start here goes into a slot the caller already holds, so a free thread is always waiting
and nothing needs the executor's idle-thread accounting or a `Future` per delivery (the
executor's `submit` was ~8 % of the worker's CPU in scenario 2, issue 16, session 16). Work
that raises is logged here: nobody reads a result."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class WaitOnDeliveryThread(RuntimeError):
    """A delivery thread asked to wait for a free thread: it could wait on itself."""


class PoolClosed(RuntimeError):
    """Work was started after `shutdown`, or on a pool whose threads could not start."""


class DeliveryPool:
    def __init__(self, threads: int, initializer: Callable[[], None] | None = None):
        self.threads = threads
        self._slots = threading.BoundedSemaphore(threads)
        self._local = threading.local()
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._closed: str | None = None  # why nothing more may start, once it may not
        self._closing = threading.Lock()
        self._initializer = initializer
        self._threads = [
            threading.Thread(target=self._serve, args=(n,), name=f"delivery_{n}", daemon=True)
            for n in range(threads)
        ]
        # Every thread runs its initializer, then meets the others here before any work.
        self._everyone = threading.Barrier(threads + 1, timeout=60)
        for thread in self._threads:
            thread.start()
        # A thread whose initializer failed breaks the barrier: nothing waits on it any more,
        # and the pool refuses work from then on (`start_reserved` raises PoolClosed).
        with contextlib.suppress(threading.BrokenBarrierError):
            self._everyone.wait()

    def _serve(self, number: int) -> None:
        self._local.delivery_thread = True
        try:
            if self._initializer is not None:
                self._initializer()
        except BaseException:
            log.exception("delivery thread %d could not start; the pool takes no work", number)
            with self._closing:
                self._closed = "a delivery thread could not start (see the log)"
            self._everyone.abort()
            return
        with contextlib.suppress(threading.BrokenBarrierError):
            self._everyone.wait()
        while (item := self._work.get()) is not None:
            work, args = item
            try:
                work(*args)
            except Exception:  # the thread lives on; the work's own code records its outcome
                log.exception("delivery work %s raised", getattr(work, "__qualname__", work))
            finally:
                self._slots.release()

    def started_threads(self) -> int:
        """Threads alive and serving (for the tests)."""
        return sum(thread.is_alive() for thread in self._threads)

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
        """Run `work(*args)` in a slot the caller holds (reserved). On a closed pool the
        slot is given back and PoolClosed raised."""
        with self._closing:  # never behind shutdown's end-of-work marks, where nothing runs it
            if self._closed is None:
                self._work.put((work, args))
                return
        self._slots.release()
        raise PoolClosed(self._closed)

    def unreserve(self, count: int = 1) -> None:
        """Give back reserved slots that were not used."""
        for _ in range(count):
            self._slots.release()

    def shutdown(self) -> None:
        """Wait for the work started to finish; start nothing more."""
        with self._closing:
            if self._closed is None:
                self._closed = "the pool is shut down"
            for _ in self._threads:
                self._work.put(None)  # after all the work already queued: it still runs
        for thread in self._threads:
            thread.join()
