"""Analysis throughput: the whole pipeline against a bare UCI loop, on the same positions.

Positions: every position of real human games — the two standard games of
tests/fixtures/lichess_real_analysis.ndjson (Lichess exports, source in tests/fixtures/README.md)
and the three historical games of the offline demo (src/kibitz/demo/classics.pgn).

- bare: N Stockfish processes (python-chess's async UCI API, asking for what analysis needs,
  the score and the principal variation; the same N, threads and hash as kibitz) pulling from
  one queue of positions, each searched at the quick budget and again at the deep budget,
  exactly the searches kibitz's two phases make.
- pipeline: the real thing, embedded (SQLite store, embedded log): every game requested in the
  batch lane → analysis service → engine pool → evaluations, plugins and status stored; timed
  from the requests to the last game `done`. The evaluation cache is off for this figure.
Rounds interleave bare and pipeline (alternating which goes first); medians are reported.
Target (issue 4): >= 0.95x.

Then, with the cache on: the same games on a fresh store (cold: only positions shared between
games are reused), and once more (warm: a re-analysis, e.g. after `--force`).
Last, the latency from an interactive request to the stored quick pass of an 80-ply game on an
otherwise idle kibitz, and to its deep pass, with the default budgets (an interactive request's
deep pass: 1,000,000 nodes). `--latency-only` runs only that.

    .venv/bin/python bench/analysis.py [--rounds 6] [--quick 20000] [--deep 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import chess
import chess.engine
import chess.pgn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from kibitz.adapters.store_models import Analysis, Game  # noqa: E402
from kibitz.read.games import get_sync  # noqa: E402
from kibitz.runtime.bootstrap import Container, bootstrap  # noqa: E402
from kibitz.services.analysis import request_analysis  # noqa: E402
from kibitz.services.ingest import import_pgn  # noqa: E402
from kibitz.settings import Settings, load_settings  # noqa: E402


def real_games_pgn() -> str:
    """The benchmark's games as one PGN text."""
    texts = [(ROOT / "src/kibitz/demo/classics.pgn").read_text()]
    for line in (ROOT / "tests/fixtures/lichess_real_analysis.ndjson").read_text().splitlines():
        export = json.loads(line)
        if export["variant"] != "standard":
            continue
        white = export["players"]["white"]["user"]["name"]
        black = export["players"]["black"]["user"]["name"]
        moves = export["moves"].split()
        body = " ".join(
            (f"{i // 2 + 1}. " if i % 2 == 0 else "") + san for i, san in enumerate(moves)
        )
        texts.append(
            f'[Event "Lichess {export["id"]}"]\n[Site "https://lichess.org/{export["id"]}"]\n'
            f'[White "{white}"]\n[Black "{black}"]\n[Result "*"]\n\n{body} *\n'
        )
    return "\n\n".join(texts)


def positions(pgn_text: str) -> list[chess.Board]:
    import io

    out = []
    stream = io.StringIO(pgn_text)
    while (game := chess.pgn.read_game(stream)) is not None:
        board = game.board()
        out.append(board.copy())
        for move in game.mainline_moves():
            board.push(move)
            out.append(board.copy())
    return out


async def bare(
    boards: list[chess.Board], settings: Settings, budgets: tuple[int, int]
) -> tuple[float, int, float]:
    """Seconds for every position at each budget on N engines, the searches made, and the
    seconds the engines spent searching (summed)."""
    path = settings.stockfish_path()
    assert path
    engines = []
    for _ in range(settings.engines):
        _, engine = await chess.engine.popen_uci(path)
        await engine.configure(
            {"Threads": settings.engine_threads, "Hash": settings.engine_hash_mb}
        )
        engines.append(engine)
    searches = 0
    busy = [0.0]
    try:
        began = time.perf_counter()
        for nodes in budgets:
            queue: asyncio.Queue[chess.Board] = asyncio.Queue()
            for b in boards:
                if not b.is_game_over(claim_draw=False):
                    queue.put_nowait(b)

            async def work(
                engine: chess.engine.UciProtocol,
                nodes: int = nodes,
                queue: asyncio.Queue[chess.Board] = queue,
            ) -> int:
                done = 0
                while not queue.empty():
                    board = queue.get_nowait()
                    started = time.perf_counter()
                    await engine.analyse(
                        board,
                        chess.engine.Limit(nodes=nodes),
                        info=chess.engine.INFO_SCORE | chess.engine.INFO_PV,
                    )
                    busy[0] += time.perf_counter() - started
                    done += 1
                return done

            searches += sum(await asyncio.gather(*(work(e) for e in engines)))
        return time.perf_counter() - began, searches, busy[0]
    finally:
        for engine in engines:
            await engine.quit()


async def start(home: Path, services: list[str] | None = None, **extra: Any) -> Container:
    settings = load_settings(
        home=home,
        database_url=f"sqlite:///{home / 'kibitz.db'}",
        bus_url=f"sqlite:///{home / 'eventlog.db'}",
        demo=False,
        **extra,
    )
    container = bootstrap(settings)
    await container.start(services or ["ingest", "store", "analysis"])
    return container


async def import_games(container: Container, pgn_text: str) -> list[str]:
    sync_id = await import_pgn(container.ctx, pgn_text, filename="bench.pgn")
    while (await container.sql.read(lambda s: get_sync(s, sync_id)))["status"] != "done":
        await asyncio.sleep(0.05)
    return list(await container.sql.read(lambda s: s.scalars(select(Game.id)).all()))


async def analyse_all(container: Container, ids: list[str], force: bool = False) -> float:
    began = time.perf_counter()
    for game_id in ids:
        await request_analysis(container.ctx, game_id, "batch", force=force)
    while True:
        done = await container.sql.read(
            lambda s: s.scalars(
                select(Analysis.game_id).where(Analysis.game_id.in_(ids), Analysis.status == "done")
            ).all()
        )
        if len(done) == len(ids):
            return time.perf_counter() - began
        await asyncio.sleep(0.02)


async def pipeline(
    pgn_text: str, budgets: tuple[int, int], cache: bool
) -> tuple[float, int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        # The games are imported first; then an analysis worker alone (as `kibitz run
        # analysis`) on the same store and log is timed.
        importer = await start(Path(tmp), services=["ingest", "store"])
        try:
            ids = await import_games(importer, pgn_text)
        finally:
            await importer.close()
        container = await start(
            Path(tmp),
            services=["analysis"],
            quick_nodes=budgets[0],
            deep_nodes=budgets[1],
            eval_cache=cache,
        )
        try:
            assert container.engines is not None
            busy = container.engines.busy_seconds
            seconds = await analyse_all(container, ids)
            engines = container.engines
            return seconds, engines.searches, engines.busy_seconds - busy
        finally:
            await container.close()


async def cached_runs(pgn_text: str, budgets: tuple[int, int]) -> tuple[float, int, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        container = await start(Path(tmp), quick_nodes=budgets[0], deep_nodes=budgets[1])
        try:
            ids = await import_games(container, pgn_text)
            assert container.engines is not None
            cold = await analyse_all(container, ids)
            cold_searches = container.engines.searches
            warm = await analyse_all(container, ids, force=True)
            return cold, cold_searches, warm, container.engines.searches - cold_searches
        finally:
            await container.close()


def random_game_pgn(plies: int, seed: int = 40) -> str:
    rng = random.Random(seed)
    while True:
        board = chess.Board()
        for _ in range(plies):
            moves = list(board.legal_moves)
            if not moves:
                break
            board.push(rng.choice(moves))
        if len(board.move_stack) == plies and not board.is_game_over():
            return str(chess.pgn.Game.from_board(board))


async def quick_latency(plies: int = 80) -> tuple[float, float]:
    """Seconds from an interactive request to the stored quick pass, and to the deep pass."""
    with tempfile.TemporaryDirectory() as tmp:
        container = await start(Path(tmp))  # default budgets
        try:
            (game_id,) = await import_games(container, random_game_pgn(plies))
            await asyncio.sleep(1.0)  # idle
            await request_analysis(container.ctx, game_id, "interactive")
            while True:
                row = await container.sql.read(lambda s: s.get(Analysis, game_id))
                if row.status == "done":
                    requested = row.requested_at.replace(tzinfo=UTC)
                    quick = row.quick_done_at.replace(tzinfo=UTC)
                    finished = row.finished_at.replace(tzinfo=UTC)
                    return (
                        (quick - requested).total_seconds(),
                        (finished - requested).total_seconds(),
                    )
                await asyncio.sleep(0.05)
        finally:
            await container.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--quick", type=int, default=20_000)
    parser.add_argument("--deep", type=int, default=300_000)
    parser.add_argument(
        "--latency-only", action="store_true", help="only the interactive 80-ply game's times"
    )
    parser.add_argument(
        "--no-cache-runs", action="store_true", help="skip the cold and warm cache runs"
    )
    args = parser.parse_args()
    budgets = (args.quick, args.deep)
    settings = load_settings(demo=False)
    if args.latency_only:
        await report_latency(settings)
        return
    pgn_text = real_games_pgn()
    boards = positions(pgn_text)
    print(
        f"{len(boards)} positions of 5 real games; {settings.engines} engines x "
        f"{settings.engine_threads} thread, hash {settings.engine_hash_mb} MB; "
        f"budgets {budgets[0]} + {budgets[1]} nodes"
    )
    bare_rates, pipe_rates = [], []
    n = settings.engines
    for r in range(args.rounds):
        # ABAB… would let a slow drift of the machine favour one side: alternate who goes first.
        if r % 2 == 0:
            b_seconds, b_searches, b_busy = await bare(boards, settings, budgets)
            p_seconds, p_searches, p_busy = await pipeline(pgn_text, budgets, cache=False)
        else:
            p_seconds, p_searches, p_busy = await pipeline(pgn_text, budgets, cache=False)
            b_seconds, b_searches, b_busy = await bare(boards, settings, budgets)
        assert p_searches == b_searches, (p_searches, b_searches)
        bare_rates.append(b_searches / b_seconds)
        pipe_rates.append(p_searches / p_seconds)
        print(
            f"round {r + 1}: bare {b_searches / b_seconds:.1f} searches/s ({b_seconds:.1f} s, "
            f"engines busy {b_busy / (n * b_seconds):.3f}), pipeline "
            f"{p_searches / p_seconds:.1f} searches/s ({p_seconds:.1f} s, engines busy "
            f"{p_busy / (n * p_seconds):.3f}, {p_busy / p_searches * 1000:.0f} ms a search "
            f"against {b_busy / b_searches * 1000:.0f}), ratio {b_seconds / p_seconds:.3f}"
        )
    ratios = [p / b for p, b in zip(pipe_rates, bare_rates, strict=True)]
    print(
        f"median: bare {statistics.median(bare_rates):.1f}/s, pipeline "
        f"{statistics.median(pipe_rates):.1f}/s, ratio {statistics.median(ratios):.3f} "
        f"(rounds: {', '.join(f'{x:.3f}' for x in ratios)})"
    )
    if args.no_cache_runs:
        return
    cold, cold_searches, warm, warm_searches = await cached_runs(pgn_text, budgets)
    uncached_seconds = b_searches / statistics.median(pipe_rates)
    print(
        f"cache: cold {cold:.1f} s ({cold_searches} searches of {b_searches}, "
        f"{uncached_seconds / cold:.2f}x the uncached pipeline), warm re-analysis {warm:.2f} s "
        f"({warm_searches} searches, {uncached_seconds / warm:.0f}x)"
    )
    await report_latency(settings)


async def report_latency(settings: Any) -> None:
    quick, deep = await quick_latency()
    print(
        f"80-ply game, interactive, idle, {settings.engines} engines: quick pass "
        f"({settings.interactive_quick_budget:,} nodes) stored {quick:.2f} s, deep pass "
        f"({settings.interactive_deep_nodes:,} nodes) {deep:.1f} s"
    )


if __name__ == "__main__":
    asyncio.run(main())
