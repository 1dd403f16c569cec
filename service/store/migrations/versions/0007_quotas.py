"""tf_quotas: a tenant's limits set by an admin (null: the settings' default)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tf_quotas",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("active_studies", sa.Integer(), nullable=True),
        sa.Column("trials_in_flight", sa.Integer(), nullable=True),
        sa.Column("datasets", sa.Integer(), nullable=True),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=True),
        sa.Column("weight", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tf_quotas")
