"""Event catalog docs: when each event type fires (its trigger condition)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:40:00

Expand only: one defaulted column the running release does not read. `flask catalog seed`
(run by every deploy) fills it for the seeded types from webhook_admin/data/catalog.json.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "event_types",
        sa.Column("trigger_condition", sa.Text(), nullable=False, server_default=""),
    )


def downgrade():
    op.drop_column("event_types", "trigger_condition")
