"""analyses: the id of an analysis.completed decided but not yet published; sync_entries:
each game of a sync or import (by index) counted once

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
    with op.batch_alter_table("analyses") as batch:
        batch.add_column(sa.Column("completion_event_id", sa.String(length=36), nullable=True))
    op.create_table(
        "sync_entries",
        sa.Column("sync_id", sa.String(length=36), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sync_id", "idx"),
    )


def downgrade() -> None:
    op.drop_table("sync_entries")
    with op.batch_alter_table("analyses") as batch:
        batch.drop_column("completion_event_id")
