"""A serving endpoint's inference tables (the Delta tables its requests are logged to), JSON.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("serving_endpoints") as batch:
        batch.add_column(sa.Column("inference_tables", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("serving_endpoints") as batch:
        batch.drop_column("inference_tables")
