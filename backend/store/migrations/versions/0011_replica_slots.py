"""Replica slots claimed in the database, fencing replica starts between instances (store/replica_slots.py).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replica_slots",
        sa.Column("slot", sa.String(700), primary_key=True),
        sa.Column("replica_id", sa.String(300), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_replica_slots_replica_id", "replica_slots", ["replica_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_replica_slots_replica_id", table_name="replica_slots")
    op.drop_table("replica_slots")
