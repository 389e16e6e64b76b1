"""problems are served fewest-served first (the index follows); match_submissions: one answer
and one vote per participant and round, claimed atomically

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _serving(columns: list[str | sa.TextClause]) -> None:
    op.drop_index("ix_problems_serving", table_name="problems")
    op.create_index("ix_problems_serving", "problems", columns)


def upgrade() -> None:
    last: str | sa.TextClause = "last_served_at"
    if op.get_bind().dialect.name == "postgresql":
        last = sa.text("last_served_at ASC NULLS FIRST")
    _serving(["served_count", last, "id"])
    op.create_table(
        "match_submissions",
        sa.Column("match_id", sa.String(length=36), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("participant", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("match_id", "round", "participant", "kind"),
    )


def downgrade() -> None:
    op.drop_table("match_submissions")
    last: str | sa.TextClause = "last_served_at"
    if op.get_bind().dialect.name == "postgresql":
        last = sa.text("last_served_at ASC NULLS FIRST")
    _serving([last, "id"])
