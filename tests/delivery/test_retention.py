"""Retention: old finished deliveries, attempts and events go; waiting ones and anything inside
the window stay; a backlog finishes in one call, each batch in its own transaction."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, insert, select, text, update

from tests.support.work import run_queued_jobs
from webhook_admin.clock import utcnow
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus, Event
from webhook_admin.services.endpoints import EndpointInput, create_endpoint
from webhook_admin.services.retention import purge_expired


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def endpoint_id(url: str = "http://127.0.0.1:9/hook") -> int:
    endpoint, _ = create_endpoint(EndpointInput(url, ["transaction.approved"]), "test")
    db.session.commit()
    return endpoint.id


def add_history(endpoint: int, rows: list[tuple], prefix: str = "evt") -> None:
    """Events with one delivery and one attempt each, fast (Core executemany). Each row:
    (created days ago, status, completed days ago or None)."""
    now = utcnow()
    events, deliveries = [], []
    for n, (created, status, completed) in enumerate(rows):
        at = now - timedelta(days=created)
        events.append(
            {
                "id": f"{prefix}_{n}",
                "type": "transaction.approved",
                "data": {},
                "occurred_at": at,
                "received_at": at,
                "body_sha256": "0" * 64,
                "source": "ingest",
                "delivery_count": 1,
            }
        )
        deliveries.append(
            {
                "event_id": f"{prefix}_{n}",
                "endpoint_id": endpoint,
                "status": status,
                "attempts_count": 1,
                "next_trigger": "automatic",
                "created_at": at,
                "completed_at": None if completed is None else now - timedelta(days=completed),
            }
        )
    db.session.execute(insert(Event), events)
    db.session.execute(insert(Delivery), deliveries)
    ids = db.session.execute(
        select(Delivery.id, Delivery.created_at).where(Delivery.event_id.like(f"{prefix}_%"))
    ).all()
    db.session.execute(
        insert(Attempt),
        [
            {
                "delivery_id": i,
                "endpoint_id": endpoint,
                "number": 1,
                "trigger": "automatic",
                "started_at": at,
                "request_url": "http://127.0.0.1:9/hook",
                "request_headers": {},
                "request_body": "x" * 1000,
            }
            for i, at in ids
        ],
    )
    db.session.commit()


def test_purges_old_finished_deliveries_and_keeps_the_rest(app, post_event, receiver):
    create_endpoint(EndpointInput(receiver.url, ["transaction.approved"]), "test")
    db.session.commit()
    for n in range(5):
        post_event(event_id=f"evt_old_{n}")
    run_queued_jobs(app)
    post_event(event_id="evt_old_waiting")  # old but never attempted: must stay
    old = utcnow() - timedelta(days=31)
    db.session.execute(update(Delivery).values(created_at=old, completed_at=old))
    db.session.execute(update(Event).values(received_at=old))
    post_event(event_id="evt_new")
    db.session.commit()

    deleted = purge_expired(retention_days=30, batch=2)

    assert deleted.as_dict() == {"deliveries": 5, "events": 5}
    assert deleted.attempts == 5 and deleted.finished
    remaining = set(db.session.scalars(select(Event.id)))
    assert remaining == {"evt_old_waiting", "evt_new"}
    assert count(Attempt) == 0 and count(Delivery) == 2


def test_one_call_finishes_a_backlog_larger_than_the_old_cap(app):
    # The old purge stopped after 200 batches per call (100,000 rows an hour at 500 a batch,
    # while a day of traffic can be 1M): at batch=5, 1,200 rows need 240 batches.
    add_history(endpoint_id(), [(40, "succeeded", 40)] * 1200)

    stats = purge_expired(retention_days=30, batch=5)

    assert stats.finished and stats.batches > 200
    assert (stats.deliveries, stats.attempts, stats.events) == (1200, 1200, 1200)
    assert count(Delivery) == count(Attempt) == count(Event) == 0


def test_a_retry_inside_the_window_keeps_an_old_delivery(app):
    # Created 40 days ago, retried by hand and completed yesterday: the operator just looked
    # at it; it stays until its last try is older than the retention.
    add_history(endpoint_id(), [(40, "succeeded", 1), (40, "failed", 31), (40, "in_flight", None)])

    stats = purge_expired(retention_days=30)

    assert stats.deliveries == 1
    assert set(db.session.scalars(select(Event.id))) == {"evt_0", "evt_2"}


def test_an_event_stays_while_any_of_its_deliveries_does(app):
    first, second = endpoint_id(), endpoint_id("http://127.0.0.1:9/other")
    add_history(first, [(40, "succeeded", 40)])
    old = utcnow() - timedelta(days=40)
    db.session.execute(
        insert(Delivery),
        [{"event_id": "evt_0", "endpoint_id": second, "status": "retrying", "created_at": old}],
    )
    db.session.commit()

    stats = purge_expired(retention_days=30)

    assert (stats.deliveries, stats.events) == (1, 0)
    assert count(Event) == 1 and count(Delivery) == 1


def test_each_batch_commits_so_another_writer_gets_in_between(app, database_url):
    """A second connection (its own engine, as another process would) sees each batch's
    deletes committed and inserts a delivery between batches. On SQLite, with a 1 s busy
    timeout: a purge holding its write transaction open across batches makes it fail."""
    endpoint = endpoint_id()
    add_history(endpoint, [(40, "succeeded", 40)] * 30)
    other = create_engine(database_url)
    seen: list[int] = []

    def between(stats) -> bool:
        with other.begin() as connection:
            seen.append(connection.scalar(text("SELECT count(*) FROM deliveries")))
            n = len(seen)
            connection.execute(
                text(
                    "INSERT INTO events (id, type, data, occurred_at, received_at, body_sha256,"
                    " source, delivery_count) VALUES (:id, 'transaction.approved', '{}', :now,"
                    " :now, :sha, 'ingest', 1)"
                ),
                {"id": f"evt_live_{n}", "now": utcnow(), "sha": "0" * 64},
            )
            connection.execute(
                text(
                    "INSERT INTO deliveries (event_id, endpoint_id, status, attempts_count,"
                    " next_trigger, created_at) VALUES (:id, :endpoint, 'pending', 0,"
                    " 'automatic', :now)"
                ),
                {"id": f"evt_live_{n}", "endpoint": endpoint, "now": utcnow()},
            )
        return True

    try:
        stats = purge_expired(retention_days=30, batch=10, on_batch=between)
    finally:
        other.dispose()

    assert stats.deliveries == 30
    # After batch k the other connection saw 30 - 10k old rows plus its own k - 1 inserts.
    assert seen[:3] == [30 - 10 + 0, 30 - 20 + 1, 30 - 30 + 2]
    waiting = db.session.scalar(
        select(func.count()).where(Delivery.status == DeliveryStatus.PENDING)
    )
    assert waiting == len(seen)


def test_on_batch_can_stop_a_purge_and_the_next_call_goes_on(app):
    add_history(endpoint_id(), [(40, "succeeded", 40)] * 25)

    first = purge_expired(retention_days=30, batch=10, on_batch=lambda stats: False)
    second = purge_expired(retention_days=30, batch=10)

    assert (first.finished, first.deliveries) == (False, 10)
    assert (second.finished, second.deliveries) == (True, 15)
    assert count(Delivery) == 0


STATUSES = st.sampled_from(DeliveryStatus.ALL)
ROW = st.tuples(
    st.sampled_from([0.5, 29, 31, 45]),  # created, days ago (30 is the retention)
    STATUSES,
    st.sampled_from([None, 0.5, 29, 31]),  # completed, days ago
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(ROW, min_size=1, max_size=12), batch=st.integers(1, 5))
def test_exactly_the_finished_ones_older_than_the_cutoff_go(app, rows, batch):
    """For any mix of ages and statuses: a delivery goes iff it is final and both created and
    completed (when it was) before the cutoff; its attempt goes with it and its event when
    it has no delivery left; nothing else is touched."""
    db.session.execute(text("DELETE FROM attempts"))
    db.session.execute(text("DELETE FROM deliveries"))
    db.session.execute(text("DELETE FROM events"))
    db.session.commit()
    endpoint = db.session.scalar(text("SELECT min(id) FROM endpoints")) or endpoint_id()
    add_history(endpoint, rows)
    expected_gone = {
        f"evt_{n}"
        for n, (created, status, completed) in enumerate(rows)
        if status in DeliveryStatus.FINAL and created > 30 and (completed is None or completed > 30)
    }

    stats = purge_expired(retention_days=30, batch=batch)

    kept = set(db.session.scalars(select(Delivery.event_id)))
    assert kept == {f"evt_{n}" for n in range(len(rows))} - expected_gone
    assert set(db.session.scalars(select(Event.id))) == kept
    assert count(Attempt) == len(kept)
    assert stats.deliveries == stats.attempts == stats.events == len(expected_gone)


def test_one_worker_at_a_time_purges_and_then_not_before_the_interval(app):
    """The worker's retention thread (real Redis): a purge runs only with the lock; when it
    finishes, the lock stays for the interval, so no other worker purges again before it."""
    from webhook_admin.delivery.retention_thread import RetentionThread, lock_key
    from webhook_admin.queues import get_redis

    add_history(endpoint_id(), [(40, "succeeded", 40)] * 3)
    first, second = RetentionThread(app, 30), RetentionThread(app, 30)
    get_redis().set(lock_key(), "another worker", ex=60)
    assert first.purge_if_ours() is None and count(Delivery) == 3  # someone else holds it
    get_redis().delete(lock_key())

    stats = first.purge_if_ours()

    assert stats.finished and stats.deliveries == 3 and count(Delivery) == 0
    assert second.purge_if_ours() is None
    assert 3500 < get_redis().ttl(lock_key()) <= 3600  # the hourly interval
