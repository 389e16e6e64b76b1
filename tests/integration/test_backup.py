"""Disaster recovery (seed 002): a PostgreSQL dump restored into a fresh database gives a
fresh kibitz the same games, analyses and puzzles (docs/operations.md says how)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg

from kibitz.ports.store import ProblemScanResult
from kibitz.read.analysis import analysis_view
from kibitz.read.games import get_sync
from kibitz.services.analysis import request_analysis
from kibitz.services.ingest import import_pgn
from tests.conftest import PG_ADMIN_URL, drop_database
from tests.support import api, running, settings_for, stored_puzzle

FIXTURES = Path(__file__).parents[1] / "fixtures"
GAME = "TaHSAsYD"  # the annotated game: analysed from its own evaluations, no engine needed


async def _views(tmp_path: Path, url: str) -> dict[str, Any]:
    """What a kibitz on `url` serves of the game, its analysis and its puzzle."""
    async with api(tmp_path, url) as (client, _):
        answers = {
            "game": await client.get(f"/api/games/{GAME}"),
            "analysis": await client.get(f"/api/games/{GAME}/analysis"),
            "puzzle": await client.get(f"/api/problems/{GAME}-31"),
        }
    assert all(a.status_code == 200 for a in answers.values()), answers
    return {name: a.json() for name, a in answers.items()}


async def _run(*argv: str) -> None:
    await asyncio.to_thread(subprocess.run, argv, check=True, capture_output=True)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


async def test_a_dump_restored_into_a_fresh_database_serves_the_same_games_analyses_and_puzzles(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    settings = settings_for(tmp_path / "before", fresh_pg_url, engines=1)
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        text = (FIXTURES / "lichess_annotated_fishnet.pgn").read_text()
        import_id = await import_pgn(container.ctx, text, filename="annotated.pgn")
        async with asyncio.timeout(60):
            while (await container.sql.read(lambda s: get_sync(s, import_id)))["status"] != "done":
                await asyncio.sleep(0.05)
            await request_analysis(container.ctx, GAME, "interactive")
            while (await container.sql.read(lambda s: analysis_view(s, GAME)))["status"] != "done":
                await asyncio.sleep(0.05)
        scan = ProblemScanResult(GAME, 1, 1, 1, [], 0.1)
        puzzle = stored_puzzle(f"{GAME}-31", game_id=GAME, ply=31)
        await container.ctx.store.problems.save_scan(scan, [puzzle], 1.0)
    before = await _views(tmp_path / "a", fresh_pg_url)
    assert before["analysis"]["status"] == "done" and before["game"]["moves_uci"]

    dump = tmp_path / "kibitz.dump"  # what docs/operations.md tells operators to run
    await _run("pg_dump", "--format=custom", "--no-owner", f"--file={dump}", _plain(fresh_pg_url))
    restored = f"kibitz_restored_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{restored}"')
    try:
        url = fresh_pg_url.rsplit("/", 1)[0] + "/" + restored
        await _run(
            "pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_plain(url)}", str(dump)
        )
        after = await _views(tmp_path / "b", url)
    finally:
        drop_database(restored)
    assert after == before
