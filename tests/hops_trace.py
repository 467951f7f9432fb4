"""The hops of one delivery, from the ingest view to its attempt row (docs/architecture.md).

Not part of the suite (the name does not start with test_): run it by name, on any checkout,
to count again: `HOPS_OUT=/tmp/hops.json .venv/bin/pytest tests/hops_trace.py -q`, then
`python tests/hops_trace.py /tmp/hops.json`. Every call from one of our functions to another
is recorded (profiling hooks on every thread), each function once, in order; comprehensions
are left out, and so is what is not the delivery's: building the runner and the dispatcher,
thread start-up, the test's own signing."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from sqlalchemy import func, select

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "webhook_admin") + os.sep
SKIP = {"<genexpr>", "<listcomp>", "<dictcomp>", "<setcomp>"}


def test_trace(app, add_endpoint, post_event, receiver):
    from webhook_admin.delivery.fresh_dispatcher import FreshDispatcher
    from webhook_admin.delivery.runner import DeliveryRunner
    from webhook_admin.extensions import db
    from webhook_admin.models import Attempt
    from webhook_admin.queues import FRESH, get_redis, queue_name

    add_endpoint(receiver.url)
    calls: list[tuple[str, str, str]] = []  # (thread, caller, callee)
    lock = threading.Lock()

    def name(frame):
        code = frame.f_code
        path = code.co_filename
        if not path.startswith(PKG):
            return None
        return f"{path[len(PKG) :]}:{getattr(code, 'co_qualname', code.co_name)}"

    def profile(frame, event, arg):
        if event != "call" or frame.f_code.co_name in SKIP:
            return
        callee = name(frame)
        if callee is None:
            return
        caller = frame.f_back
        while caller is not None and name(caller) is None:
            caller = caller.f_back  # through library frames (Flask, the executor, ...)
        with lock:
            calls.append((threading.current_thread().name, name(caller) if caller else "-", callee))

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        post_event(event_id="evt_hops")
        runner = DeliveryRunner(app, threads=4)
        dispatcher = FreshDispatcher(runner, get_redis(), queue_name(FRESH))
        dispatcher.start()
        deadline = time.time() + 20
        while time.time() < deadline:
            db.session.rollback()
            if db.session.scalar(select(func.count()).select_from(Attempt)):
                break
            time.sleep(0.05)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    dispatcher.stop()
    runner.shutdown()
    assert receiver.requests
    seen, order = set(), []
    for thread, caller, callee in calls:
        kind = thread.split("_")[0].split("-")[0]
        if callee not in seen:
            seen.add(callee)
            order.append((kind, caller, callee))
    with open(os.environ["HOPS_OUT"], "w") as out:
        json.dump(order, out, indent=0)


SETUP = (
    "enter_delivery_thread",
    "_enter_app_context",
    "_Watchdog._run",
    "AttemptWriter.run",
    "_close_connection",
    "_sqlite_pragmas",
)


def count(path: str) -> None:
    with open(path) as source:
        recorded = json.load(source)
    hops, setup = [], False
    for thread, caller, callee in recorded:
        if callee.endswith(("DeliveryRunner.__init__", "FreshDispatcher.__init__")):
            setup = True
        if (thread == "MainThread" and setup) or callee.endswith("signing.py:sign"):
            continue
        if callee.endswith(SETUP):
            continue
        if callee.endswith("FreshDispatcher.run"):
            setup = False
        hops.append((thread, caller, callee))
    callers = {caller for _, caller, _ in hops}
    spine = [hop for hop in hops if hop[2] in callers]  # functions that call on
    into_services = [
        h for h in hops if h[1].startswith("delivery/") and h[2].startswith("services/")
    ]
    print(
        f"calls {len(hops)}, files {len({h[2].split(':')[0] for h in hops})}, "
        f"threads {len({h[0] for h in hops})}, spine {len(spine)}, "
        f"delivery wing -> services {len(into_services)}"
    )
    for number, (thread, _, callee) in enumerate(spine, 1):
        print(f"{number:3} {thread:10} {callee}")


if __name__ == "__main__":
    count(sys.argv[1])
