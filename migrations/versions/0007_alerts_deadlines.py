"""Deadlines per event type and operational events: expires_after_seconds on types,
expires_at on events, when endpoint.failing was last sent

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 13:40:00

Expand only: new nullable columns; the running release reads none of them. A delivery's
new `expired` status needs no schema change (status is a string column).
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("event_types", sa.Column("expires_after_seconds", sa.Integer(), nullable=True))
    op.add_column("events", sa.Column("expires_at", sa.DateTime(), nullable=True))
    op.add_column("endpoints", sa.Column("failing_notified_at", sa.DateTime(), nullable=True))
    op.add_column(
        "endpoints",
        sa.Column("failing_announced", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("endpoints", sa.Column("cert_not_after", sa.DateTime(), nullable=True))
    op.add_column("endpoints", sa.Column("cert_issuer", sa.String(length=500), nullable=True))
    op.add_column("endpoints", sa.Column("cert_serial", sa.String(length=100), nullable=True))
    op.add_column("endpoints", sa.Column("cert_warned_days", sa.Integer(), nullable=True))


def downgrade():
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in 0004.
    for column in ("cert_warned_days", "cert_serial", "cert_issuer", "cert_not_after"):
        op.drop_column("endpoints", column)
    op.drop_column("endpoints", "failing_announced")
    op.drop_column("endpoints", "failing_notified_at")
    op.drop_column("events", "expires_at")
    op.drop_column("event_types", "expires_after_seconds")
