"""Four indexes of deliveries made partial on PostgreSQL (issue 16): fewer index entries per
claim and finish

Revision ID: 0013_partial_delivery_indexes
Revises: 0012_endpoint_status_stats
Create Date: 2026-12-02 17:00:00

A status change is never a HOT update, so every UPDATE of a delivery (the claim, the finish)
writes a new entry in each of its indexes whose WHERE the new row satisfies, and ingest's
INSERT one in each. Thirteen full indexes made that 39 entries per delivered delivery. Four
of them only ever look for some rows:

- `ix_deliveries_due (status, next_attempt_at)`: the sweeper's and the metrics' due
  deliveries, now `WHERE status IN ('pending', 'retrying')`;
- `ix_deliveries_lease (status, lease_expires_at)`: expired leases, `WHERE status =
  'in_flight'`;
- `ix_deliveries_error_id (last_error_class, id)`: the monitor's error filter, `WHERE
  last_error_class IS NOT NULL`;
- `ix_deliveries_status_class_id ((last_status_code / 100), id)`: the answer-class filter,
  `WHERE last_status_code IS NOT NULL`.

A delivery that succeeds at its first try now writes 30 entries (ingest 10, claim 10, finish
10). The filters' `=` on the column implies IS NOT NULL (PostgreSQL proves it for a strict
operator, whatever the parameter); the due and lease statements state their statuses as
literals (services/delivery_state.py: status_in), since a generic plan cannot prove a
parameter's value. The status-only reads use `ix_deliveries_status_id (status, id)` as before.

SQLite keeps the full indexes: its planner uses a partial index only for a WHERE that repeats
the index's terms, and its figures (scenario 2 ~900/s) are not limited by index writes.

On PostgreSQL everything is CONCURRENTLY, outside a transaction (the new index, then the drop,
then the rename); an interrupted build leaves an INVALID `*_new` index: drop it and run the
upgrade again. Expand only: the running release's statements use the partial indexes where
they can and `ix_deliveries_status_id` where they cannot.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0013_partial_delivery_indexes"
down_revision = "0012_endpoint_status_stats"
branch_labels = None
depends_on = None

# name: (key columns, INCLUDE, WHERE), as SQL
PARTIAL = {
    "ix_deliveries_due": ("status, next_attempt_at", "", "status IN ('pending', 'retrying')"),
    "ix_deliveries_lease": ("status, lease_expires_at", "", "status = 'in_flight'"),
    "ix_deliveries_error_id": ("last_error_class, id", "", "last_error_class IS NOT NULL"),
    "ix_deliveries_status_class_id": (
        "(last_status_code / 100), id",
        "INCLUDE (last_status_code)",
        "last_status_code IS NOT NULL",
    ),
}


def _rebuild(partial: bool) -> None:
    with op.get_context().autocommit_block():
        for name, (keys, include, where) in PARTIAL.items():
            condition = f" WHERE {where}" if partial else ""
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}_new")  # a failed run's
            op.execute(
                f"CREATE INDEX CONCURRENTLY {name}_new ON deliveries ({keys}) {include}{condition}"
            )
            op.execute(f"DROP INDEX CONCURRENTLY {name}")
            op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade():
    if op.get_context().dialect.name == "postgresql":
        _rebuild(partial=True)


def downgrade():
    if op.get_context().dialect.name == "postgresql":
        _rebuild(partial=False)
