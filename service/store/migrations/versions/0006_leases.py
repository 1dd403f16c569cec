"""Scheduler replicas: a study's lease (owner, expiry, fencing token) and the live replicas

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
    with op.batch_alter_table("tf_studies") as batch:
        batch.add_column(sa.Column("owner", sa.String(128), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.Float(), nullable=True))
        batch.add_column(sa.Column("fence", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "tf_schedulers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("seen_until", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tf_schedulers")
    with op.batch_alter_table("tf_studies") as batch:
        batch.drop_column("fence")
        batch.drop_column("lease_until")
        batch.drop_column("owner")
