"""The engine adapter on a real Stockfish: its fixed-node search reads what python-chess's own
`analyse` reads from the same engine output."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import chess
import chess.engine
import pytest

from kibitz.adapters.engine_uci import EnginePool, _to_eval
from kibitz.errors import EngineUnavailable
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


def test_an_info_line_is_read_from_the_side_to_move_and_a_garbled_one_is_refused() -> None:
    from kibitz.adapters.engine_uci import _from_info
    from kibitz.domain.judgment import Score

    line = "info depth 9 seldepth 12 multipv 1 score cp 35 nodes 700 nps 1 pv e7e5 g1f3"
    black = _from_info(line, "bestmove e7e5 ponder g1f3", chess.BLACK, 700)
    assert (black.score, black.best_uci, black.pv_uci, black.depth) == (
        Score(cp=-35),
        "e7e5",
        ("e7e5", "g1f3"),
        9,
    )
    mated = _from_info("info depth 0 score mate 0", "bestmove (none)", chess.WHITE, 700)
    assert mated.score is None and mated.best_uci is None
    no_pv = _from_info("info depth 1 score mate 2", "bestmove a1a8", chess.WHITE, 700)
    assert no_pv.score == Score(mate=2) and no_pv.pv_uci == ("a1a8",)
    for garbled in ("info depth x score cp 1 pv e2e4", "info depth 3 score cp"):
        try:
            _from_info(garbled, "bestmove e2e4", chess.WHITE, 700)
        except (ValueError, IndexError):
            continue
        raise AssertionError(f"read {garbled!r}")


async def test_an_engine_that_garbles_its_output_is_an_unavailable_engine(tmp_path: Path) -> None:
    """Output that is not UCI fails the search as an engine error: the pool restarts the
    engine, searches once more, then says the engine is unavailable (no traceback)."""
    script = tmp_path / "garbling-engine"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "for line in sys.stdin:\n"
        "    cmd = line.strip()\n"
        "    if cmd == 'uci':\n"
        "        print('id name garbler')\n"
        "        print('option name Threads type spin default 1 min 1 max 8')\n"
        "        print('option name Hash type spin default 16 min 1 max 1024')\n"
        "        print('uciok')\n"
        "    elif cmd == 'isready':\n"
        "        print('readyok')\n"
        "    elif cmd.startswith('go'):\n"
        "        print('info depth x score cp 1 pv e2e4'); print('bestmove e2e4')\n"
        "    elif cmd == 'quit':\n"
        "        break\n"
        "    sys.stdout.flush()\n"
    )
    script.chmod(0o755)
    pool = EnginePool(str(script), 1)
    await pool.start()
    try:
        with pytest.raises(EngineUnavailable, match="unreadable engine output"):
            await asyncio.wait_for(pool.analyse(chess.Board(), 100), 30)
        assert pool.restarts == 2
    finally:
        await pool.close()
