"""Retention: an index on deliveries(created_at) for the purge's oldest-first batches

Revision ID: 0009_retention
Revises: 0007
Create Date: 2026-12-01 16:40:00

Expand only: an index the running release does not need. Without it each purge batch
(`WHERE created_at < cutoff AND status final ORDER BY created_at LIMIT n`) scans deliveries
from the start, over the dead rows of the batches before it: at 1M due rows the purge slowed
batch after batch (bench/findings.md, "Retention at scale"). On PostgreSQL it is built
CONCURRENTLY, so a large table keeps taking writes while it builds.
"""

from alembic import op


# revision identifiers, used by Alembic.
revision = "0009_retention"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                "ix_deliveries_created",
                "deliveries",
                ["created_at"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
    else:
        op.create_index("ix_deliveries_created", "deliveries", ["created_at"])


def downgrade():
    op.drop_index("ix_deliveries_created", table_name="deliveries")
