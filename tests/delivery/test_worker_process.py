"""`python worker.py` as a real process: delivery, scheduled retries, sweeper, crash, SIGTERM."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.support.processes import wait_until
from tests.support.receiver import Reply
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery
from webhook_admin.queues import FRESH, RETRY, get_queue, get_redis, job_id_for
from webhook_admin.services.endpoints import EndpointInput, create_endpoint

# A short lease, so a killed worker's try is recovered within seconds (it must be at least
# twice the delivery timeout).
SHORT_LEASE = {"WEBHOOK_LEASE_SECONDS": "2", "WEBHOOK_DELIVERY_TIMEOUT": "1"}


def add_endpoint(url):
    endpoint, secret = create_endpoint(EndpointInput(url, ["transaction.approved"]), "test")
    db.session.commit()
    return endpoint


def statuses() -> list[str]:
    db.session.rollback()  # see what other processes committed
    return list(db.session.scalars(select(Delivery.status).order_by(Delivery.id)))


def attempt_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Attempt))


def test_worker_process_delivers_queued_events(app, post_event, receiver, start_worker):
    add_endpoint(receiver.url)
    for n in range(5):
        post_event(event_id=f"evt_proc_{n}")
    worker = start_worker()
    receiver.wait_for(5)
    wait_until(lambda: statuses() == ["succeeded"] * 5, message=worker.output())


def test_scheduled_retry_is_sent_by_rq_scheduler(app, post_event, receiver, start_worker):
    """With the sweeper off: only RQ's scheduled job can send the retry (the sweeper would
    rescue a retry job that crashed, and hide it)."""
    replies = iter([Reply(503), Reply(200)])
    receiver.responder = lambda request: next(replies)
    add_endpoint(receiver.url)
    post_event()
    worker = start_worker("--no-sweeper", WEBHOOK_RETRY_SCHEDULE="2")
    try:
        first, second = receiver.wait_for(2, timeout=10)
    except AssertionError as exc:
        raise AssertionError(worker.output() + repr(get_redis().keys("*"))) from exc
    # 2 s +-20 % jitter, and RQ's scheduler polls once a second
    assert 1.5 <= second.received_at - first.received_at <= 5.0
    wait_until(lambda: statuses() == ["succeeded"], message=worker.output())
    assert get_queue(RETRY).failed_job_registry.count == 0, worker.output()


def test_sweeper_resends_due_deliveries_after_redis_was_flushed(
    app, post_event, receiver, start_worker
):
    add_endpoint(receiver.url)
    for n in range(3):
        post_event(event_id=f"evt_flush_{n}")
    get_redis().flushall()  # Redis restarted empty: the jobs are gone, the rows are not
    worker = start_worker()
    receiver.wait_for(3, timeout=20)
    wait_until(lambda: statuses() == ["succeeded"] * 3, message=worker.output())


def test_disabled_endpoint_holds_deliveries_until_enabled(
    app, post_event, receiver, start_worker, cli
):
    endpoint = add_endpoint(receiver.url)
    post_event(event_id="evt_held")
    assert cli.invoke(args=["endpoints", "disable", str(endpoint.id)]).exit_code == 0
    start_worker()
    wait_until(lambda: get_queue(FRESH).count == 0)
    threading.Event().wait(1.0)  # the worker and a sweep had their chance
    assert receiver.requests == [] and statuses() == ["pending"]
    result = cli.invoke(args=["endpoints", "enable", str(endpoint.id)])
    assert "1 held deliveries queued" in result.output
    receiver.wait_for(1)
    wait_until(lambda: statuses() == ["succeeded"])


def test_killed_worker_lease_expires_and_delivery_is_sent_again(
    app, post_event, receiver, start_worker
):
    hold = threading.Event()
    calls = []

    def respond(request):
        calls.append(request)
        if len(calls) == 1:
            hold.wait(20)  # hold the first request while the worker is killed
        return Reply(200)

    receiver.responder = respond
    add_endpoint(receiver.url)
    post_event(event_id="evt_kill")
    worker = start_worker(**SHORT_LEASE)
    receiver.wait_for(1)
    worker.signal(signal.SIGKILL)
    worker.wait()
    hold.set()
    start_worker(**SHORT_LEASE)
    second = receiver.wait_for(2, timeout=20)[1]
    assert second.headers["webhook-id"] == "evt_kill"
    wait_until(lambda: statuses() == ["succeeded"])
    rows = db.session.execute(select(Attempt.number, Attempt.error_class).order_by(Attempt.number))
    assert rows.all() == [(1, "interrupted"), (2, None)]


def test_a_worker_killed_during_every_try_leaves_the_delivery_failed_after_the_last(
    app, post_event, receiver, start_worker
):
    """Schedule 1,1: three tries. Each is interrupted by SIGKILL while the receiver holds
    it; each must back off like a failure, and the third ends the delivery: no fourth."""
    receiver.responder = lambda request: Reply(200, delay=5)  # never answered in time
    add_endpoint(receiver.url)
    post_event(event_id="evt_killed_thrice")
    settings = {**SHORT_LEASE, "WEBHOOK_RETRY_SCHEDULE": "1,1"}
    for tries in (1, 2, 3):
        worker = start_worker(**settings)
        receiver.wait_for(tries, timeout=20)
        worker.signal(signal.SIGKILL)
        worker.wait()
    worker = start_worker(**settings)  # recovers the third try's lease
    wait_until(lambda: statuses() == ["failed"], timeout=20, message=worker.output())
    threading.Event().wait(3.0)  # a fourth try would have come by now
    assert len(receiver.requests) == 3
    rows = db.session.execute(select(Attempt.number, Attempt.error_class).order_by(Attempt.number))
    assert rows.all() == [(1, "interrupted"), (2, "interrupted"), (3, "interrupted")]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(receiver.requests)]
    # Each retry waited for the lease to expire and then for the schedule's 1 s (-20 %).
    assert all(gap >= 2.0 + 0.8 for gap in gaps), gaps


def test_sigterm_finishes_the_attempt_in_flight_and_exits_cleanly(
    app, post_event, receiver, start_worker
):
    receiver.responder = lambda request: Reply(200, delay=1.5)
    add_endpoint(receiver.url)
    post_event(event_id="evt_term")
    worker = start_worker()
    receiver.wait_for(1)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output()
    assert statuses() == ["succeeded"]
    assert attempt_count() == 1


@pytest.mark.parametrize("delay", [0.2, 0.9, 1.1, 1.3, 1.5])
def test_sigterm_during_startup_is_not_lost(app, start_worker, delay):
    """A SIGTERM that lands while the worker is starting must stop it: during the imports by
    the default action (nothing is in flight yet), later by a warm shutdown. It used to be
    noted and then ignored when it came just before RQ installed its handlers: the worker
    blocked on its queues."""
    worker = start_worker()
    time.sleep(delay)
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) in (0, -signal.SIGTERM), worker.output()


def test_sweeper_resends_a_delivery_whose_queued_job_was_popped_and_lost(app, post_event, receiver):
    from webhook_admin.delivery.sweeper import sweep_once

    add_endpoint(receiver.url)
    post_event(event_id="evt_lost")
    redis = get_redis()
    # A worker popped the job and died before running it: the hash still says "queued".
    job_id = redis.lpop(get_queue(FRESH).key).decode()
    delivery = db.session.scalars(select(Delivery)).one()
    delivery.next_attempt_at -= timedelta(seconds=30)  # due for a while, past the grace
    db.session.commit()
    assert sweep_once()["requeued"] == 0  # young: believed live
    redis.hset(f"rq:job:{job_id}", "enqueued_at", "2020-01-01T00:00:00.000000Z")
    assert sweep_once()["requeued"] == 1  # stale and not in its queue: sent again


def test_sweeper_resends_a_delivery_whose_started_job_belongs_to_a_dead_worker(app, post_event):
    from webhook_admin.delivery.sweeper import sweep_once

    add_endpoint("http://127.0.0.1:9/hook")
    post_event(event_id="evt_started")
    redis = get_redis()
    delivery = db.session.scalars(select(Delivery)).one()
    delivery.next_attempt_at -= timedelta(seconds=30)
    db.session.commit()
    job_key = f"rq:job:{job_id_for(delivery.id, 0)}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    redis.hset(job_key, mapping={"status": "started", "started_at": now})
    assert sweep_once()["requeued"] == 0  # a job running now is believed
    # A worker killed while its job waited for a free thread: "started" long ago.
    redis.hset(job_key, "started_at", "2020-01-01T00:00:00.000000Z")
    assert sweep_once()["requeued"] == 1


def test_worker_runs_several_processes_and_passes_sigterm_on(
    app, post_event, receiver, start_worker
):
    add_endpoint(receiver.url)
    supervisor = start_worker("--processes", "2", "--name", "pair")
    wait_until(lambda: len(get_redis().smembers("rq:workers")) == 2, message=supervisor.output())
    names = sorted(w.decode().rsplit(":", 1)[-1] for w in get_redis().smembers("rq:workers"))
    assert names == ["pair-1", "pair-2"]
    post_event(event_id="evt_pair")
    receiver.wait_for(1)
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait(30) == 0, supervisor.output()
    wait_until(lambda: not get_redis().smembers("rq:workers"))


def test_a_named_worker_killed_and_restarted_at_once_takes_its_name_back(
    app, post_event, receiver, start_worker
):
    """systemd's `Restart=always` with `--name %H` (docs/deployment.md): after a SIGKILL the
    dead process's RQ registration stays for minutes, and RQ refused the name to the new one,
    which exited (and would again at every restart)."""
    name = "named-restart"
    key = f"rq:worker:{name}"
    add_endpoint(receiver.url)
    redis = get_redis()
    first = start_worker("--processes", "1", "--threads", "4", "--name", name)
    wait_until(lambda: redis.hget(key, "pid") == str(first.process.pid).encode(), timeout=60)
    first.signal(signal.SIGKILL)
    first.wait()
    assert redis.exists(key) and not redis.hexists(key, "death")  # left behind
    second = start_worker("--processes", "1", "--threads", "4", "--name", name)
    wait_until(
        lambda: (
            redis.hget(key, "pid") == str(second.process.pid).encode()
            or second.process.poll() is not None
        ),
        timeout=60,
    )
    assert second.process.poll() is None, second.output()
    post_event(event_id="evt_named_restart")
    assert receiver.wait_for(1)[0].headers["webhook-id"] == "evt_named_restart"
    assert second.process.poll() is None, second.output()
    assert "which is gone: released" in second.output()


def test_a_second_worker_of_a_live_name_exits_and_says_why(app, start_worker):
    """A registration of that name from another host is a live worker: RQ's refusal stands,
    with a message an operator can act on (not RQ's traceback)."""
    from rq import SimpleWorker

    name = "taken-name"
    other = SimpleWorker([], name=name, connection=get_redis())
    other.hostname = "another-host"
    other.register_birth()
    try:
        worker = start_worker("--processes", "1", "--threads", "4", "--name", name)
        assert worker.wait(60) != 0
        assert (
            "another worker named 'taken-name' is running (host another-host" in worker.output()
        ), worker.output()
    finally:
        other.register_death()
