"""The engine adapter on a real Stockfish: its fixed-node search reads what python-chess's own
`analyse` reads from the same engine output."""

from __future__ import annotations

import asyncio
import random

import chess
import chess.engine

from kibitz.adapters.engine_uci import EnginePool, _to_eval
from kibitz.settings import load_settings


def _positions() -> list[chess.Board]:
    rng = random.Random(9)
    boards = [
        chess.Board("6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1"),  # White mates in one
        chess.Board("r5k1/5ppp/8/8/8/8/5PPP/6K1 b - - 0 1"),  # Black mates in one
        chess.Board("8/8/8/8/8/5k2/8/4K2q w - - 0 1"),  # White, in check, is lost
    ]
    for _ in range(3):
        board = chess.Board()
        for _ in range(rng.randint(20, 60)):
            moves = list(board.legal_moves)
            if not moves:
                break
            board.push(rng.choice(moves))
            boards.append(board.copy())
    return [b for b in boards if not b.is_game_over()]


async def test_a_fixed_node_search_reads_what_python_chess_analyse_reads() -> None:
    path = load_settings(demo=False).stockfish_path()
    assert path, "Stockfish is needed"
    # Two fresh engines, the same searches in the same order: at a fixed node budget on one
    # thread Stockfish is deterministic, so the evaluations must be equal field by field.
    _, reference = await chess.engine.popen_uci(path)
    await reference.configure({"Threads": 1, "Hash": 32})
    pool = EnginePool(path, 1)
    await pool.start()
    try:
        boards = _positions()
        compared = 0
        for nodes in (300, 5000):
            for board in boards:
                info = await reference.analyse(
                    board,
                    chess.engine.Limit(nodes=nodes),
                    info=chess.engine.INFO_SCORE | chess.engine.INFO_PV,
                )
                expected = _to_eval(info, [m.uci() for m in info.get("pv", [])], nodes)
                assert await pool.analyse(board, nodes) == expected, board.fen()
                compared += 1
        assert compared == 2 * len(boards) > 100
        mates = [await pool.analyse(b, 5000) for b in boards[:2]]
        for board in boards[:2]:  # the reference's hash follows the same searches
            await reference.analyse(board, chess.engine.Limit(nodes=5000))
        assert [m.score.mate if m.score else None for m in mates] == [1, -1]
        assert [m.best_uci for m in mates] == ["a1a8", "a8a1"]

        # A MultiPV search, then a single line again: the engine is back to one line.
        lines = await pool.analyse_lines(boards[5], 3000, 2)
        assert len(lines) == 2 and lines[0].best_uci != lines[1].best_uci
        info = await reference.analyse(
            boards[5], chess.engine.Limit(nodes=3000), multipv=2, info=chess.engine.INFO_PV
        )
        assert len(info) == 2
        single = await pool.analyse(boards[6], 3000)
        info1 = await reference.analyse(
            boards[6], chess.engine.Limit(nodes=3000), info=chess.engine.INFO_ALL
        )
        assert single == _to_eval(info1, [m.uci() for m in info1.get("pv", [])], 3000)

        # A search given up half-way (its caller cancelled) leaves the engine usable.
        slow = asyncio.ensure_future(pool.analyse(boards[7], 50_000_000))
        while pool._free:  # until the search has the engine
            await asyncio.sleep(0)
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
        after = await asyncio.wait_for(pool.analyse(boards[0], 2000), 30)
        assert after.best_uci == "a1a8" and pool.restarts == 0
    finally:
        await reference.quit()
        await pool.close()
