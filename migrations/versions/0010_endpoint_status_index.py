"""Pages at 10M, the rest (issue 16): the status filter of one endpoint by index, and the
endpoint page's figures and the answer class counted from their indexes alone

Revision ID: 0010_endpoint_status
Revises: 0009_sensitive_pending
Create Date: 2026-12-01 20:20:00

- `ix_deliveries_endpoint_status_id (endpoint_id, status, id)`, on PostgreSQL with
  `INCLUDE (created_at)`: `?status=failed&endpoint_id=N` (and the endpoint page's own status
  filter, the cancel and bulk retry of an endpoint's waiting deliveries) walked the
  endpoint's deliveries newest first and threw the other statuses away (all 100,000 of a busy
  endpoint without failures at 10M: 0.8-0.9 s); the endpoint's 24-hour chart reads its hours
  from it without the table. It does not replace `ix_deliveries_endpoint_id (endpoint_id,
  id)`: the endpoint-only page and its newest id need every status's ids in order.
- Paid for by dropping `ix_deliveries_event_id (event_id)`: the unique constraint's index
  `(event_id, endpoint_id)` leads with event_id and answers the same lookups (an event's
  deliveries, retention's orphan check, SQLite's id prefix range). Every index of
  `deliveries` costs an entry on each claim and finish (a status change is never a HOT
  update): the count stays at 11.
- PostgreSQL only, rebuilt under the same names with INCLUDE columns so that the reads are
  index-only (no index more): `ix_attempts_endpoint_started` with `(duration_ms,
  response_status, succeeded)` (the endpoint page's response times and success rate, and
  /webhooks' rates: 3,300 heap rows of ~1 KB per endpoint and 24 hours at 10M), and
  `ix_deliveries_status_class_id` with `(last_status_code)` (PostgreSQL cannot answer from an
  expression index alone unless the column itself is in it: the bounded count of the answer
  class fetched 10,001 rows from the heap).

Expand only for the running release: its statements find the same rows by the remaining
indexes. On PostgreSQL everything is CONCURRENTLY, outside a transaction (the new index
first, then the drop, then the rename); an interrupted build leaves an INVALID `*_new` index:
drop it and run the upgrade again.
"""

from alembic import op


# revision identifiers, used by Alembic.
revision = "0010_endpoint_status"
down_revision = "0009_sensitive_pending"
branch_labels = None
depends_on = None

NEW = ("ix_deliveries_endpoint_status_id", "deliveries", ["endpoint_id", "status", "id"])
REPLACED = ("ix_deliveries_event_id", "deliveries", ["event_id"])
# name, table, key columns (SQL), INCLUDE columns: rebuilt on PostgreSQL only
COVERING = (
    ("ix_attempts_endpoint_started", "attempts", "endpoint_id, started_at",
     "duration_ms, response_status, succeeded"),
    ("ix_deliveries_status_class_id", "deliveries", "(last_status_code / 100), id",
     "last_status_code"),
)  # fmt: skip
PLAIN = {
    "ix_attempts_endpoint_started": "endpoint_id, started_at",
    "ix_deliveries_status_class_id": "(last_status_code / 100), id",
}


def upgrade():
    if op.get_context().dialect.name != "postgresql":
        op.create_index(NEW[0], NEW[1], NEW[2])
        op.drop_index(REPLACED[0], table_name=REPLACED[1])
        return
    with op.get_context().autocommit_block():
        op.create_index(
            NEW[0], NEW[1], NEW[2], postgresql_include=["created_at"], postgresql_concurrently=True
        )
        op.drop_index(REPLACED[0], table_name=REPLACED[1], postgresql_concurrently=True)
        for name, table, keys, include in COVERING:
            op.execute(
                f"CREATE INDEX CONCURRENTLY {name}_new ON {table} ({keys}) INCLUDE ({include})"
            )
            op.execute(f"DROP INDEX CONCURRENTLY {name}")
            op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def downgrade():
    if op.get_context().dialect.name == "postgresql":
        for name, table, _keys, _include in COVERING:
            op.execute(f"DROP INDEX {name}")
            op.execute(f"CREATE INDEX {name} ON {table} ({PLAIN[name]})")
    op.create_index(REPLACED[0], REPLACED[1], REPLACED[2])
    op.drop_index(NEW[0], table_name=NEW[1])
