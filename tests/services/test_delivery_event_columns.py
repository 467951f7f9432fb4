"""The event's type and merchant copied onto its deliveries (migration 0011, issue 16).

Every way a delivery is made writes the copies; the deliveries written before 0011 are
filled in batches (services/delivery_event_columns.py) by the CLI and by the worker's
retention thread; the monitor's merchant, type and category filters give the same answer
on a table that is unfilled, half filled (they join events) and filled (they read the
copies, a category one type at a time)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from tests.support.query_plans import Statements, postgres_plan_nodes, sqlite_searches
from webhook_admin.clock import utcnow
from webhook_admin.delivery.retention_thread import RetentionThread, lock_key
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus, Event
from webhook_admin.queues import get_redis
from webhook_admin.services import delivery_event_columns as columns
from webhook_admin.services.endpoint_test_event import send_test_event
from webhook_admin.services.queries import DeliveryFilters, count_deliveries, deliveries_page
from webhook_admin.services.replay import replay_missed

TYPES = ("transaction.approved", "transaction.declined", "refund.created", "refund.failed")
CATEGORY_OF = {"transaction": "Transactions", "refund": "Refunds"}
MERCHANTS = (None, "m_1", "m_2")
STATUSES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED)


def copies_differing_from_their_event() -> list[tuple]:
    """Deliveries whose copies are missing or are not their event's type and merchant."""
    rows = db.session.execute(
        select(
            Delivery.id, Delivery.event_type, Delivery.merchant_id, Event.type, Event.merchant_id
        ).join(Event, Delivery.event_id == Event.id)
    ).all()
    return [r for r in rows if (r[1], r[2]) != (r[3], r[4])]


def test_each_way_of_making_a_delivery_copies_its_events_type_and_merchant(
    app, post_event, add_endpoint
):
    endpoint = add_endpoint("http://127.0.0.1:9/hook", ("transaction.approved", "refund.created"))
    assert post_event(merchant_id="m_42").status_code == 202  # ingest, with a merchant
    assert post_event("refund.created").status_code == 202  # ...and without
    send_test_event(endpoint, "ops@example.com")  # a test event
    db.session.commit()
    late = add_endpoint("http://127.0.0.1:9/late")  # a replay of the missed events
    replay_missed(late.id, utcnow() - timedelta(hours=1), "ops@example.com", lambda _ids: None)
    event = Event(id="evt_orm", type="refund.created", merchant_id="m_7", data={},
                  occurred_at=utcnow(), body_sha256="0" * 64)  # fmt: skip
    db.session.add_all([event, Delivery(event=event, endpoint_id=endpoint.id)])  # the ORM
    db.session.flush()
    db.session.add(Delivery(event_id="evt_orm", endpoint_id=late.id))  # ...by id alone
    db.session.commit()

    made = db.session.execute(select(Delivery.event_type, Delivery.merchant_id)).all()
    assert len(made) == 6  # 2 ingested, 1 test, 1 replayed (approved only), 2 by the ORM
    assert ("transaction.approved", "m_42") in made and ("refund.created", "m_7") in made
    assert not copies_differing_from_their_event()


def add_rows(rows: list[tuple[str, str | None, str, bool]]) -> list[int]:
    """One event and one delivery per (type, merchant, status, copied): copied False is a
    delivery written before migration 0011 (both copies NULL). Returns their ids, in order."""
    now = utcnow()
    db.session.execute(
        insert(Event.__table__),
        [
            {"id": f"evt_{i}", "type": t, "merchant_id": m, "data": {}, "occurred_at": now,
             "received_at": now, "body_sha256": "0" * 64, "source": "ingest"}
            for i, (t, m, _status, _copied) in enumerate(rows)
        ],
    )  # fmt: skip
    endpoint_id = db.session.scalar(select(db.text("id")).select_from(db.text("endpoints")))
    db.session.execute(
        insert(Delivery.__table__),
        [
            {"event_id": f"evt_{i}", "endpoint_id": endpoint_id, "status": status,
             "attempts_count": 1, "next_trigger": "automatic", "created_at": now,
             "event_type": t if copied else None, "merchant_id": m if copied else None}
            for i, (t, m, status, copied) in enumerate(rows)
        ],
    )  # fmt: skip
    db.session.commit()
    return list(db.session.scalars(select(Delivery.id).order_by(Delivery.id)))


def filters_to_check() -> list[DeliveryFilters]:
    return [
        *(DeliveryFilters(merchant_id=m) for m in MERCHANTS if m),
        *(DeliveryFilters(event_type=t) for t in TYPES),
        *(DeliveryFilters(category=c) for c in CATEGORY_OF.values()),
        DeliveryFilters(category="Refunds", merchant_id="m_1"),
        DeliveryFilters(category="Transactions", status=DeliveryStatus.FAILED),
        DeliveryFilters(category="Transactions", event_type="transaction.declined"),
        DeliveryFilters(category="Transactions", event_type="refund.failed"),  # not of it
        DeliveryFilters(category="No such category"),
    ]


def expected_ids(rows, ids: list[int], filters: DeliveryFilters) -> list[int]:
    """The matching deliveries' ids (newest first), worked out from the rows."""
    return [
        ids[i]
        for i, (t, m, status, _copied) in reversed(list(enumerate(rows)))
        if (not filters.merchant_id or m == filters.merchant_id)
        and (not filters.event_type or t == filters.event_type)
        and (not filters.category or CATEGORY_OF[t.split(".")[0]] == filters.category)
        and (not filters.status or status == filters.status)
    ]


def paged_ids(filters: DeliveryFilters, limit: int) -> list[int]:
    """Every page of the filter, `limit` at a time, following the cursor."""
    ids, cursor = [], None
    while True:
        page = deliveries_page(filters, cursor=cursor, limit=limit)
        ids += [d.id for d in page.items]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def assert_filters_answer(rows, ids: list[int], limit: int) -> None:
    columns.forget_filled()
    for filters in filters_to_check():
        want = expected_ids(rows, ids, filters)
        assert paged_ids(filters, limit) == want, filters
        assert count_deliveries(filters) == len(want), filters


def reset_rows() -> None:
    for model in (Attempt, Delivery, Event):
        db.session.execute(delete(model))
    db.session.commit()


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(TYPES),
            st.sampled_from(MERCHANTS),
            st.sampled_from(STATUSES),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    ),
    batch=st.integers(1, 8),
    limit=st.integers(1, 6),
)
def test_the_filters_answer_the_same_before_during_and_after_the_fill(
    app, add_endpoint, rows, batch, limit
):
    reset_rows()
    if not db.session.scalar(select(db.func.count()).select_from(db.text("endpoints"))):
        add_endpoint("http://127.0.0.1:9/hook")
    ids = add_rows(rows)
    all_copied = all(copied for *_, copied in rows)
    columns.forget_filled()
    assert columns.columns_filled() == all_copied
    assert_filters_answer(rows, ids, limit)

    # One batch, then stopped: half filled, the filters still join events.
    first = columns.fill_event_columns(batch=batch, on_batch=lambda _stats: False)
    assert first.rows == min(batch, sum(not copied for *_, copied in rows))
    assert_filters_answer(rows, ids, limit)

    rest = columns.fill_event_columns(batch=batch)
    assert rest.finished and first.rows + rest.rows == sum(not c for *_, c in rows)
    assert not copies_differing_from_their_event()
    columns.forget_filled()
    assert columns.columns_filled()
    assert_filters_answer(rows, ids, limit)


def test_a_web_process_switches_to_the_copies_once_the_fill_is_done_and_back(app, add_endpoint):
    """It asks again every RECHECK_SECONDS: filled once the fill is done, and unfilled again
    when a delivery without the copies appears (an old release's ingest in a rolling deploy)."""
    add_endpoint("http://127.0.0.1:9/hook")
    add_rows([("refund.created", "m_1", DeliveryStatus.SUCCEEDED, False)])
    assert not columns.columns_filled()
    columns.fill_event_columns()
    assert not columns.columns_filled()  # remembered for RECHECK_SECONDS
    app.extensions[columns._STATE_KEY]["asked"] -= columns.RECHECK_SECONDS
    assert columns.columns_filled()
    db.session.execute(update(Delivery).values(event_type=None, merchant_id=None))
    db.session.commit()
    assert columns.columns_filled()
    app.extensions[columns._STATE_KEY]["asked"] -= columns.RECHECK_SECONDS
    assert not columns.columns_filled()
    page = deliveries_page(DeliveryFilters(merchant_id="m_1"))  # joined: still found
    assert [d.event_id for d in page.items] == ["evt_0"]


def test_the_cli_fills_every_delivery_and_says_how_many(app, cli, add_endpoint):
    add_endpoint("http://127.0.0.1:9/hook")
    add_rows([(t, "m_1", DeliveryStatus.SUCCEEDED, i % 3 == 0) for i, t in enumerate(TYPES * 5)])

    result = cli.invoke(args=["deliveries", "fill-event-columns", "--batch", "4", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "filled": 13,
        "batches": 4,
        "seconds": pytest.approx(0, abs=5),
    }
    assert not copies_differing_from_their_event()
    again = cli.invoke(args=["deliveries", "fill-event-columns"])
    assert again.exit_code == 0 and "filled 0 deliveries" in again.output


@pytest.mark.parametrize(
    "args, complaint",
    [(["--batch", "0"], "0 is not in the range 1<=x<=100000"),
     (["--batch", "many"], "'many' is not a valid integer"),
     (["--pause", "-1"], "-1.0 is not in the range 0<=x<=100")],
)  # fmt: skip
def test_the_cli_refuses_a_bad_option_and_fills_nothing(app, cli, add_endpoint, args, complaint):
    add_endpoint("http://127.0.0.1:9/hook")
    add_rows([("refund.created", None, DeliveryStatus.SUCCEEDED, False)])

    result = cli.invoke(args=["deliveries", "fill-event-columns", *args])

    assert result.exit_code == 2 and complaint in result.output
    assert db.session.scalar(select(Delivery.event_type)) is None


def test_the_workers_retention_thread_fills_the_rows_after_its_purge(app, add_endpoint):
    add_endpoint("http://127.0.0.1:9/hook")
    add_rows([(t, None, DeliveryStatus.SUCCEEDED, False) for t in TYPES])
    get_redis().delete(lock_key())

    stats = RetentionThread(app, retention_days=30).purge_if_ours()

    assert stats.finished and stats.extra["event_columns_filled"] == len(TYPES)
    assert not copies_differing_from_their_event()
    # Another worker in the same interval finds the lock taken and does nothing.
    assert RetentionThread(app, retention_days=30).purge_if_ours() is None


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_each_fill_batch_reads_its_own_rows_only(app, add_endpoint, analyzed):
    """The fill walks the rows left in id order, a batch at a time: no batch reads the rest.
    On PostgreSQL `event_type IS NULL AND id > x ORDER BY id` on (event_type, id) read every
    NULL entry and sorted them (IS NULL is no equality to its planner), so a fill of 10M
    rows slowed down batch after batch; the partial index of the unfilled rows is in order."""
    add_endpoint("http://127.0.0.1:9/hook")
    add_rows([("refund.created", None, DeliveryStatus.SUCCEEDED, False)] * 3000)
    if analyzed:
        db.session.execute(db.text("ANALYZE"))
        db.session.commit()
    after = db.session.scalar(select(db.func.min(Delivery.id))) + 1000

    with Statements() as captured:
        rows, _last = columns.fill_batch(after, 100)
    db.session.rollback()

    assert rows == 100
    [(sql, params)] = [
        (sql, params) for sql, params in captured.seen if sql.lstrip().startswith("SELECT")
    ]
    if db.engine.dialect.name == "sqlite":
        plan = sqlite_searches(sql, params)
        assert not [line for line in plan if "TEMP B-TREE" in line or line.startswith("SCAN")], plan
        return
    nodes = postgres_plan_nodes(sql, params)
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
    read = [
        n["Actual Rows"] * n["Actual Loops"]
        for n in nodes
        if n.get("Relation Name") == "deliveries"
    ]
    assert read and max(read) <= 100, read
