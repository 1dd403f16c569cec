"""tf_studies.stop_drain: a stop that lets trials in flight finish

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
    with op.batch_alter_table("tf_studies") as batch:
        batch.add_column(
            sa.Column("stop_drain", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("tf_studies") as batch:
        batch.drop_column("stop_drain")
