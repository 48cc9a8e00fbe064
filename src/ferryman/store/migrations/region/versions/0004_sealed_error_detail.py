"""sealed error detail: a failed job's error message is sealed like its payload; code and generic text stay clear

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
    # a plain ADD COLUMN (no table rebuild on SQLite); rows failed before this keep their message as it was
    op.add_column("jobs", sa.Column("error_detail", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("error_detail")
