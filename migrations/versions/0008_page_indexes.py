"""Indexes for the admin pages at 10M attempts (issue 16): each filter of the delivery monitor
finds its newest rows and its bounded count by an index, and an endpoint's 24-hour figures
read that endpoint's last 24 hours only

Revision ID: 0008_page_indexes
Revises: 0007
Create Date: 2026-12-01 16:40:00

Expand only: indexes, nothing the running release reads or writes changes. On PostgreSQL they
are built CONCURRENTLY (outside a transaction: ingest and claims go on while they build) and
the attempts' single-column endpoint index is dropped CONCURRENTLY once its two-column
replacement exists (the old release's queries use the new one's first column just the same).
A CONCURRENTLY build that is interrupted leaves an INVALID index behind: drop it and run the
upgrade again. Roll order: any (docs/deployment.md); the old code is only faster with these.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008_page_indexes"
down_revision = "0007"
branch_labels = None
depends_on = None

# name, table, columns (strings are columns; text() an expression), PostgreSQL only
INDEXES = (
    # status filter (and the live feed's), newest first: WHERE status = ? ORDER BY id DESC
    ("ix_deliveries_status_id", "deliveries", ["status", "id"], False),
    # time range, hour, the endpoint page's 24 hours (and retention's age test)
    ("ix_deliveries_created", "deliveries", ["created_at"], False),
    # error filter: WHERE last_error_class = ? ORDER BY id DESC
    ("ix_deliveries_error_id", "deliveries", ["last_error_class", "id"], False),
    # HTTP status class filter: WHERE last_status_code / 100 = 5 ORDER BY id DESC
    (
        "ix_deliveries_status_class_id",
        "deliveries",
        [sa.text("(last_status_code / 100)"), "id"],
        False,
    ),
    # event id prefix search (LIKE 'evt_12%') under any collation
    (
        "ix_deliveries_event_id_pattern",
        "deliveries",
        [sa.text("event_id varchar_pattern_ops")],
        True,
    ),
    # success rates and response times per endpoint over the last 24 hours
    ("ix_attempts_endpoint_started", "attempts", ["endpoint_id", "started_at"], False),
)
REPLACED = ("ix_attempts_endpoint_id", "attempts", ["endpoint_id"])


def upgrade():
    postgres = op.get_context().dialect.name == "postgresql"
    if not postgres:
        for name, table, columns, postgres_only in INDEXES:
            if not postgres_only:
                op.create_index(name, table, columns)
        op.drop_index(REPLACED[0], table_name=REPLACED[1])
        return
    with op.get_context().autocommit_block():
        for name, table, columns, _postgres_only in INDEXES:
            op.create_index(name, table, columns, postgresql_concurrently=True)
        op.drop_index(REPLACED[0], table_name=REPLACED[1], postgresql_concurrently=True)


def downgrade():
    postgres = op.get_context().dialect.name == "postgresql"
    op.create_index(REPLACED[0], REPLACED[1], REPLACED[2])
    for name, table, _columns, postgres_only in reversed(INDEXES):
        if postgres or not postgres_only:
            op.drop_index(name, table_name=table)
