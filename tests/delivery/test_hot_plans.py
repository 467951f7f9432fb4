"""The hot delivery statements look rows up by an index, whatever history the tables hold
(issue 16).

On SQLite a subquery of the claim's RETURNING compared the claimed row's bare event_id with
events.id and SCANned the whole events table, five times per claimed delivery: scenario 2
ran at ~45 % of its fresh-database throughput once an earlier run had left 2,000 events
behind (bench/findings.md). These tests run the real hot paths (claim one and several,
record the attempts, settle a late success, the sweeper's lease recovery and due query) on
tables with history rows, capture each statement as it reached the database, and ask the
database for its plan: none may scan a table that grows with history. Both without
statistics (a fresh install: nothing here runs ANALYZE) and after ANALYZE."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import insert, text

from tests.support.query_plans import (
    Statements,
    postgres_generic_plan,
    scans_of_growing_tables,
    sqlite_searches,
    thrown_away,
)
from webhook_admin.clock import utcnow
from webhook_admin.delivery.attempt import claim_committed
from webhook_admin.delivery.claims import (
    Outcome,
    attempt_row,
    due_deliveries,
    expired_leases,
    finish_attempts,
)
from webhook_admin.delivery.lease_recovery import recover_expired_leases
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus, Event
from webhook_admin.services.metrics import oldest_due_seconds

HISTORY = 3000


def insert_events(prefix: str, rows: int, at) -> None:
    """`rows` ingested events `evt_<prefix>_<n>`, received at `at`, one delivery each."""
    db.session.execute(
        insert(Event.__table__),
        [
            {
                "id": f"evt_{prefix}_{i}",
                "type": "transaction.approved",
                "data": {"amount": i},
                "occurred_at": at,
                "received_at": at,
                "body_sha256": "0" * 64,
                "source": "ingest",
                "delivery_count": 1,
            }
            for i in range(rows)
        ],
    )


def add_history(endpoint_id: int, rows: int) -> None:
    """`rows` delivered events, each with its succeeded delivery and its attempt."""
    now = utcnow() - timedelta(days=1)
    insert_events("history", rows, now)
    db.session.execute(
        insert(Delivery.__table__),
        [
            {
                "event_id": f"evt_history_{i}",
                "event_type": "transaction.approved",  # as fan-out copies it (0011)
                "endpoint_id": endpoint_id,
                "status": DeliveryStatus.SUCCEEDED,
                "attempts_count": 1,
                "next_trigger": "automatic",
                "created_at": now,
                "completed_at": now,
                "last_status_code": 200,
            }
            for i in range(rows)
        ],
    )
    ids = db.session.execute(text("SELECT id FROM deliveries ORDER BY id")).scalars().all()
    db.session.execute(
        insert(Attempt.__table__),
        [
            attempt_row(
                delivery_id=delivery_id,
                endpoint_id=endpoint_id,
                number=1,
                trigger="automatic",
                started_at=now,
                request_url="http://127.0.0.1:9/hook",
                request_body="x" * 1000,
                response_status=200,
                succeeded=True,
            )
            for delivery_id in ids
        ],
    )
    db.session.commit()


def add_waiting(endpoint_id: int, count: int) -> list[int]:
    now = utcnow()
    ids = []
    for i in range(count):
        event_row = Event(
            id=f"evt_waiting_{i}",
            type="transaction.approved",
            data={"amount": i},
            occurred_at=now,
            received_at=now,
            body_sha256="0" * 64,
        )
        delivery = Delivery(event_id=event_row.id, endpoint_id=endpoint_id, next_attempt_at=None)
        db.session.add_all([event_row, delivery])
        db.session.flush()
        ids.append(delivery.id)
    db.session.commit()
    return ids


def hot_statements(endpoint_id: int) -> list[tuple[str, object]]:
    """Run the worker's hot paths once, on the app's real code, and return what they sent."""
    waiting = add_waiting(endpoint_id, 4)
    with Statements() as captured:
        one = claim_committed(waiting[:1], 60)
        many = claim_committed(waiting[1:], 60)
        claims = [*one.values(), *many.values()]
        assert len(claims) == 4, "the waiting deliveries were not claimed"
        now = utcnow()
        finished = [
            (
                claim,
                attempt_row(
                    delivery_id=claim.delivery_id,
                    endpoint_id=claim.endpoint_id,
                    number=claim.attempt_number,
                    trigger=claim.trigger,
                    started_at=now,
                    request_url="http://127.0.0.1:9/hook",
                    response_status=500,
                ),
                # Not succeeded: the finish also runs the settle statement.
                Outcome(DeliveryStatus.RETRYING, now + timedelta(seconds=30)),
            )
            for claim in claims
        ]
        assert finish_attempts(finished) == [True] * 4
        db.session.commit()
        recover_expired_leases((0, 0, 0))
        db.session.commit()
        due_deliveries(now + timedelta(minutes=1), 500)
        db.session.commit()
    return captured.touching_history()


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_hot_statements_never_scan_a_history_table(app, add_endpoint, analyzed):
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    add_history(endpoint.id, HISTORY)
    if analyzed:
        db.session.execute(text("ANALYZE"))
        db.session.commit()

    statements = hot_statements(endpoint.id)

    kinds = " ".join(sql.split(None, 1)[0].upper() for sql, _ in statements)
    # The claim (twice), the finish, the attempt insert, the settle and the sweeper's reads.
    assert kinds.count("UPDATE") >= 4 and "INSERT" in kinds and "SELECT" in kinds, kinds
    scans = {sql: scans_of_growing_tables(sql, params) for sql, params in statements}
    assert {sql: lines for sql, lines in scans.items() if lines} == {}
    # Nor reads the history through an index only to drop it (PostgreSQL: run, rolled
    # back; an insert reads nothing): the sweeper's due query, driven from the live
    # endpoints, read all 3,000 of the endpoint's deliveries without statistics.
    dropped = {
        " ".join(sql.split())[:120]: thrown_away(sql, params, most=HISTORY // 10)
        for sql, params in statements
        if not sql.lstrip().upper().startswith("INSERT")
    }
    assert {sql: lines for sql, lines in dropped.items() if lines} == {}


def test_the_claim_reads_the_event_by_its_key(app, add_endpoint):
    """The claim's RETURNING carries the claimed delivery's event (its type and data) from
    the event's own row, with history rows of other events around it."""
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    add_history(endpoint.id, 50)
    (delivery_id,) = add_waiting(endpoint.id, 1)

    (claim,) = claim_committed([delivery_id], 60).values()

    assert (claim.event_id, claim.event_type, claim.event_data) == (
        "evt_waiting_0",
        "transaction.approved",
        {"amount": 0},
    )


def assert_reads_its_rows_by_id(sql: str, params, most: int) -> None:
    """A claim's plan: SQLite searches deliveries by id only; PostgreSQL reads no more than
    `most` rows of a growing table only to drop them."""
    if db.engine.dialect.name == "sqlite":
        reads = [
            s for s in sqlite_searches(sql, params) if re.match(r"(SCAN|SEARCH) deliveries\b", s)
        ]
        assert reads and all(re.search(r"\b(rowid|id)=\?", s) for s in reads), reads
    else:
        assert thrown_away(sql, params, most=most) == []


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_a_claim_finds_its_deliveries_by_id_however_many_the_endpoint_has(
    app, add_endpoint, analyzed
):
    """A claim names its deliveries. Its plan must look them up, not walk the endpoint's
    deliveries (here 3,000 of history) and keep the listed ones: on PostgreSQL without
    statistics, `endpoint_id IN (the live endpoints)` became a join driven from the
    endpoints, so each claim cost more as the table grew (bench/findings.md, issue 16)."""
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    add_history(endpoint.id, HISTORY)
    if analyzed:
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    waiting = add_waiting(endpoint.id, 4)

    with Statements() as captured:
        assert len(claim_committed(waiting[:1], 60)) == 1
        assert len(claim_committed(waiting[1:], 60)) == 3

    claims = [(sql, p) for sql, p in captured.seen if sql.lstrip().startswith("UPDATE deliveries")]
    assert len(claims) == 2  # one alone, three in one statement
    for sql, params in claims:
        assert_reads_its_rows_by_id(sql, params, most=HISTORY // 10)


def add_backlog(endpoint_id: int, rows: int) -> list[int]:
    """`rows` events, each with a delivery waiting for its first try (a backlog), by bulk
    insert; their delivery ids."""
    now = utcnow()
    insert_events("backlog", rows, now)
    db.session.execute(
        insert(Delivery.__table__),
        [
            {
                "event_id": f"evt_backlog_{i}",
                "event_type": "transaction.approved",
                "endpoint_id": endpoint_id,
                "status": DeliveryStatus.PENDING,
                "attempts_count": 0,
                "next_trigger": "automatic",
                "created_at": now,
            }
            for i in range(rows)
        ],
    )
    ids = db.session.execute(
        text("SELECT id FROM deliveries WHERE event_id LIKE 'evt_backlog_%' ORDER BY id")
    )
    db.session.commit()
    return list(ids.scalars())


@pytest.mark.parametrize("claimed", [1, 3], ids=["one", "several"])
def test_a_claim_reads_only_its_deliveries_however_many_others_wait(app, add_endpoint, claimed):
    """Statistics taken when nothing waited (a large table ANALYZEd before a backlog grew),
    then 2,000 deliveries waiting: a claim still looks its rows up by id. With the waiting
    test written bare, PostgreSQL costed the partial ix_deliveries_due (waiting rows only)
    at one row and read the whole backlog through it for each claim, keeping its own (at
    100,000 retrying on 10M rows: 12.9 ms for a claim of one, bench/findings.md)."""
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    add_history(endpoint.id, HISTORY)
    db.session.execute(text("ANALYZE"))
    db.session.commit()
    backlog = add_backlog(endpoint.id, 2000)
    mine = backlog[1000 : 1000 + claimed]

    with Statements() as captured:
        assert len(claim_committed(mine, 60)) == claimed

    (sql, params), *_ = [
        (sql, p) for sql, p in captured.seen if sql.lstrip().startswith("UPDATE deliveries")
    ]
    assert_reads_its_rows_by_id(sql, params, most=10)


# The sweeper's reads and the index each must use (migration 0013: partial on PostgreSQL).
SWEEPER_READS = {
    "due": (lambda: due_deliveries(utcnow() + timedelta(minutes=1), 500), "ix_deliveries_due"),
    "oldest due": (oldest_due_seconds, "ix_deliveries_due"),
    "expired leases": (lambda: expired_leases(utcnow(), 500), "ix_deliveries_lease"),
}


@pytest.mark.parametrize("read", list(SWEEPER_READS))
@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_the_sweepers_reads_use_their_index_also_as_a_prepared_statement(
    app, add_endpoint, read, analyzed
):
    """The due and lease reads find their rows in their own index. On PostgreSQL those
    indexes hold only the rows they look for (WHERE status IN ('pending', 'retrying'), and
    'in_flight'), which a plan may use only if the statement's text implies it: psycopg
    prepares a statement run five times, and the generic plan PostgreSQL may then keep
    knows no parameter's value. So the statuses are literals (delivery_state.status_in);
    written as parameters, the generic plan read ix_deliveries_status_id instead."""
    run, index = SWEEPER_READS[read]
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    add_history(endpoint.id, HISTORY)
    add_waiting(endpoint.id, 3)
    if analyzed:
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    with Statements() as captured:
        run()
    (statement, params), *_ = [
        (sql, p) for sql, p in captured.seen if re.search(r"\bFROM deliveries\b", sql)
    ]

    if db.engine.dialect.name == "sqlite":
        plans = {"plan": sqlite_searches(statement, params)}
    else:
        with db.engine.connect() as connection:
            cursor = connection.connection.cursor()
            cursor.execute("EXPLAIN " + statement, params)
            custom = [row[0] for row in cursor.fetchall()]
            cursor.close()
        plans = {"custom plan": custom, "generic plan": postgres_generic_plan(statement, params)}
    assert {kind: any(index in line for line in lines) for kind, lines in plans.items()} == {
        kind: True for kind in plans
    }, plans


PARTIAL_ON_POSTGRESQL = {
    "ix_deliveries_due": "WHERE ((status)::text = ANY",
    "ix_deliveries_lease": "WHERE ((status)::text = 'in_flight'::text)",
    "ix_deliveries_error_id": "WHERE (last_error_class IS NOT NULL)",
    "ix_deliveries_status_class_id": "WHERE (last_status_code IS NOT NULL)",
}


def test_four_indexes_hold_only_the_rows_they_look_for_on_postgresql(app):
    """Migration 0013: a delivery that succeeds at its first try writes 30 index entries
    instead of 39 (a status change is never a HOT update). SQLite keeps them whole: its
    planner uses a partial index only for a WHERE that repeats the index's own terms."""
    if db.engine.dialect.name == "postgresql":
        rows = db.session.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(:names)"),
            {"names": list(PARTIAL_ON_POSTGRESQL)},
        ).all()
        found = {name: PARTIAL_ON_POSTGRESQL[name] in definition for name, definition in rows}
    else:
        rows = db.session.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        ).all()
        found = {
            name: " WHERE " not in sql.upper()
            for name, sql in rows
            if name in PARTIAL_ON_POSTGRESQL
        }
    assert found == dict.fromkeys(PARTIAL_ON_POSTGRESQL, True)
