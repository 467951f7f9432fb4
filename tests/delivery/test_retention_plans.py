"""The purge's statements find their rows by an index, whatever the tables hold (issue 16).

Without the index on deliveries(created_at) (migration 0008_page_indexes, shared with the monitor's time filters) each batch's
`created_at < cutoff ... ORDER BY created_at LIMIT n` scanned deliveries, over the dead rows
of the batches before it: at 1M due rows every batch got slower. The purge runs here on real
code with old and recent history rows; every statement it sent is asked for its plan
(`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL), without statistics and after
ANALYZE: none may read a whole events, deliveries or attempts table (on PostgreSQL the
orphan-event checks are left to the planner's sizes, see below)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.delivery.test_retention import add_history, endpoint_id
from tests.support.query_plans import Statements, scans_of_growing_tables
from webhook_admin.extensions import db
from webhook_admin.services.retention import purge_expired


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_purge_statements_never_scan_a_history_table(app, analyzed):
    endpoint = endpoint_id()
    add_history(endpoint, [(1, "succeeded", 1)] * 2000, prefix="evt_recent")
    add_history(endpoint, [(40, "succeeded", 40)] * 1000, prefix="evt_old")
    if analyzed:
        db.session.execute(text("ANALYZE"))
        db.session.commit()

    with Statements() as captured:
        stats = purge_expired(retention_days=30, batch=400)

    assert stats.deliveries == 1000 and stats.events == 1000
    statements = captured.touching_history()
    kinds = " ".join(sql.split(None, 1)[0].upper() for sql, _ in statements)
    assert kinds.count("DELETE") >= 3 and "SELECT" in kinds, kinds
    if db.engine.dialect.name == "postgresql":
        # The orphan checks (NOT EXISTS a delivery of the event): on these small tables
        # PostgreSQL rightly hashes all of deliveries; at 1M rows it probed
        # ix_deliveries_event_id per event (plans in bench/findings.md, "Retention at scale");
        # since 0010 dropped it, an index that leads with event_id (10M: the pattern index).
        statements = [(sql, p) for sql, p in statements if "NOT (EXISTS" not in sql]
    # A batch's own statements name its 400 ids. At these 3,000 rows PostgreSQL without
    # statistics rightly reads deliveries once rather than probe its key 400 times (the plan
    # that passed before migration 0013 was a bitmap of the whole ix_deliveries_lease, small
    # only because every finished row in it was the same (status, NULL) key); with 1M rows
    # the key wins (checked at 10M: a bitmap of pk_deliveries; analyzed, ix_deliveries_created).
    # So PostgreSQL is asked with sequential scans off: an index must serve
    # every statement.
    scans = {
        sql: scans_of_growing_tables(sql, params, prefer_indexes=True) for sql, params in statements
    }
    assert {sql: lines for sql, lines in scans.items() if lines} == {}
