"""Alembic migrations of the kibitz store; applied at start and by `kibitz db upgrade`.

Every process checks the store's revision at start. A store already at the newest revision
(the usual case) is recognised by one query, without importing Alembic or loading its
scripts: that took about 0.35 s of CPU per start, in every service process and every test.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).parent
# `revision = "0012"`, or with the annotation Alembic's newer templates write
# (`down_revision: Union[str, None] = "0011"`).
_REVISION = re.compile(r'^revision(?:\s*:[^=\n]*)?\s*=\s*"([^"]+)"', re.MULTILINE)
_DOWN_REVISION = re.compile(
    r'^down_revision(?:\s*:[^=\n]*)?\s*=\s*(?:"([^"]+)"|None)', re.MULTILINE
)


def config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


@functools.cache
def head() -> str:
    """The newest revision, read from the version files (a linear history: one head)."""
    revisions: set[str] = set()
    replaced: set[str] = set()
    for path in (HERE / "versions").glob("*.py"):
        source = path.read_text()
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            raise RuntimeError(f"{path.name} names no revision and down_revision")
        revisions.add(revision.group(1))
        if down.group(1):
            replaced.add(down.group(1))
    heads = revisions - replaced
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def current(engine: Engine) -> str | None:
    """The store's revision; None for a store Alembic never ran on (or that cannot say)."""
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None
    return str(found) if found is not None else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and current(engine) == head():
        return
    from alembic import command

    command.upgrade(config(engine), revision)
