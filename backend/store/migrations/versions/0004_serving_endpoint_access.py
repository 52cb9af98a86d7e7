"""Who may use named serving endpoints and how much: access control lists and rate limits.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Endpoints created before this revision keep their access through their tokens' own permissions.
    with op.batch_alter_table("serving_endpoints") as batch:
        batch.add_column(sa.Column("access_control", sa.Text, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("rate_limits", sa.Text, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("serving_endpoints") as batch:
        batch.drop_column("rate_limits")
        batch.drop_column("access_control")
