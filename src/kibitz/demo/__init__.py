"""The offline demo: three classic games imported on first start, then analysed in the batch
lane (which finds their puzzles), so a fresh install shows something without network access."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from kibitz.read.reader import Reader
from kibitz.services.analysis import request_analysis
from kibitz.services.context import Context
from kibitz.services.ingest import import_pgn

DEMO_FILE = Path(__file__).parent / "classics.pgn"
DEMO_NAME = "kibitz-demo-classics.pgn"
log = logging.getLogger("kibitz.demo")


async def load_demo(ctx: Context, read: Reader) -> str | None:
    """Import the demo games once per store; returns the import id, or None if already done."""
    if await read.import_named(DEMO_NAME):
        return None
    return await import_pgn(ctx, DEMO_FILE.read_text(), filename=DEMO_NAME)


async def analyse_demo(
    ctx: Context, read: Reader, import_id: str, timeout: float = 300.0
) -> list[str]:
    """Once the demo import is stored, queue its games for analysis (batch lane); returns the
    game ids. Gives up quietly after `timeout` seconds (the games stay importable by hand)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                status = (await read.sync(import_id))["status"]
                if status == "failed":
                    return []
                if status == "done":
                    break
                await asyncio.sleep(0.5)
    except TimeoutError:
        log.warning("demo_not_stored import=%s", import_id)
        return []
    ids = await read.sync_games(import_id)
    for game_id in ids:
        await request_analysis(ctx, game_id, "batch")
    return ids
