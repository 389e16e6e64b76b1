"""training: cards of a player's mistakes and puzzles (FSRS), answers checked once, reviews;
puzzle ratings (Glicko-2) of solvers and puzzles, attempts for the dashboard

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("problems") as batch:
        batch.add_column(sa.Column("glicko_rating", sa.Float(), nullable=True))
        batch.add_column(sa.Column("glicko_rd", sa.Float(), nullable=True))
        batch.add_column(sa.Column("glicko_vol", sa.Float(), nullable=True))
        batch.add_column(sa.Column("rated_plays", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "training_cards",
        sa.Column("id", sa.String(120), primary_key=True),
        sa.Column("player_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("game_id", sa.String(32), nullable=False),
        sa.Column("ply", sa.Integer(), nullable=False),
        sa.Column("problem_id", sa.String(48)),
        sa.Column("fen", sa.String(100), nullable=False),
        sa.Column("played_uci", sa.String(8)),
        sa.Column("best_uci", sa.String(8)),
        sa.Column("judgment", sa.String(16)),
        sa.Column("loss", sa.Float()),
        sa.Column("schedule", sa.JSON(), nullable=False),
        sa.Column("due", sa.Float(), nullable=False),
        sa.Column("reviews", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lapses", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("last_review", sa.Float()),
    )
    op.create_index("ix_training_cards_due", "training_cards", ["player_id", "due"])
    op.create_table(
        "card_answers",
        sa.Column("card_id", sa.String(120), primary_key=True),
        sa.Column("move_uci", sa.String(8), primary_key=True),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("loss", sa.Float()),
    )
    op.create_table(
        "card_reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("card_id", sa.String(120), nullable=False, index=True),
        sa.Column("player_id", sa.String(64), nullable=False, index=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("move_uci", sa.String(8), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("due_after", sa.Float(), nullable=False),
    )
    op.create_table(
        "training_scans",
        sa.Column("player_id", sa.String(64), primary_key=True),
        sa.Column("game_id", sa.String(32), primary_key=True),
    )
    op.create_table(
        "solvers",
        sa.Column("player_id", sa.String(64), primary_key=True),
        sa.Column("rating", sa.Float(), nullable=False),
        sa.Column("rd", sa.Float(), nullable=False),
        sa.Column("vol", sa.Float(), nullable=False),
        sa.Column("rated_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("best_streak", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "puzzle_attempts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("player_id", sa.String(64), nullable=False),
        sa.Column("problem_id", sa.String(48), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("solved", sa.Boolean(), nullable=False),
        sa.Column("first", sa.Boolean(), nullable=False),
        sa.Column("puzzle_rating", sa.Float(), nullable=False),
        sa.Column("themes", sa.JSON(), nullable=False),
    )
    op.create_index("ix_puzzle_attempts_player", "puzzle_attempts", ["player_id", "at"])
    op.create_table(
        "rated_firsts",
        sa.Column("player_id", sa.String(64), primary_key=True),
        sa.Column("problem_id", sa.String(48), primary_key=True),
    )


def downgrade() -> None:
    for table in (
        "rated_firsts",
        "puzzle_attempts",
        "solvers",
        "training_scans",
        "card_reviews",
        "card_answers",
        "training_cards",
    ):
        op.drop_table(table)
    with op.batch_alter_table("problems") as batch:
        for column in ("rated_plays", "glicko_vol", "glicko_rd", "glicko_rating"):
            batch.drop_column(column)
