"""training: a player's own mistakes and the puzzles of their games as cards, scheduled with
FSRS; puzzle attempts rated with Glicko-2 (`kibitz.domain.training` holds the rules).

Cards are made when a game's analysis completes (for each of its players kibitz knows: the
players it syncs) and when its puzzles are found; a player's older analysed games are made
cards when they first ask for their reviews. An answer other than the engine's move is checked
by the engine once (interactive lane) and remembered.
"""

from __future__ import annotations

import logging
from typing import Any

import chess

from kibitz import topics
from kibitz.domain import training
from kibitz.domain.players import player_key
from kibitz.errors import Conflict, InvalidInput, NotFound
from kibitz.events import AnalysisCompleted, Envelope, ProblemsGenerated
from kibitz.ports.store import Card
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.dispatch import by_type
from kibitz.runtime.service import Service
from kibitz.services.context import Context

log = logging.getLogger("kibitz.training")

RETRY = RetryPolicy(max_attempts=5, base_delay=2.0, max_delay=60.0, handler_timeout=120.0)
BACKFILL_GAMES = 200  # a player's older games made cards per request
DUE_LIMIT = 50


DASHBOARD_DAYS = (1, 7, 30, 90)


def player_id(username: str) -> str:
    return player_key(username)


def check_days(days: int) -> int:
    if days not in DASHBOARD_DAYS:
        raise InvalidInput(f"days must be one of {', '.join(map(str, DASHBOARD_DAYS))}")
    return days


async def make_cards(ctx: Context, game_id: str, player: str | None = None) -> int:
    """Make the cards of an analysed game (for `player` only, when given); returns how many
    are new. Replaying the moves is CPU work: it runs off the event loop."""
    source = await ctx.store.training.card_source(game_id, player)
    if source is None:
        return 0
    cards = await ctx.run_cpu(training.cards_of, source, ctx.clock.now())
    return await ctx.store.training.add_cards(game_id, list(source.trainees), cards)


async def backfill(ctx: Context, username: str) -> int:
    """Make cards of the player's analysed games not yet made cards (up to BACKFILL_GAMES at a
    time); returns how many cards are new."""
    player = player_id(username)
    added = 0
    for game_id in await ctx.store.training.unscanned(player, BACKFILL_GAMES):
        added += await make_cards(ctx, game_id, player)
    return added


def card_view(card: Card, now: float) -> dict[str, Any]:
    """A card as the reviewer sees it (what counts as right stays on the server)."""
    board = chess.Board(card.fen)
    played = None
    if card.played_uci:
        move = chess.Move.from_uci(card.played_uci)
        played = {"uci": card.played_uci, "san": board.san(move)}
    return {
        "id": card.id,
        "kind": card.kind,
        "fen": card.fen,
        "turn": "white" if board.turn == chess.WHITE else "black",
        "game": {
            "id": card.game_id,
            "ply": card.ply,
            "url": f"/games/{card.game_id}#ply={card.ply}",
        },
        "problem_id": card.problem_id,
        "played": played,
        "judgment": card.judgment,
        "due": card.due,
        "overdue_seconds": max(0.0, now - card.due),
        "reviews": card.reviews,
        "lapses": card.lapses,
    }


async def due_cards(ctx: Context, username: str, limit: int = DUE_LIMIT) -> dict[str, Any]:
    """Today's due cards of the player, soonest first (their older games made cards first)."""
    if not 1 <= limit <= 500:
        raise InvalidInput("limit must be between 1 and 500")
    player = player_id(username)
    await backfill(ctx, username)
    now = ctx.clock.now()
    cards, due, total = await ctx.store.training.due(player, now, limit)
    return {
        "player": player,
        "now": now,
        "due": due,
        "total": total,
        "cards": [card_view(c, now) for c in cards],
    }


def _move(board: chess.Board, uci: str) -> chess.Move:
    try:
        move = chess.Move.from_uci(uci)
    except (ValueError, TypeError):
        raise InvalidInput(f"move: {uci!r} is not a UCI move (e.g. e2e4)") from None
    if move not in board.legal_moves:
        raise InvalidInput(f"move: {uci} is not legal in {board.fen()}")
    return move


async def check_answer(
    ctx: Context, card: Card, move: chess.Move
) -> tuple[bool, float | None, str | None]:
    """(right, winning chances lost against the best, the best move) of an answer."""
    board = chess.Board(card.fen)
    if card.kind == "puzzle":
        stored = await ctx.store.problems.solution(card.problem_id or "")
        if stored is None:
            raise NotFound(f"no puzzle {card.problem_id!r}")
        expected = chess.Move.from_uci(stored[2][0])
        last = len(stored[2]) == 1
        after = board.copy(stack=False)
        after.push(move)
        right = move == expected or (last and after.is_checkmate())
        return right, None, expected.uci()
    best_uci = card.best_uci
    if best_uci == move.uci():
        return True, 0.0, best_uci
    known = await ctx.store.training.known_answer(card.id, move.uci())
    if known is not None and best_uci is not None:
        return known[0], known[1], best_uci
    if card.played_uci == move.uci() and best_uci is not None:
        return False, None, best_uci  # the mistake itself
    white = board.turn == chess.WHITE
    after = board.copy(stack=False)
    after.push(move)
    # The best line's value: the position after the engine's move, or (a game annotated
    # without best moves) the position itself, searched at the same budget as the answer.
    reference = board.copy(stack=False)
    if best_uci is not None:
        reference.push_uci(best_uci)
    found = await ctx.evaluator.evaluate_all(
        [reference, after], ctx.settings.deep_nodes, lambda: "interactive-quick", who="training"
    )
    best_uci = best_uci or found[0][0].best_uci
    best = training.chances(found[0][0].score, white, reference)
    played = training.chances(found[1][0].score, white, after)
    right = training.accepted(best, played) and move.uci() != card.played_uci
    loss = round(best - played, 4)
    await ctx.store.training.remember_answer(card.id, move.uci(), right, loss)
    return right, loss, best_uci


async def answer(ctx: Context, card_id: str, move_uci: str) -> dict[str, Any]:
    """Check an answer to a card and reschedule it (FSRS: right is Good, wrong is Again).
    NotFound for an unknown card, InvalidInput for an illegal move, Conflict when the card
    was answered meanwhile (nothing written then)."""
    card = await ctx.store.training.card(card_id)
    if card is None:
        raise NotFound(f"no card {card_id!r}")
    board = chess.Board(card.fen)
    move = _move(board, move_uci)
    right, loss, best_uci = await check_answer(ctx, card, move)
    now = ctx.clock.now()
    schedule, due = training.review(card.schedule, right, now)
    if not await ctx.store.training.review(card, move.uci(), right, schedule, due, now):
        raise Conflict(f"card {card_id} was answered meanwhile; load your due cards again")
    best = None
    if best_uci is not None and chess.Move.from_uci(best_uci) in board.legal_moves:
        best = {"uci": best_uci, "san": board.san(chess.Move.from_uci(best_uci))}
    return {
        "id": card_id,
        "correct": right,
        "loss": loss,
        "answer": {"uci": move.uci(), "san": board.san(move)},
        "best": best,
        "due": due,
        "state": schedule.get("state"),
        "stability": schedule.get("stability"),
        "difficulty": schedule.get("difficulty"),
    }


# --- puzzle ratings --------------------------------------------------------------------------


async def rate_attempt(
    ctx: Context, username: str, problem_id: str, solved: bool
) -> dict[str, Any] | None:
    """Record an ended attempt of a solver; the first per puzzle moves both ratings."""
    player = player_id(username)
    rated = await ctx.store.training.rate_attempt(
        player, problem_id, solved, ctx.clock.now(), training.rate
    )
    if rated is None:
        return None
    solver, puzzle, first = rated
    return {
        "player": player,
        "rating": round(solver.rating),
        "rd": round(solver.rd),
        "puzzle_rating": round(puzzle.rating),
        "rated": first,
    }


async def streak_ended(ctx: Context, username: str, score: int) -> dict[str, Any]:
    if not 0 <= score <= 10_000:
        raise InvalidInput("score must be between 0 and 10000")
    best = await ctx.store.training.streak_ended(player_id(username), score)
    return {"player": player_id(username), "score": score, "best": best}


# --- the service -----------------------------------------------------------------------------


class TrainingWorker:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def on_analysed(self, envelope: Envelope, done: AnalysisCompleted) -> None:
        added = await make_cards(self.ctx, done.game_id)
        if added:
            log.info("cards_made game=%s cards=%d", done.game_id, added)

    async def on_puzzles(self, envelope: Envelope, found: ProblemsGenerated) -> None:
        if found.problem_ids:
            await make_cards(self.ctx, found.game_id)


def build(ctx: Context) -> Service:
    worker = TrainingWorker(ctx)
    handle = by_type(
        "the training service",
        {AnalysisCompleted: worker.on_analysed, ProblemsGenerated: worker.on_puzzles},
    )
    return Service(
        name="training",
        handlers={topics.ANALYSIS_COMPLETED: handle, topics.PROBLEMS_GENERATED: handle},
        retry=RETRY,
        record_event_ids=False,  # idempotent: cards by natural id, one scan per game and player
        description="cards of each player's mistakes and puzzles, scheduled with FSRS",
        component=worker,
    )
