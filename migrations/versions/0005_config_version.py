"""The endpoint's configuration version, which workers key their cached copy on

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 13:30:00

Expand only: a NOT NULL column with a server default (1); the running release neither reads
nor names it, so its INSERTs and UPDATEs still succeed. An UPDATE by the old release does not
move it: roll the web nodes before the workers for this release (docs/deployment.md).
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "endpoints",
        sa.Column("config_version", sa.Integer(), nullable=False, server_default="1"),
    )


def downgrade():
    op.drop_column("endpoints", "config_version")
