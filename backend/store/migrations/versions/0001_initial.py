"""Initial tables: tokens, endpoints, compute configs, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True, index=True),
        sa.Column("permission", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "endpoints",
        sa.Column("registered_model_name", sa.String(256), primary_key=True),
        sa.Column("creator", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "compute_configs",
        sa.Column("registered_model_name", sa.String(256), primary_key=True),
        sa.Column("stage", sa.String(32), primary_key=True),
        sa.Column("workload_size_id", sa.String(16), nullable=False),
        sa.Column("scale_to_zero_enabled", sa.Boolean, nullable=False),
        sa.Column("creation_timestamp", sa.BigInteger, nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("registered_model_name", sa.String(256), nullable=False, index=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("endpoint_version_name", sa.String(32), nullable=True),
        sa.Column("stage", sa.String(32), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("events", "compute_configs", "endpoints", "api_tokens"):
        op.drop_table(table)
