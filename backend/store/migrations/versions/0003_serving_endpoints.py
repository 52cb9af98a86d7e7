"""Named serving endpoints (the GA API).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "serving_endpoints",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("id", sa.String(32), nullable=False, unique=True),
        sa.Column("creator", sa.String(200), nullable=False),
        sa.Column("creation_timestamp", sa.BigInteger, nullable=False),
        sa.Column("last_updated_timestamp", sa.BigInteger, nullable=False),
        sa.Column("config", sa.Text, nullable=True),
        sa.Column("pending_config", sa.Text, nullable=True),
        sa.Column("pending_since", sa.BigInteger, nullable=True),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
    )


def downgrade() -> None:
    op.drop_table("serving_endpoints")
