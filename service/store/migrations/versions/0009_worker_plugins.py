"""tf_schedulers.plugins: the catalog plugins a replica's Ray workers have

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tf_schedulers") as batch:
        batch.add_column(sa.Column("plugins", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tf_schedulers") as batch:
        batch.drop_column("plugins")
