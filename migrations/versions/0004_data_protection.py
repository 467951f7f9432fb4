"""Data protection: sensitive payload values encrypted apart, PAN guard and purge per type

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:40:00

Expand only: new nullable or defaulted columns; the running release reads none of them.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "event_types",
        sa.Column("pan_guard", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column(
        "event_types",
        sa.Column("purge_after_delivery", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("events", sa.Column("sensitive_encrypted", sa.Text(), nullable=True))
    op.add_column("events", sa.Column("sensitive_purged_at", sa.DateTime(), nullable=True))


def downgrade():
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of `events` would have to
    # drop the table its deliveries refer to.
    op.drop_column("events", "sensitive_purged_at")
    op.drop_column("events", "sensitive_encrypted")
    op.drop_column("event_types", "purge_after_delivery")
    op.drop_column("event_types", "pan_guard")
