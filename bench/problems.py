"""Puzzle generation throughput and puzzle serving latency.

Generation: the real games of bench/analysis.py (the demo's three classics and two Lichess
exports, sources in tests/fixtures/README.md) plus Lichess game TaHSAsYD
(tests/fixtures/lichess_annotated_fishnet.pgn), analysed first (not timed), then searched for
puzzles by the problems service with ONE engine process, embedded (SQLite, embedded log), at
the default puzzle budget: timed from the generation request to the last game searched.
Reported per engine process: games and puzzles per minute. Baseline, same run: the very
searches the service made (recorded: position and number of lines), replayed on one bare
Stockfish through python-chess at the same budget: the floor of any generator using this
engine and these criteria. Ratio = bare time / pipeline time.

Serving: `kibitz serve --api-only` on PostgreSQL with 3,000 puzzles; 50 concurrent clients,
each asking `GET /api/problems/random` in a loop (2,000 requests in all), latency per request.
Baseline, same run and clients: `GET /api/problems/{id}`, a plain read by primary key through
the same stack and database.

    .venv/bin/python bench/problems.py [--clients 50] [--requests 2000] [--nodes N]
        [--generation-only]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import chess
import chess.engine
import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.analysis import real_games_pgn  # noqa: E402
from tests import net  # noqa: E402
from tests.support import wait_for_sync  # noqa: E402

from kibitz.adapters.store_models import Analysis, Problem, ProblemScan, ProblemTheme  # noqa: E402
from kibitz.domain import puzzles  # noqa: E402
from kibitz.runtime.bootstrap import bootstrap  # noqa: E402
from kibitz.runtime.cluster import free_port  # noqa: E402
from kibitz.services.analysis import request_analysis  # noqa: E402
from kibitz.services.ingest import import_pgn  # noqa: E402
from kibitz.services.problems import request_generation  # noqa: E402
from kibitz.settings import load_settings  # noqa: E402

PG_ADMIN = os.environ.get("KIBITZ_TEST_PG", "postgresql://kibitz:kibitz@127.0.0.1:5432/postgres")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def games_pgn() -> str:
    return (
        real_games_pgn()
        + "\n\n"
        + (ROOT / "tests/fixtures/lichess_annotated_fishnet.pgn").read_text()
    )


async def generation(nodes: int | None) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    home = Path(tempfile.mkdtemp(prefix="kibitz-bench-problems-"))
    extra: dict[str, Any] = {"problem_nodes": nodes} if nodes else {}
    settings = load_settings(home=home, demo=False, engines=1, **extra)
    view, ids = await import_and_analyse(settings, games_pgn(), "bench.pgn")
    print(f"{view['games_stored']} games imported and analysed; searching them for puzzles")

    container = bootstrap(settings)
    await container.start(["problems"])
    searches: list[tuple[str, int]] = []
    worker = container.component("problems")
    search = worker.search

    async def recorded(board: chess.Board, lines: int) -> list[puzzles.Line]:
        searches.append(
            (" ".join(m.uci() for m in board.move_stack) + "|" + board.root().fen(), lines)
        )
        return await search(board, lines)

    worker.search = recorded
    try:
        began = time.perf_counter()
        await request_generation(container.ctx, None)
        while True:
            scans = await container.sql.read(_scans)
            if scans["games"] >= len(ids):
                break
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - began
    finally:
        await container.close()
    scans["seconds"] = seconds
    scans["nodes"] = settings.problem_nodes
    return scans, searches


async def import_and_analyse(
    settings: Any, pgn: str, filename: str
) -> tuple[dict[str, Any], list[str]]:
    """Import `pgn` into a fresh embedded kibitz and analyse every game stored (batch lane);
    the import's view and the game ids."""
    container = bootstrap(settings)
    await container.start(["ingest", "store", "analysis"])
    try:
        sync_id = await import_pgn(container.ctx, pgn, filename=filename)
        view = await wait_for_sync(container, sync_id, timeout=600)
        ids = [g for g in await container.sql.read(_game_ids)]
        for game_id in ids:
            await request_analysis(container.ctx, game_id, "batch")
        while await container.sql.read(lambda s: _analysed(s, ids)) < len(ids):
            await asyncio.sleep(0.5)
    finally:
        await container.close()
    return view, ids


def _game_ids(session: Any) -> list[str]:
    from kibitz.adapters.store_models import Game

    return list(session.scalars(Game.__table__.select().with_only_columns(Game.id)))


def _analysed(session: Any, ids: list[str]) -> int:
    rows = session.scalars(
        Analysis.__table__.select()
        .with_only_columns(Analysis.status)
        .where(Analysis.game_id.in_(ids))
    ).all()
    return sum(1 for r in rows if r in ("done", "failed"))


def _scans(session: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    return {
        "games": session.scalar(select(func.count(ProblemScan.game_id))) or 0,
        "searches": session.scalar(select(func.sum(ProblemScan.searches))) or 0,
        "candidates": session.scalar(select(func.sum(ProblemScan.candidates))) or 0,
        "puzzles": session.scalar(select(func.count(Problem.id))) or 0,
    }


async def bare(path: str, searches: list[tuple[str, int]], nodes: int) -> float:
    """The recorded searches on one bare Stockfish (python-chess, MultiPV as asked)."""
    _, engine = await chess.engine.popen_uci(path)
    await engine.configure({"Threads": 1, "Hash": 32})
    began = time.perf_counter()
    try:
        for key, lines in searches:
            moves, fen = key.split("|")
            board = chess.Board(fen)
            for uci in moves.split():
                board.push_uci(uci)
            await engine.analyse(board, chess.engine.Limit(nodes=nodes), multipv=lines)
    finally:
        await engine.quit()
    return time.perf_counter() - began


def seed_pg(count: int) -> str:
    name = f"kibitz_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    settings = load_settings(home=Path(tempfile.mkdtemp()), database_url=url, demo=False)
    container = bootstrap(settings)

    async def write() -> None:
        await container.start([])
        try:
            rows = [
                {
                    "id": f"b{i:05d}-1",
                    "game_id": f"b{i:05d}",
                    "ply": 1,
                    "fen": chess.STARTING_FEN,
                    "blunder_uci": "e2e4",
                    "solution": ["e7e5"],
                    "kind": "advantage",
                    "themes": ["advantage"],
                    "rating": 1000,
                    "solver_color": "black",
                    "white_id": "a",
                    "black_id": "b",
                    "generator_version": 1,
                    "created_at": datetime.now(UTC),
                    "served_count": 0,
                    "attempts": 0,
                    "successes": 0,
                }
                for i in range(count)
            ]

            def insert(session: Any) -> None:
                session.execute(container.sql.insert(Problem), rows)
                session.execute(
                    container.sql.insert(ProblemTheme),
                    [{"problem_id": r["id"], "theme": "advantage"} for r in rows],
                )

            await container.sql.run(insert)
        finally:
            await container.close()

    asyncio.run(write())
    return url


async def load(url: str, path: str, clients: int, requests: int, ids: list[str]) -> list[float]:
    latencies: list[float] = []
    per_client = requests // clients
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(n: int) -> None:
            for i in range(per_client):
                target = path.format(id=ids[(n * per_client + i) % len(ids)])
                began = time.perf_counter()
                answer = await client.get(target)
                latencies.append(time.perf_counter() - began)
                assert answer.status_code == 200, answer.text

        await asyncio.gather(*(one(n) for n in range(clients)))
    return latencies


def start_api_only(url: str, ready: str = "/api/health") -> tuple[Any, str]:
    """`kibitz serve --api-only` on the store at `url`, in a home of its own (output in its
    serve.log), once `ready` answers 200 (at most 120 s): the process and its base URL."""
    home = Path(tempfile.mkdtemp(prefix="kibitz-bench-serve-"))
    port = free_port()
    env = {
        **os.environ,
        "KIBITZ_HOME": str(home),
        "KIBITZ_PORT": str(port),
        "KIBITZ_DATABASE_URL": url,
        "KIBITZ_DEMO": "false",
        "KIBITZ_API_TOKEN": "",
    }
    kibitz = str(Path(sys.executable).parent / "kibitz")
    log = (home / "serve.log").open("ab")
    process = subprocess.Popen(
        [kibitz, "serve", "--api-only"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if net.get(f"{base}{ready}", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit(f"no kibitz serve answering {ready}: see {home / 'serve.log'}")
        time.sleep(0.2)


def serving(clients: int, requests: int) -> tuple[list[float], list[float]]:
    process, base = start_api_only(seed_pg(3000))
    try:
        ids = [f"b{i:05d}-1" for i in range(3000)]
        read = asyncio.run(load(base, "/api/problems/{id}", clients, requests, ids))
        served = asyncio.run(load(base, "/api/problems/random", clients, requests, ids))
        return read, served
    finally:
        process.terminate()
        process.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=None, help="puzzle search budget")
    parser.add_argument("--generation-only", action="store_true", help="skip the serving part")
    args = parser.parse_args()
    path = load_settings(demo=False).stockfish_path()
    assert path, "no Stockfish"

    scans, searches = asyncio.run(generation(args.nodes))
    floor = asyncio.run(bare(path, searches, scans["nodes"]))
    minutes = scans["seconds"] / 60
    print(
        f"generation, 1 engine, {scans['nodes']} nodes: {scans['games']} games, "
        f"{scans['candidates']} candidates, {scans['searches']} searches, "
        f"{scans['puzzles']} puzzles in {scans['seconds']:.1f} s"
    )
    print(
        f"  {scans['games'] / minutes:.1f} games/min, {scans['puzzles'] / minutes:.1f} "
        f"puzzles/min per engine process; bare Stockfish on the same {len(searches)} searches "
        f"{floor:.1f} s -> {floor / scans['seconds']:.2f}x of the floor"
    )

    if args.generation_only:
        return
    read, served = serving(args.clients, args.requests)
    for name, values in (("GET /api/problems/{id}", read), ("GET /api/problems/random", served)):
        print(
            f"{name:>26}: p50 {percentile(values, 50) * 1000:6.1f} ms  "
            f"p99 {percentile(values, 99) * 1000:6.1f} ms  mean "
            f"{statistics.mean(values) * 1000:6.1f} ms  (n={len(values)}, {args.clients} clients)"
        )
    print(
        f"random / read: p50 {percentile(served, 50) / percentile(read, 50):.2f}x, "
        f"p99 {percentile(served, 99) / percentile(read, 99):.2f}x"
    )


if __name__ == "__main__":
    main()
