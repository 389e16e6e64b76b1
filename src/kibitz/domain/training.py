"""Training on a player's own games: cards made from their mistakes and from the puzzles of
their games, scheduled with FSRS (`fsrs`, the scheduler Anki uses); puzzle ratings with
Glicko-2 (`glicko2`); the dashboard's numbers as Lichess computes them.

Sources of the rules:
- a move is accepted when it loses less than 0.04 winning chances against the best: lila
  `ui/analyse/src/retrospect/retroCtrl.ts` (the "learn from your mistakes" check);
- winning chances: `judgment.pov_chances` (lila's board model);
- performance = average puzzle rating - 500 + 1000 x first-try win rate, weak themes at least 3
  failures and a performance below the player's: lila
  `modules/puzzle/src/main/PuzzleDashboard.scala`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import chess
import fsrs
import glicko2

from kibitz.domain.judgment import Judgment, Score, judge_move, pov_chances

ACCEPT_LOSS = 0.04  # winning chances a move may lose against the best and still count
CARD_JUDGMENTS = (Judgment.MISTAKE, Judgment.BLUNDER)

# FSRS as Anki schedules, without the random fuzz on intervals (so that a review's due date
# can be told in advance and checked).
SCHEDULER = fsrs.Scheduler(enable_fuzzing=False)

# Glicko-2's starting values for a solver and a puzzle never rated (the library's defaults).
START_RD = 350.0
START_VOL = 0.06
START_RATING = 1500.0


# --- winning chances of a move -------------------------------------------------------------


def chances(score: Score | None, white: bool, board_after: chess.Board | None = None) -> float:
    """The winning chances [-1, 1] of the side `white` says for a White's-side score
    (`judgment.pov_chances`); a finished position (None) is 1 for the side that mated, 0 for a
    draw."""
    if score is None:
        if board_after is not None and board_after.is_checkmate():
            mated_white = board_after.turn == chess.WHITE
            return -1.0 if mated_white == white else 1.0
        return 0.0
    return pov_chances(score, white)


def accepted(best: float, played: float) -> bool:
    """A move whose chances (the mover's) lose less than ACCEPT_LOSS against the best's."""
    return best - played < ACCEPT_LOSS


# --- cards from a game -----------------------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    """A move of the player judged a Mistake or a Blunder: the card's question."""

    ply: int  # 1-based: the move's ply
    fen: str  # before the move
    played_uci: str
    played_san: str
    best_uci: str | None
    best_san: str | None
    judgment: str
    loss: float  # winning chances lost


def mistakes(
    moves_uci: Sequence[str],
    initial_fen: str | None,
    scores: Sequence[Score | None],
    best_ucis: Sequence[str | None],
    start_score: Score | None,
    color: chess.Color,
) -> list[Mistake]:
    """The player's (`color`) moves judged Mistake or Blunder, with the engine's best move in
    the position before each. `scores[i]` is White's-side score after ply i+1, `best_ucis[i]`
    the best move before it."""
    board = chess.Board(initial_fen) if initial_fen else chess.Board()
    previous = start_score if start_score is not None else Score(cp=15) if not initial_fen else None
    out = []
    for index, uci in enumerate(moves_uci):
        after = scores[index] if index < len(scores) else None
        move = chess.Move.from_uci(uci)
        if board.turn == color and previous is not None and after is not None:
            verdict = judge_move(previous, after, color == chess.WHITE)
            if verdict is not None and verdict.judgment in CARD_JUDGMENTS:
                best = best_ucis[index] if index < len(best_ucis) else None
                best_move = chess.Move.from_uci(best) if best else None
                if best_move is not None and best_move not in board.legal_moves:
                    best_move = None
                white = color == chess.WHITE
                out.append(
                    Mistake(
                        ply=index + 1,
                        fen=board.fen(),
                        played_uci=uci,
                        played_san=board.san(move),
                        best_uci=best_move.uci() if best_move is not None else None,
                        best_san=board.san(best_move) if best_move is not None else None,
                        judgment=verdict.judgment.value,
                        loss=round(chances(previous, white) - chances(after, white), 4),
                    )
                )
        board.push(move)
        previous = after
    return out


def first_due(created: float) -> float:
    """A new card is due the next day (its start, UTC)."""
    day = datetime.fromtimestamp(created, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()


# --- FSRS ------------------------------------------------------------------------------------


def new_schedule(due: float) -> dict[str, Any]:
    """The FSRS state of a card never reviewed, due at `due`."""
    return dict(fsrs.Card(card_id=0, due=datetime.fromtimestamp(due, UTC)).to_dict())


def review(schedule: dict[str, Any], correct: bool, at: float) -> tuple[dict[str, Any], float]:
    """The card's FSRS state after an answer (right: Good, wrong: Again) at `at`, and its new
    due time."""
    card = fsrs.Card.from_dict(schedule)  # type: ignore[arg-type]
    rating = fsrs.Rating.Good if correct else fsrs.Rating.Again
    card, _ = SCHEDULER.review_card(card, rating, datetime.fromtimestamp(at, UTC))
    return dict(card.to_dict()), card.due.timestamp()


# --- Glicko-2 --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rating:
    rating: float
    rd: float
    vol: float


def rate(solver: Rating, puzzle: Rating, solved: bool) -> tuple[Rating, Rating]:
    """One first attempt as a rating period of one game for each: the solver against the
    puzzle, the puzzle against the solver (both from their ratings before it)."""
    player = glicko2.Player(rating=solver.rating, rd=solver.rd, vol=solver.vol)
    player.update_player([puzzle.rating], [puzzle.rd], [1 if solved else 0])
    problem = glicko2.Player(rating=puzzle.rating, rd=puzzle.rd, vol=puzzle.vol)
    problem.update_player([solver.rating], [solver.rd], [0 if solved else 1])
    return (
        Rating(float(player.rating), float(player.rd), float(player.vol)),
        Rating(float(problem.rating), float(problem.rd), float(problem.vol)),
    )


# --- the dashboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    attempts: int
    first_wins: int
    failed: int
    rating_avg: float

    @property
    def win_rate(self) -> float:
        return self.first_wins / self.attempts if self.attempts else 0.0

    @property
    def performance(self) -> int:
        return round(self.rating_avg - 500 + 1000 * self.win_rate)


def results(attempts: Sequence[tuple[bool, float]]) -> Results:
    """(solved at the first try, the puzzle's rating then) of each first attempt."""
    wins = sum(1 for solved, _ in attempts if solved)
    avg = sum(r for _, r in attempts) / len(attempts) if attempts else 0.0
    return Results(len(attempts), wins, len(attempts) - wins, avg)


def weak_themes(overall: Results, by_theme: dict[str, Results], top: int = 8) -> list[str]:
    """Themes with at least 3 failures and a performance below the player's overall, worst
    first (lila also ignores themes with fewer than 1/40 of the attempts)."""
    seen = [
        (theme, r)
        for theme, r in by_theme.items()
        if r.attempts > overall.attempts / 40 and r.failed >= 3
    ]
    seen.sort(key=lambda item: (item[1].performance, -item[1].attempts))
    return [theme for theme, r in seen if r.performance < overall.performance][:top]


@dataclass(frozen=True)
class CardSource:
    """An analysed game as cards are made from it: its moves, the score after each ply and the
    engine's best move before it (White's side), and which of its players train here."""

    game_id: str
    initial_fen: str | None
    moves_uci: Sequence[str]
    scores: Sequence[Score | None]
    best_ucis: Sequence[str | None]
    start_score: Score | None
    trainees: dict[str, bool]  # player id -> plays White; only players kibitz knows
    puzzles: Sequence[tuple[str, str, int]]  # (problem id, FEN to answer in, ply) of the game


@dataclass(frozen=True)
class NewCard:
    id: str
    player_id: str
    kind: str  # mistake | puzzle
    game_id: str
    ply: int
    fen: str
    schedule: dict[str, Any]
    due: float
    created: float
    problem_id: str | None = None
    played_uci: str | None = None
    best_uci: str | None = None
    judgment: str | None = None
    loss: float | None = None


def cards_of(source: CardSource, now: float) -> list[NewCard]:
    """The cards of one analysed game for each of its trainees: their mistakes, and its
    puzzles (a kind of their own). New cards are due the next day."""
    due = first_due(now)
    schedule = new_schedule(due)
    out = []
    for player, white in source.trainees.items():
        color = chess.WHITE if white else chess.BLACK
        for m in mistakes(
            source.moves_uci,
            source.initial_fen,
            source.scores,
            source.best_ucis,
            source.start_score,
            color,
        ):
            out.append(
                NewCard(
                    id=f"{player}:{source.game_id}:{m.ply}",
                    player_id=player,
                    kind="mistake",
                    game_id=source.game_id,
                    ply=m.ply,
                    fen=m.fen,
                    schedule=schedule,
                    due=due,
                    created=now,
                    played_uci=m.played_uci,
                    best_uci=m.best_uci,
                    judgment=m.judgment,
                    loss=m.loss,
                )
            )
        for problem_id, fen, ply in source.puzzles:
            out.append(
                NewCard(
                    id=f"{player}:p:{problem_id}",
                    player_id=player,
                    kind="puzzle",
                    game_id=source.game_id,
                    ply=ply,
                    fen=fen,
                    schedule=schedule,
                    due=due,
                    created=now,
                    problem_id=problem_id,
                )
            )
    return out
