"""access hardening: sessions, MFA, forced password change, custom header values encrypted

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:40:00

Custom header values are encrypted in place (endpoints.custom_headers keeps the names, each
value becomes a Fernet token under WEBHOOK_ENCRYPTION_KEYS), and the values already recorded
in attempts' request headers are masked. Both need the app's key, so run it with
`flask --app wsgi db upgrade` (as `make run` and the deploy do).
"""

from alembic import op
import sqlalchemy as sa
from flask import current_app


# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MASK = "•••"
BATCH = 500


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.add_column(sa.Column("totp_secret_encrypted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("totp_enabled_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))

    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_recovery_codes_code_hash")),
    )
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_codes_user_id"), ["user_id"], unique=False)

    op.create_table(
        "app_settings",
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_settings")),
    )

    _encrypt_header_values()


def downgrade():
    _decrypt_header_values()
    op.drop_table("app_settings")
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_codes_user_id"))

    op.drop_table("recovery_codes")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_enabled_at")
        batch_op.drop_column("totp_secret_encrypted")
        batch_op.drop_column("session_version")
        batch_op.drop_column("must_change_password")


endpoints = sa.table("endpoints", sa.column("id", sa.Integer), sa.column("custom_headers", sa.JSON))
attempts = sa.table(
    "attempts",
    sa.column("id", sa.BigInteger),
    sa.column("endpoint_id", sa.Integer),
    sa.column("request_headers", sa.JSON),
)


def _endpoints_with_headers(connection):
    for row in connection.execute(sa.select(endpoints.c.id, endpoints.c.custom_headers)):
        if row.custom_headers:
            yield row.id, row.custom_headers


def _encrypt_header_values():
    box = current_app.extensions["secret_box"]
    connection = op.get_bind()
    for endpoint_id, headers in list(_endpoints_with_headers(connection)):
        encrypted = {name: box.encrypt(str(value)) for name, value in headers.items()}
        connection.execute(
            endpoints.update().where(endpoints.c.id == endpoint_id).values(custom_headers=encrypted)
        )
        _mask_recorded(connection, endpoint_id, {name.lower() for name in headers})


def _mask_recorded(connection, endpoint_id, names):
    """Mask the custom header values already stored on this endpoint's attempts."""
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(attempts.c.id, attempts.c.request_headers)
            .where(attempts.c.endpoint_id == endpoint_id, attempts.c.id > last_id)
            .order_by(attempts.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            recorded = row.request_headers or {}
            masked = {k: MASK if k.lower() in names else v for k, v in recorded.items()}
            if masked != recorded:
                connection.execute(
                    attempts.update().where(attempts.c.id == row.id).values(request_headers=masked)
                )
        last_id = rows[-1].id


def _decrypt_header_values():
    box = current_app.extensions["secret_box"]
    connection = op.get_bind()
    for endpoint_id, headers in list(_endpoints_with_headers(connection)):
        clear = {name: box.decrypt(value) for name, value in headers.items()}
        connection.execute(
            endpoints.update().where(endpoints.c.id == endpoint_id).values(custom_headers=clear)
        )
