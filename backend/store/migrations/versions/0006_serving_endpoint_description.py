"""A serving endpoint's description and route_optimized flag, as given at creation.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("serving_endpoints") as batch:
        batch.add_column(sa.Column("description", sa.Text, nullable=True))
        batch.add_column(sa.Column("route_optimized", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("serving_endpoints") as batch:
        batch.drop_column("route_optimized")
        batch.drop_column("description")
