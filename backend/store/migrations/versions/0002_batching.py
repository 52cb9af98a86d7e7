"""Adaptive batching settings per compute config.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("compute_configs") as batch:
        batch.add_column(sa.Column("max_batch_size", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("max_batch_wait_ms", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("compute_configs") as batch:
        batch.drop_column("max_batch_wait_ms")
        batch.drop_column("max_batch_size")
