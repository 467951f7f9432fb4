"""The sweeper's erasure after delivery (services/data_protection.py) on a database with
history (issue 16): it runs every 30 s, and it read every event each time (`SCAN events` on
SQLite, a sequential scan on PostgreSQL: 2.1 s at 3.3M events), even when no event type asks
for the erasure. Now it reads the types first and, for those that ask, only their events still
holding values (ix_events_sensitive_pending)."""

from __future__ import annotations

import pytest
from sqlalchemy import text, update

from tests.delivery.test_hot_plans import HISTORY, add_history
from tests.support.query_plans import Statements, scans_of_growing_tables
from webhook_admin.extensions import db
from webhook_admin.models import EventType
from webhook_admin.services.data_protection import purge_delivered_batch


def test_with_no_type_asking_for_erasure_no_event_is_read(app, add_endpoint):
    add_history(add_endpoint("http://127.0.0.1:9/hook").id, 10)
    db.session.execute(update(EventType).values(purge_after_delivery=False))
    db.session.commit()

    with Statements() as captured:
        assert purge_delivered_batch() == 0

    assert captured.touching_history() == []


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_the_erasure_finds_the_pending_events_by_an_index(app, add_endpoint, analyzed):
    add_history(add_endpoint("http://127.0.0.1:9/hook").id, HISTORY)
    db.session.execute(
        update(EventType)
        .where(EventType.name == "transaction.approved")
        .values(purge_after_delivery=True)
    )
    # A few delivered events still hold their values: the erasure's work.
    db.session.execute(
        text(
            "UPDATE events SET sensitive_encrypted = 'token' WHERE id IN ('evt_history_1', 'evt_history_2')"
        )
    )
    db.session.commit()
    if analyzed:
        db.session.execute(text("ANALYZE"))
        db.session.commit()

    with Statements() as captured:
        assert purge_delivered_batch() == 2

    statements = captured.touching_history()
    assert [sql.split(None, 1)[0].upper() for sql, _ in statements] == ["SELECT", "UPDATE"]
    scans = {sql: scans_of_growing_tables(sql, params) for sql, params in statements}
    assert {sql: lines for sql, lines in scans.items() if lines} == {}
