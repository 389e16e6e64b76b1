"""analyses.start_cp / start_mate: the score of a game's starting position, so a game that starts
from a position (a FEN setup, a study, a puzzle replayed) can have its first move judged

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.add_column(sa.Column("start_cp", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("start_mate", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.drop_column("start_mate")
        batch.drop_column("start_cp")
