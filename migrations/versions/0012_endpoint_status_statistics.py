"""How often each endpoint's deliveries are in each status, for PostgreSQL's planner (issue 16)

Revision ID: 0012_endpoint_status_stats
Revises: 0011_delivery_event_columns
Create Date: 2026-12-02 16:45:00

`?status=failed&endpoint_id=N` (the monitor's filter, the endpoint page's own status filter,
their bounded counts) is answered from `ix_deliveries_endpoint_status_id` only when the planner
knows that this endpoint's failures are few. Its per-column statistics cannot tell it: it
multiplies "this endpoint has half the deliveries" by "a third of the deliveries failed" and
expects thousands of rows, so it counted the endpoint's failures through the status index and
threw every other endpoint's failures away (tests/views/test_page_plans.py: 1,501 rows read
for one, with a busy endpoint holding 4,500 delivered rows against another's 1,500 failures;
at 10M the failures of every other endpoint).

A multivariate MCV list on (endpoint_id, status) gives it the pairs that occur and how
often. It is built by ANALYZE (autovacuum's, or an operator's) from the same sample as the
columns' statistics, and nothing maintains it on writes: no cost on the claim, the finish or
ingest. PostgreSQL only (SQLite has no such statistics; its plans for these pages are chosen
by the index's columns alone, tests/views/test_page_plans.py).

CREATE STATISTICS takes a SHARE UPDATE EXCLUSIVE lock for a moment and reads nothing: reads
and writes of deliveries go on.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0012_endpoint_status_stats"
down_revision = "0011_delivery_event_columns"
branch_labels = None
depends_on = None

NAME = "st_deliveries_endpoint_status"


def upgrade():
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"CREATE STATISTICS {NAME} (mcv) ON endpoint_id, status FROM deliveries")


def downgrade():
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP STATISTICS {NAME}")
