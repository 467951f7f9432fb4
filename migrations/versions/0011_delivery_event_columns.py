"""The event's type and merchant copied onto its deliveries (issue 16): the monitor's merchant,
type and category filters by an index of the delivery's own

Revision ID: 0011_delivery_event_columns
Revises: 0010_endpoint_status
Create Date: 2026-12-02 02:40:00

- `deliveries.event_type` and `deliveries.merchant_id`, nullable, no default: on both
  databases adding them rewrites no row (PostgreSQL 11+ and SQLite only change the table's
  definition). Fan-out writes them from this release on.
- `ix_deliveries_merchant_id (merchant_id, id)` and `ix_deliveries_event_type_id (event_type,
  id)`: the newest 50 deliveries of a merchant, a type or a category's types, and their
  bounded counts, are index ranges; before, the filters joined events and walked deliveries
  newest first, looking up each one's event (106,000 lookups for one page of a merchant at
  10M: 190-580 ms).
- `ix_deliveries_unfilled (id) WHERE event_type IS NULL`: the rows left to fill, in id order
  (empty once they are, and never entered by fan-out's rows).

The rows written before this release are filled afterwards in batches, by the worker (the
retention thread, after its purge) or at once by `flask deliveries fill-event-columns`;
the migration does not fill them itself, since at 10M rows that is minutes of writes inside
a deploy (bench/findings.md). Until every row is filled the filters keep joining events
(services/delivery_event_columns.py decides), so the running and the new release answer the
same. On PostgreSQL the indexes are built CONCURRENTLY, outside a transaction; an
interrupted build leaves an INVALID index: drop it and run the upgrade again.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0011_delivery_event_columns"
down_revision = "0010_endpoint_status"
branch_labels = None
depends_on = None

COLUMNS = ("event_type", "merchant_id")
INDEXES = (
    ("ix_deliveries_merchant_id", ["merchant_id", "id"]),
    ("ix_deliveries_event_type_id", ["event_type", "id"]),
)
# The deliveries still to fill, in id order: the fill's keyset walk and the readers' "any
# left?" probe. Partial: empty once the fill is done, and fan-out's rows never enter it.
# (event_type, id) cannot serve that walk on PostgreSQL: `IS NULL` is no equality to its
# planner, so it read every remaining NULL entry and sorted them, per batch.
UNFILLED = ("ix_deliveries_unfilled", ["id"], sa.text("event_type IS NULL"))


def upgrade():
    for name in COLUMNS:
        op.add_column("deliveries", sa.Column(name, sa.String(length=120), nullable=True))
    name, columns, where = UNFILLED
    if op.get_context().dialect.name != "postgresql":
        for index, keys in INDEXES:
            op.create_index(index, "deliveries", keys)
        op.create_index(name, "deliveries", columns, sqlite_where=where)
        return
    with op.get_context().autocommit_block():
        for index, keys in INDEXES:
            op.create_index(index, "deliveries", keys, postgresql_concurrently=True)
        op.create_index(
            name, "deliveries", columns, postgresql_where=where, postgresql_concurrently=True
        )


def downgrade():
    op.drop_index(UNFILLED[0], table_name="deliveries")
    for name, _columns in INDEXES:
        op.drop_index(name, table_name="deliveries")
    for name in COLUMNS:  # SQLite 3.35+ drops an unindexed column in place
        op.drop_column("deliveries", name)
