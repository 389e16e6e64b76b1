"""The Alembic migrations build exactly the schema the models declare, on both stores: a column
added to a model without its migration (or the other way round) fails here, not in production."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from kibitz.adapters.store_models import Base
from kibitz.migrations import config, current, head, upgrade


def test_the_migrations_build_the_schema_the_models_declare(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    if engine.dialect.name == "postgresql":
        # PostgreSQL's serving index orders `last_served_at ASC NULLS FIRST` (migration 0007),
        # an expression the model's plain column list cannot state: compared by name only.
        serving = [d for d in differences if getattr(d[1], "name", None) == "ix_problems_serving"]
        assert sorted(d[0] for d in serving) == ["add_index", "remove_index"]
        differences = [d for d in differences if d not in serving]
    assert differences == []


UPGRADE = """
import sys
from sqlalchemy import create_engine
from kibitz.migrations import upgrade
upgrade(create_engine(sys.argv[1]))
print("alembic" in sys.modules)
"""


def test_a_store_at_the_newest_revision_starts_without_loading_alembic(database_url: str) -> None:
    """Every process migrates at start; one whose store is up to date only asks its revision."""
    engine = create_engine(database_url)
    try:
        assert head() == ScriptDirectory.from_config(config(engine)).get_current_head()
        assert current(engine) is None  # a new store: Alembic never ran on it

        def start() -> str:
            run = [sys.executable, "-c", UPGRADE, database_url]
            done = subprocess.run(run, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        assert start() == "True"  # migrated by Alembic
        assert current(engine) == head()
        assert start() == "False"  # already there: Alembic not even imported
    finally:
        engine.dispose()
