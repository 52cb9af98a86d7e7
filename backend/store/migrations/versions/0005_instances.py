"""Several backend instances on one database: each one's heartbeat and traffic, keys and rate-limit buckets they share.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backend_instances",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("seen_at", sa.BigInteger, nullable=False, index=True),
        sa.Column("traffic", sa.Text, nullable=False, server_default="[]"),
    )
    op.create_table(
        "deployment_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("endpoint", sa.String(63), primary_key=True),
        sa.Column("bucket", sa.String(1024), primary_key=True),
        sa.Column("level", sa.Float, nullable=False),
        sa.Column("since", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    op.drop_table("deployment_keys")
    op.drop_table("backend_instances")
