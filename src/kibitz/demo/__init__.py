"""The offline demo: three classic games imported on first start so a fresh install shows
something without network access."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from kibitz.adapters.store_models import Sync
from kibitz.services.context import Context
from kibitz.services.ingest import import_pgn

DEMO_FILE = Path(__file__).parent / "classics.pgn"
DEMO_NAME = "kibitz-demo-classics.pgn"


async def load_demo(ctx: Context) -> str | None:
    """Import the demo games once per store; returns the import id, or None if already done."""
    done = await ctx.store.read(
        lambda s: s.scalar(select(Sync.id).where(Sync.filename == DEMO_NAME).limit(1))
    )
    if done:
        return None
    return await import_pgn(ctx, DEMO_FILE.read_text(), filename=DEMO_NAME)
