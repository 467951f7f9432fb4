"""RQ job functions: thin, they take an id and hand it on."""

from __future__ import annotations

from flask import current_app

from .attempt import endpoint_of
from .fresh_dispatcher import refuse_unknown
from .runner import DeliveryRunner, current_runner, install_runner


def deliver(delivery_id: int) -> None:
    """Attempt one delivery (on the worker's thread pool when there is one). A job for a
    delivery this database does not have is refused with a warning, never sent."""
    if endpoint_of(delivery_id) is None:  # a primary-key read
        refuse_unknown(delivery_id)
        return
    runner = current_runner()
    if runner is None:
        # An RQ worker started without worker.py: attempt in this thread.
        runner = DeliveryRunner(current_app._get_current_object(), threads=1)
        install_runner(runner)
    if runner.concurrent:
        runner.submit(delivery_id)
    else:
        runner.run_inline(delivery_id)
