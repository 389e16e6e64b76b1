"""Helpers for tests that run kibitz's services in-process."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import chess
import chess.pgn
import httpx

from kibitz.api.app import create_app
from kibitz.clock import Clock
from kibitz.read.games import get_sync
from kibitz.runtime.bootstrap import Container, bootstrap
from kibitz.settings import Settings, load_settings


def settings_for(
    tmp_path: Path, database_url: str, lichess_url: str = "http://127.0.0.1:9", **extra: Any
) -> Settings:
    # No worker process for parsing unless a test asks for one: each would be started (and
    # waited for) with every container, a second of CPU per test; threads do the same work.
    values: dict[str, Any] = {"cpu_workers": 0, **extra}
    # One deep budget for both lanes unless a test sets the interactive one: the tests of
    # lanes and phases are about order, not depth.
    values.setdefault("interactive_deep_nodes", values.get("deep_nodes", 300_000))
    values.setdefault("interactive_quick_nodes", values.get("quick_nodes", 20_000))
    return load_settings(
        home=tmp_path / "home",
        database_url=database_url,
        bus_url=f"sqlite:///{tmp_path / 'home' / 'eventlog.db'}",
        lichess_url=lichess_url,
        demo=False,
        **values,
    )


LICHESS_PUZZLES = Path(__file__).parent / "fixtures" / "lichess_puzzles.csv"


def lichess_puzzle_rows() -> list[dict[str, str]]:
    """The real Lichess puzzle database rows of tests/fixtures/lichess_puzzles.csv."""
    with LICHESS_PUZZLES.open(newline="") as f:
        return list(csv.DictReader(f))


def puzzle_replay_pgn(puzzle_id: str, fen: str, moves: list[str]) -> str:
    """A Lichess puzzle replayed as a game: its position as a FEN setup, the opponent's
    mistake, then the solution."""
    game = chess.pgn.Game()
    game.headers["Event"] = f"Lichess puzzle {puzzle_id}"
    game.headers["Site"] = "Lichess puzzle database"
    game.headers["White"] = "lichess-white"
    game.headers["Black"] = "lichess-black"
    game.setup(chess.Board(fen))
    node: chess.pgn.GameNode = game
    for uci in moves:
        node = node.add_variation(chess.Move.from_uci(uci))
    return str(game)


@asynccontextmanager
async def running(
    settings: Settings, services: list[str] | None = None, clock: Clock | None = None
) -> AsyncIterator[Container]:
    container = bootstrap(settings, clock=clock)
    await container.start(services)
    try:
        yield container
    finally:
        await container.close()


@asynccontextmanager
async def api(
    tmp_path: Path, database_url: str, services: list[str] | None = None, **extra: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Container]]:
    """The API app over a started container (its lifespan is not run: `services` run here)."""
    container = bootstrap(settings_for(tmp_path, database_url, **extra))
    await container.start(services or [])
    app = create_app(container, services=[])
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kibitz") as client:
            yield client, container
    finally:
        await container.close()


async def wait_for_sync(container: Container, sync_id: str, timeout: float = 120) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            view = await container.sql.read(lambda s: get_sync(s, sync_id))
            if view["status"] in ("done", "failed"):
                return dict(view)
            await asyncio.sleep(0.05)


async def read_topic(container: Container, topic: str) -> list[tuple[Any, Any]]:
    """Every (envelope, payload) of `topic`, partition by partition, in offset order."""
    from kibitz.events import decode

    log = container.ctx.event_log
    out = []
    for partition, end in (await log.end_offsets(topic)).items():
        offset = 0
        while offset < end:
            records = await log.read(topic, partition, offset, 500)
            if not records:
                break
            out.extend(decode(r.value) for r in records)
            offset = records[-1].offset + 1
    return out


async def until(predicate: Any, timeout: float = 60.0, every: float = 0.05) -> Any:
    """Wait for an async predicate to return something truthy; return it."""
    async with asyncio.timeout(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(every)


# Middlegame and endgame positions of the demo's classic games (public-domain scores).
MATCH_POSITIONS = [
    "r1bqkb1r/pppp1ppp/2n2n2/4p3/2B1P3/5N2/PPPP1PPP/RNBQK2R w KQkq - 4 4",
    "r1bqk2r/pppp1ppp/2n2n2/2b1p3/2B1P3/3P1N2/PPP2PPP/RNBQK2R w KQkq - 1 5",
    "rn1qkb1r/p4ppp/2p2n2/1B2p1B1/4P3/1Q6/PPP2PPP/R3K2R w KQkq - 0 11",
    "1n1rkb1r/p4ppp/4q3/4p1B1/4P3/8/PPP2PPP/2KR4 w k - 0 17",
    "r4rk1/pp3ppp/2n5/3q4/3P4/5N2/PP3PPP/R2Q1RK1 w - - 0 14",
]


def write_match_positions(session: Any, store: Any, fens: list[str] = MATCH_POSITIONS) -> None:
    """Store puzzles that start from `fens` (after their 'blunder', the first legal move in
    UCI order): a match drawing positions from the problem pool plays exactly those."""
    from datetime import UTC, datetime

    import chess

    from kibitz.adapters.store_models import Problem, ProblemTheme
    from kibitz.domain import puzzles

    rows = []
    for i, fen in enumerate(fens):
        blunder = min(chess.Board(fen).legal_moves, key=lambda m: m.uci())
        rows.append(
            {
                "id": f"m{i}-1",
                "game_id": f"m{i}",
                "ply": 1,
                "fen": fen,
                "blunder_uci": blunder.uci(),
                "solution": [],
                "kind": "advantage",
                "themes": ["advantage"],
                "rating": 1000,
                "solver_color": "white",
                "white_id": "ana",
                "black_id": "bo",
                "generator_version": puzzles.GENERATOR_VERSION,
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                "served_count": 0,
                "attempts": 0,
                "successes": 0,
            }
        )
    session.execute(store.insert(Problem), rows)
    session.execute(
        store.insert(ProblemTheme), [{"problem_id": r["id"], "theme": "advantage"} for r in rows]
    )


if TYPE_CHECKING:
    from kibitz.ports.store import StoredPuzzle


def stored_puzzle(puzzle_id: str, **values: Any) -> StoredPuzzle:
    """A puzzle as the store keeps it (after 1.f3?, 1...e5 wins; Ann vs Bo), with `values`
    changed; its game id is the id before "-"."""
    from kibitz.ports.store import StoredPuzzle

    fields: dict[str, Any] = {
        "id": puzzle_id,
        "game_id": puzzle_id.rsplit("-", 1)[0],
        "ply": 1,
        "fen": chess.STARTING_FEN,
        "blunder_uci": "f2f3",
        "solution": ["e7e5"],
        "kind": "advantage",
        "themes": ["advantage", "short"],
        "rating": 1500,
        "solver_color": "black",
        "white_id": "ann",
        "black_id": "bo",
        "final_cp": -300,
        "final_mate": None,
        "generator_version": 1,
    }
    return StoredPuzzle(**{**fields, **values})
