"""Live commentary latency: from a move's publication on `live.moves` to its commentary's on
`commentary`, over a replayed real game.

The game: Lichess game TaHSAsYD (97 plies; tests/fixtures/lichess_annotated_fishnet.pgn, source
in tests/fixtures/README.md), played move by move by the fake Lichess server (the same code the
tests use, speaking Lichess's game-stream format) at one ply every `--pace` seconds. kibitz runs
embedded (SQLite store, embedded log) with the tracker and the commentary services, the default
commentary budget and engine pool; the evaluation cache starts empty.

Latency per ply = the commentary event's `occurred_at` minus the move event's (carried in the
commentary as `move_at`). Baseline, measured in the same run: one bare Stockfish search per
position at the same node budget (python-chess, one process), the floor of any commentary that
consults the engine.

    .venv/bin/python bench/live.py [--pace 0.5] [--nodes 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import chess
import chess.engine
import chess.pgn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.lichess import FakeLichess  # noqa: E402
from tests.support import read_topic  # noqa: E402

from kibitz import topics  # noqa: E402
from kibitz.events import CommentaryPublished  # noqa: E402
from kibitz.runtime.bootstrap import bootstrap  # noqa: E402
from kibitz.settings import load_settings  # noqa: E402


def game_sans() -> list[str]:
    with (ROOT / "tests/fixtures/lichess_annotated_fishnet.pgn").open() as handle:
        game = chess.pgn.read_game(handle)
    assert game is not None
    board = game.board()
    sans = []
    for move in game.mainline_moves():
        sans.append(board.san(move))
        board.push(move)
    return sans


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def bare(path: str, sans: list[str], nodes: int) -> list[float]:
    """One search per position after each ply, at `nodes`, on one fresh Stockfish."""
    _, engine = await chess.engine.popen_uci(path)
    await engine.configure({"Threads": 1, "Hash": 32})
    board = chess.Board()
    times = []
    try:
        for san in sans:
            board.push_san(san)
            if board.is_game_over():
                continue
            began = time.perf_counter()
            await engine.analyse(board, chess.engine.Limit(nodes=nodes))
            times.append(time.perf_counter() - began)
    finally:
        await engine.quit()
    return times


async def pipeline(sans: list[str], pace: float, nodes: int | None) -> list[float]:
    fake = FakeLichess().start()
    fake.add_live_game("BenchPlayer", sans, opponent="Rival", pace=pace, start_in=0.5)
    home = Path(tempfile.mkdtemp(prefix="kibitz-bench-live-"))
    extra = {"commentary_nodes": nodes} if nodes else {}
    settings = load_settings(
        home=home, lichess_url=fake.url, demo=False, track_wait=1.0, track_poll=0.2, **extra
    )
    container = bootstrap(settings)
    await container.start(["tracker", "commentary"])
    try:
        await container.component("tracker").start("BenchPlayer")
        deadline = time.monotonic() + len(sans) * pace + 120
        while time.monotonic() < deadline:
            events = await read_topic(container, topics.COMMENTARY)
            if len(events) >= len(sans):
                break
            await asyncio.sleep(0.5)
        latencies = []
        for envelope, payload in events:
            assert isinstance(payload, CommentaryPublished) and payload.move_at is not None
            latencies.append((envelope.occurred_at - payload.move_at).total_seconds())
        assert len(latencies) == len(sans), f"{len(latencies)} lines for {len(sans)} plies"
        return latencies
    finally:
        await container.close()
        fake.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pace", type=float, default=0.5, help="seconds between plies")
    parser.add_argument("--nodes", type=int, default=None, help="commentary node budget")
    args = parser.parse_args()
    sans = game_sans()
    settings = load_settings(demo=False)
    nodes = args.nodes or settings.commentary_nodes
    path = settings.stockfish_path()
    assert path, "no Stockfish"
    print(f"game: {len(sans)} plies, one every {args.pace}s; commentary budget {nodes} nodes")
    floor = await bare(path, sans, nodes)
    latencies = await pipeline(sans, args.pace, args.nodes)
    for name, values in (("bare search", floor), ("move -> commentary", latencies)):
        print(
            f"{name:>20}: p50 {percentile(values, 50) * 1000:7.1f} ms  "
            f"p95 {percentile(values, 95) * 1000:7.1f} ms  max {max(values) * 1000:7.1f} ms  "
            f"mean {statistics.mean(values) * 1000:7.1f} ms  (n={len(values)})"
        )
    ratio = percentile(latencies, 50) / percentile(floor, 50)
    print(f"p50 latency / p50 bare search: {ratio:.2f}x   target p95 <= 1000 ms")


if __name__ == "__main__":
    asyncio.run(main())
