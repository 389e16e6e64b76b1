"""Explore: any position a user reaches on the analysis board, searched on the interactive
lane at a budget they choose (what the board shows beside the game's own evaluations)."""

from __future__ import annotations

from typing import Any

import chess

from kibitz.domain.games import starting_board
from kibitz.errors import InvalidInput, InvalidPgn
from kibitz.services.context import Context

MIN_NODES = 10_000
MAX_NODES = 5_000_000
LINE_PLIES = 12  # the best line as far as the board shows it


def board_of(fen: str) -> chess.Board:
    """The position of `fen`, or InvalidInput saying what is wrong with it (the PGN importer's
    rule for a starting position)."""
    try:
        return starting_board(fen)
    except InvalidPgn as exc:
        raise InvalidInput(f"fen: {exc.detail}") from None


async def explore(ctx: Context, fen: str, nodes: int) -> dict[str, Any]:
    """The engine's evaluation and best line of `fen` at `nodes` nodes (from the evaluation
    cache when it holds one at least as deep)."""
    if not MIN_NODES <= nodes <= MAX_NODES:
        raise InvalidInput(f"nodes must be between {MIN_NODES:,} and {MAX_NODES:,}, not {nodes:,}")
    board = board_of(fen)
    found, cached = (
        await ctx.evaluator.evaluate_all([board], nodes, lambda: "interactive-quick", who="explore")
    )[0]
    line_uci = list(found.pv_uci[:LINE_PLIES]) or ([found.best_uci] if found.best_uci else [])
    line_san: list[str] = []
    replay = board.copy(stack=False)
    for uci in line_uci:
        move = chess.Move.from_uci(uci)
        if move not in replay.legal_moves:
            break  # a line the cache kept for another move order: show what is legal
        line_san.append(replay.san(move))
        replay.push(move)
    score = found.score
    return {
        "fen": board.fen(),
        "nodes": nodes,
        "searched_nodes": found.nodes,
        "depth": found.depth,
        "cached": cached,
        "engine": ctx.evaluator.name,
        "cp": score.cp if score is not None else None,
        "mate": score.mate if score is not None else None,
        "best": found.best_uci,
        "line_uci": line_uci[: len(line_san)],
        "line_san": line_san,
        "game_over": score is None,
        "outcome": outcome(board),
    }


def outcome(board: chess.Board) -> str | None:
    """How the game stands over: "checkmate" (the side that just moved won), "draw", or None."""
    if board.is_checkmate():
        return "checkmate"
    if board.is_game_over(claim_draw=False):
        return "draw"
    return None
