"""The library internals we rely on, one test each, so an upgrade of a pinned library that
changes them fails here, by name, instead of somewhere in the sender or the worker.

urllib3 (delivery/urllib3_pools.py) and RQ (rq_internals.py); the pins are in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import urllib3
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from webhook_admin import rq_internals
from webhook_admin.delivery import urllib3_pools


class RecordingDeadline:
    """What the sender's deadline exposes to the pools, recording what they did with it."""

    def __init__(self, expired: bool = False):
        self.expired = expired
        self.bound: list[object] = []
        self.unbound: list[object] = []

    def bind(self, conn) -> None:
        self.bound.append(conn)

    def unbind(self, conn) -> None:
        self.unbound.append(conn)


def deadline_pools() -> urllib3.PoolManager:
    manager = urllib3.PoolManager(num_pools=2, maxsize=1)
    urllib3_pools.use_deadline_pools(manager)
    return manager


def test_urllib3_hands_each_connection_to_the_post_and_takes_it_back_on_its_thread(receiver):
    """_get_conn binds the connection to the post's deadline, _put_conn unbinds it: the
    watchdog can only shut down the socket of a connection it knows."""
    manager = deadline_pools()
    deadline = RecordingDeadline()
    urllib3_pools.current.deadline = deadline
    try:
        response = manager.request("POST", receiver.url, body=b"{}", retries=False)
        assert response.status == 200
    finally:
        urllib3_pools.current.deadline = None
    pool = manager.connection_from_url(receiver.url)
    assert isinstance(pool, urllib3_pools.DeadlineHTTPPool)  # pool_classes_by_scheme held
    assert len(deadline.bound) == 1, "urllib3 no longer calls _get_conn once per request"
    assert deadline.unbound == deadline.bound, "urllib3 no longer calls _put_conn with it"
    manager.clear()


def test_urllib3_connects_through_our_connection_class(receiver):
    """A deadline that passed during the handshake stops the post in connect()."""
    manager = deadline_pools()
    urllib3_pools.current.deadline = RecordingDeadline(expired=True)
    try:
        with pytest.raises(urllib3.exceptions.HTTPError):
            manager.request("POST", receiver.url, body=b"{}", retries=False)
    finally:
        urllib3_pools.current.deadline = None
    assert receiver.requests == []  # connect() refused before a byte was sent
    manager.clear()


def test_rq_job_hash_has_the_fields_we_read_and_takes_the_ones_we_write(redis_server):
    redis = Redis.from_url(redis_server.url)
    queue = Queue(f"adapter-{uuid.uuid4().hex}", connection=redis)
    job = queue.enqueue("builtins.print", "adapter test")
    before = datetime.now(UTC).replace(tzinfo=None)
    with redis.pipeline() as pipe:
        rq_internals.read_job_fields(pipe, job.id)
        ((status, origin, enqueued_at, started_at),) = pipe.execute()
    assert status.decode() == JobStatus.QUEUED.value
    assert origin.decode() == queue.name
    assert abs(rq_internals.job_time(enqueued_at) - before) < timedelta(seconds=30)
    assert started_at in (None, b"")

    with redis.pipeline() as pipe:
        rq_internals.mark_started(pipe, [job.id], 60)
        pipe.execute()
    fetched = Job.fetch(job.id, connection=redis)
    assert fetched.get_status() == JobStatus.STARTED  # RQ reads what we wrote as its own
    assert abs(fetched.started_at.replace(tzinfo=None) - before) < timedelta(seconds=30)
    assert 0 < redis.ttl(Job.key_for(job.id)) <= 60
    queue.delete(delete_jobs=True)


def test_rq_worker_leaves_its_loop_when_asked_to_stop_before_its_first_turn(redis_server):
    """worker.py sets the flag for a signal that came before RQ's handlers; without it the
    worker blocks on its queues. In a process of its own: RQ installs signal handlers."""
    script = textwrap.dedent(
        f"""
        import uuid
        from redis import Redis
        from rq import Queue, SimpleWorker
        from webhook_admin.rq_internals import request_stop

        class Worker(SimpleWorker):
            def _install_signal_handlers(self):
                super()._install_signal_handlers()
                request_stop(self)

        redis = Redis.from_url({redis_server.url!r})
        queue = Queue("adapter-" + uuid.uuid4().hex, connection=redis)
        Worker([queue], connection=redis, name="adapter-" + uuid.uuid4().hex).work(
            burst=False, with_scheduler=False
        )
        print("left the loop")
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("RQ no longer leaves its loop on _stop_requested (rq_internals.request_stop)")
    assert done.returncode == 0, done.stderr
    assert "left the loop" in done.stdout


def test_rq_refuses_a_name_whose_registration_has_no_end_and_we_can_see_it(redis_server):
    """worker.py releases the name of a dead process of its host: it reads RQ's registration
    (hostname, pid) and relies on RQ refusing a name until `register_death` has run."""
    from rq import SimpleWorker

    redis = Redis.from_url(redis_server.url)
    name = "adapter-" + uuid.uuid4().hex
    first = SimpleWorker([], name=name, connection=redis)
    first.register_birth()
    held = rq_internals.unended_registration(SimpleWorker, redis, name)
    assert (held.hostname, held.pid) == (first.hostname, first.pid)
    with pytest.raises(ValueError, match="active worker named"):
        SimpleWorker([], name=name, connection=redis).register_birth()
    held.register_death()
    assert rq_internals.unended_registration(SimpleWorker, redis, name) is None
    SimpleWorker([], name=name, connection=redis).register_birth()  # the name is free again
    assert rq_internals.unended_registration(SimpleWorker, redis, "adapter-none") is None
