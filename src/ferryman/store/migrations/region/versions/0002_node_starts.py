"""node starts: each queue node start gets an epoch that prefixes the fences it hands out

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_starts",
        sa.Column("epoch", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("epoch"),
    )


def downgrade() -> None:
    op.drop_table("node_starts")
