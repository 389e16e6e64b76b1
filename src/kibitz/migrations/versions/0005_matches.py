"""matches and robots

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "matches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("person", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("events_applied", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_matches_status", "matches", ["status"])
    op.create_table(
        "robots",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("personality", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("match_id", sa.String(length=36), nullable=True),
        sa.Column("round", sa.Integer(), nullable=True),
        sa.Column("state_since", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_robots_personality", "robots", ["personality"])
    op.create_index("ix_robots_state", "robots", ["state"])
    op.create_table(
        "robot_assignments",
        sa.Column("match_id", sa.String(length=36), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("robot_id", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("match_id", "round", "robot_id"),
    )


def downgrade() -> None:
    op.drop_table("robot_assignments")
    op.drop_index("ix_robots_state", table_name="robots")
    op.drop_index("ix_robots_personality", table_name="robots")
    op.drop_table("robots")
    op.drop_index("ix_matches_status", table_name="matches")
    op.drop_table("matches")
