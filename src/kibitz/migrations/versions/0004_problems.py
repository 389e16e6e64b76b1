"""problems

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
    op.create_table(
        "problems",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("game_id", sa.String(length=32), nullable=False),
        sa.Column("ply", sa.Integer(), nullable=False),
        sa.Column("fen", sa.String(length=100), nullable=False),
        sa.Column("blunder_uci", sa.String(length=8), nullable=False),
        sa.Column("solution", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("themes", sa.JSON(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("solver_color", sa.String(length=8), nullable=False),
        sa.Column("white_id", sa.String(length=64), nullable=True),
        sa.Column("black_id", sa.String(length=64), nullable=True),
        sa.Column("final_cp", sa.Integer(), nullable=True),
        sa.Column("final_mate", sa.Integer(), nullable=True),
        sa.Column("generator_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_served_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("served_count", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_problems_game_id", "problems", ["game_id"])
    op.create_index("ix_problems_white_id", "problems", ["white_id"])
    op.create_index("ix_problems_black_id", "problems", ["black_id"])
    # The serving order: never served (NULL) first, then oldest. SQLite sorts NULLs first in
    # ascending order anyway; PostgreSQL needs it said to use the index for that order.
    first: str | sa.TextClause = "last_served_at"
    if op.get_bind().dialect.name == "postgresql":
        first = sa.text("last_served_at ASC NULLS FIRST")
    serving = [first, "id"]
    op.create_index("ix_problems_serving", "problems", serving)
    op.create_table(
        "problem_themes",
        sa.Column("problem_id", sa.String(length=48), nullable=False),
        sa.Column("theme", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("problem_id", "theme"),
    )
    op.create_index("ix_problem_themes_theme", "problem_themes", ["theme"])
    op.create_table(
        "problem_scans",
        sa.Column("game_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("candidates", sa.Integer(), nullable=False),
        sa.Column("problems", sa.Integer(), nullable=False),
        sa.Column("searches", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.JSON(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("game_id"),
    )


def downgrade() -> None:
    op.drop_table("problem_scans")
    op.drop_index("ix_problem_themes_theme", table_name="problem_themes")
    op.drop_table("problem_themes")
    op.drop_index("ix_problems_serving", table_name="problems")
    op.drop_index("ix_problems_black_id", table_name="problems")
    op.drop_index("ix_problems_white_id", table_name="problems")
    op.drop_index("ix_problems_game_id", table_name="problems")
    op.drop_table("problems")
