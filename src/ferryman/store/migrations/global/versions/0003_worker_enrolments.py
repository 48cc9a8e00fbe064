"""worker enrolments: one-time secrets autoscaled instances exchange for a worker token bound to them

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
    with op.batch_alter_table("worker_tokens") as batch_op:
        batch_op.add_column(sa.Column("worker_id", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("models", sa.Text(), nullable=True))
    op.create_table(
        "worker_enrolments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=8), nullable=False),
        sa.Column("worker_id", sa.String(length=80), nullable=False),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("instance_id", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("token_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )


def downgrade() -> None:
    op.drop_table("worker_enrolments")
    with op.batch_alter_table("worker_tokens") as batch_op:
        batch_op.drop_column("models")
        batch_op.drop_column("worker_id")
