"""The events still holding sensitive values, by type (issue 16): the sweeper's erasure after
delivery read every event every 30 s

Revision ID: 0009_sensitive_pending
Revises: 0008_page_indexes
Create Date: 2026-12-01 17:45:00

Expand only: a partial index (WHERE sensitive_encrypted IS NOT NULL) the running release does
not need. On PostgreSQL it is built CONCURRENTLY, so ingest goes on while it builds; an
interrupted build leaves an INVALID index: drop it and run the upgrade again.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0009_sensitive_pending"
down_revision = "0008_page_indexes"
branch_labels = None
depends_on = None

PENDING = sa.text("sensitive_encrypted IS NOT NULL")


def upgrade():
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_events_sensitive_pending",
                "events",
                ["type"],
                postgresql_where=PENDING,
                postgresql_concurrently=True,
            )
    else:
        op.create_index("ix_events_sensitive_pending", "events", ["type"], sqlite_where=PENDING)


def downgrade():
    op.drop_index("ix_events_sensitive_pending", table_name="events")
