"""A model endpoint's placement per stage (the Ray nodes its replicas may run on, control/placement.py), JSON;
null: any node.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("compute_configs") as batch:
        batch.add_column(sa.Column("placement", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("compute_configs") as batch:
        batch.drop_column("placement")
