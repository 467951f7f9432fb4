"""Deployments sharing one Redis: every queue and key is named after the database, and a
worker refuses (and logs) a job for a delivery its database does not have."""

from __future__ import annotations

import threading

from rq import Worker
from sqlalchemy import select

from tests.support.processes import wait_until
from webhook_admin import create_app
from webhook_admin.delivery.sweeper import lock_key
from webhook_admin.extensions import db
from webhook_admin.models import Delivery
from webhook_admin.queues import (
    FRESH,
    MAINTENANCE,
    QUEUE_KINDS,
    RETRY,
    enqueue_deliveries,
    get_queue,
    get_redis,
    job_id_for,
    queue_name,
    queue_prefix,
    redis_key,
)
from webhook_admin.worker_presence import index_key, last_run_key

NOT_OURS = "that this database does not have: another deployment's job on a shared Redis?"


def names() -> dict[str, str]:
    """Every Redis name of ours, as the current app resolves them."""
    return {
        **{kind: queue_name(kind) for kind in QUEUE_KINDS},
        "job": job_id_for(1, 0),
        "sweeper lock": lock_key(),
        "sweeper last run": last_run_key(),
        "workers": index_key(),
        "throttle": redis_key("login-failures", "account", "a@example.com"),
    }


def test_two_databases_get_their_own_queue_names_and_web_and_worker_agree(
    app, environ, tmp_path, start_worker
):
    ours = names()
    other = create_app(environ | {"DATABASE_URL": f"sqlite:///{tmp_path}/other.db"})
    with other.app_context():
        theirs = names()
    assert not set(ours.values()) & set(theirs.values())
    with create_app(environ, web=False).app_context():  # the worker's app
        assert names() == ours
    assert all(queue_prefix() in name for name in ours.values())

    # A real worker process listens on exactly this app's queues.
    start_worker("--name", "ns-worker")
    worker = wait_until(lambda: Worker.find_by_key("rq:worker:ns-worker", get_redis()))
    assert worker.queue_names() == [queue_name(RETRY), queue_name(MAINTENANCE)]


def test_a_worker_leaves_the_jobs_of_another_database_alone(
    app, environ, tmp_path, receiver, add_endpoint, post_event, start_worker
):
    """Another deployment's job for "delivery 1" is not this database's delivery 1."""
    add_endpoint(receiver.url)
    post_event(event_id="evt_ours")
    (delivery_id,) = db.session.scalars(select(Delivery.id)).all()
    other = create_app(environ | {"DATABASE_URL": f"sqlite:///{tmp_path}/other.db"})
    with other.app_context():
        assert enqueue_deliveries([(delivery_id, 0)])
        assert enqueue_deliveries([(delivery_id, 1)], RETRY)
    worker = start_worker()
    receiver.wait_for(1)
    threading.Event().wait(1.5)  # time for a wrong second send, and for a sweep
    assert len(receiver.requests) == 1, worker.output()
    with other.app_context():
        assert get_queue(FRESH).count == 1 and get_queue(RETRY).count == 1
    assert get_queue(FRESH).count == 0


def test_worker_refuses_a_job_for_a_delivery_its_database_does_not_have(
    app, receiver, add_endpoint, start_worker
):
    """Both ways a job reaches a worker: the fresh dispatcher, and RQ's worker (retries)."""
    add_endpoint(receiver.url)
    assert enqueue_deliveries([(424242, 0)])
    assert enqueue_deliveries([(434343, 3)], RETRY)
    worker = start_worker("--threads", "2")
    for missing in (424242, 434343):
        wait_until(
            lambda missing=missing: f"job for delivery {missing} {NOT_OURS}" in worker.output(),
            timeout=10,
            message=worker.output(),
        )
    line = next(line for line in worker.output().splitlines() if "424242" in line)
    assert "WARNING" in line and queue_prefix() in line and "not sent" in line
    threading.Event().wait(0.5)
    assert receiver.requests == []
    assert get_queue(RETRY).failed_job_registry.count == 0, worker.output()
    assert get_queue(FRESH).count == 0 and get_queue(RETRY).count == 0
