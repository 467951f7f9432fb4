"""Example (test-only): add a column while the old release keeps running.

Revision ID: 9001_example
Revises: the head of migrations/versions, whatever it is when the test runs

Not in migrations/versions on purpose: it is the worked example of docs/deployment.md's rule,
applied only by tests/deploy/test_migration_roll.py to a scratch database of its own, on top of
the real migrations (a second Alembic version location). Code N (today's) must run on it
unchanged; code N+1 (tests/deploy/next_release.py) maps and writes the column.

The rule it follows: expand only. A new column is nullable, or NOT NULL with a server default,
so the old release's INSERTs, which do not name it, still succeed; nothing is renamed, retyped
or dropped while any process of the old release runs (that is a later "contract" migration,
released once no process of release N is left).
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op
from alembic.config import Config
from alembic.script import ScriptDirectory

_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def _real_head() -> str:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


revision = "9001_example"
down_revision = _real_head()  # on top of whatever the real head is (0001, 0002, ...)
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # ADD COLUMN with a constant default is a catalog change on PostgreSQL 11+, but it
        # still takes an ACCESS EXCLUSIVE lock: give up rather than queue every ingest and
        # claim behind a long transaction (run the migration again).
        op.execute("SET LOCAL lock_timeout = '5s'")
    op.add_column(
        "deliveries",
        sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0"),
    )


def downgrade():
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("priority")
