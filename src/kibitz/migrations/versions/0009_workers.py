"""workers: each service process's heartbeat, so "workers alive" does not wait on the broker
to notice a dead consumer

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
    op.create_table(
        "workers",
        sa.Column("consumer_group", sa.String(length=80), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "worker"),
    )


def downgrade() -> None:
    op.drop_table("workers")
