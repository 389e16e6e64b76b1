"""Insights across a player's games (Lichess's insights are the anchor): every move of theirs
with its accuracy and centipawn loss, its phase, the clock it was played on; and what their
blunders allowed or missed, named as Lichess names puzzle themes.

The numbers are Lichess's per-move ones: a move's accuracy from the mover's win percentage
before and after it (`judgment.move_accuracy`, lila `AccuracyPercent`), its centipawn loss with
evaluations forced to centipawns and capped at ±1000 (lila `AccuracyCP`). A group of moves
averages them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import chess

from kibitz.domain import puzzles
from kibitz.domain.analysis import GameInput, _final_score, divide, judge_game
from kibitz.domain.judgment import CP_CEILING, CP_INITIAL, Judgment, Score, weighted_move_accuracies

# Time left before a move, as a share of the initial time.
CLOCK_BUCKETS = ((0.5, "over half"), (0.25, "a quarter to half"), (0.1, "a tenth to a quarter"))
LOW_CLOCK = "under a tenth"
# The motifs of a blunder, as the puzzle themes name them.
MOTIF_NAMES = {
    "hangingPiece": "hanging piece",
    "fork": "fork",
    "pin": "pin",
    "skewer": "skewer",
    "discoveredAttack": "discovered attack",
    "backRankMate": "back-rank mate",
    "mate": "mate",
    "promotion": "promotion",
}


@dataclass(frozen=True)
class MoveFact:
    ply: int  # 1-based
    accuracy: float
    cp_loss: int
    phase: str  # opening | middlegame | endgame
    clock: str | None  # a CLOCK_BUCKETS name, None without clocks
    judgment: str | None
    themes: tuple[str, ...] = ()  # a blunder's: "allowed fork", "missed mate", …


def _capped(score: Score) -> int:
    return max(-CP_CEILING, min(CP_CEILING, score.forced_cp()))


def _clock_bucket(left_cs: int, initial_cs: int) -> str:
    share = left_cs / initial_cs if initial_cs else 0.0
    for floor, name in CLOCK_BUCKETS:
        if share >= floor:
            return name
    return LOW_CLOCK


def _line_uci(board: chess.Board, line_san: str | None) -> list[str]:
    """A stored best line (SAN) from `board`, as UCI, as far as it is legal."""
    out: list[str] = []
    replay = board.copy(stack=False)
    for token in (line_san or "").split():
        if token[0].isdigit():
            continue  # a move number
        try:
            move = replay.parse_san(token)
        except ValueError:
            break
        out.append(move.uci())
        replay.push(move)
    return out


def _motifs(board: chess.Board, line: list[str], mate: bool) -> list[str]:
    """The motifs of a line from `board` (the side to move plays it)."""
    if not line:
        return []
    found = puzzles.themes(board, line, "mate" if mate else "advantage")
    return [MOTIF_NAMES[t] for t in found if t in MOTIF_NAMES]


def _mates(score: Score | None, white: bool) -> bool:
    """Whether `score` (White's side) is a forced mate for the side `white` says."""
    if score is None or score.mate is None:
        return False
    return (score.mate > 0) == white


def _static_allowed(board: chess.Board, mover_white: bool) -> list[str]:
    """What a position after a blunder offers the opponent, seen without an engine line: a
    mate in one, a piece of the mover's left hanging."""
    out = []
    for move in board.legal_moves:
        board.push(move)
        mate = board.is_checkmate()
        board.pop()
        if mate:
            out.append("allowed mate")
            break
    if puzzles.loose_pieces(board, chess.WHITE if mover_white else chess.BLACK):
        out.append("allowed hanging piece")
    return out


def blunder_themes(game: GameInput, index: int, boards: Sequence[chess.Board]) -> tuple[str, ...]:
    """What a blunder (the move at `index`) allowed, from the opponent's best reply line, and
    what it missed, from the mover's own best line."""
    out: list[str] = []
    after = game.evals[index]
    if index + 1 < len(game.evals):
        reply = game.evals[index + 1]
        line = _line_uci(boards[index + 1], reply.line_san)
        if not line and reply.best_uci:
            line = [reply.best_uci]
        if not line:  # no reply line stored: what the position shows by itself
            out += _static_allowed(boards[index + 1], game.white_moved(index))
        out += [
            f"allowed {m}"
            for m in _motifs(
                boards[index + 1], line, _mates(after.score, not game.white_moved(index))
            )
        ]
    own = _line_uci(boards[index], after.line_san)
    if not own and after.best_uci:
        own = [after.best_uci]
    before = game.evals[index - 1].score if index > 0 else None
    out += [
        f"missed {m}" for m in _motifs(boards[index], own, _mates(before, game.white_moved(index)))
    ]
    return tuple(dict.fromkeys(out)) or ("other",)


def move_facts(game: GameInput, white: bool) -> list[MoveFact]:
    """Every move of one side (`white`) with its numbers, phase and clock."""
    if not game.evals:
        return []
    scores = [_final_score(game, i) for i in range(len(game.evals))]
    accuracies = weighted_move_accuracies(scores, game.white_starts)
    boards = game.boards()
    middle, end = divide(boards)
    judgments = judge_game(game)
    initial_cs = (game.clock_initial or 0) * 100
    clocks = list(game.clocks_cs or [])
    previous = Score(cp=CP_INITIAL)
    last_clock = {True: initial_cs, False: initial_cs}
    out = []
    for i, score in enumerate(scores):
        mover_white = game.white_moved(i)
        loss = (_capped(score) - _capped(previous)) * (-1 if mover_white else 1)
        previous = score
        clock_before = last_clock[mover_white]
        if i < len(clocks):
            last_clock[mover_white] = clocks[i]
        if mover_white != white:
            continue
        if end is not None and i >= end:
            phase = "endgame"
        elif middle is not None and i >= middle:
            phase = "middlegame"
        else:
            phase = "opening"
        judged = judgments[i]
        blunder = judged is not None and judged.judgment == Judgment.BLUNDER
        out.append(
            MoveFact(
                ply=i + 1,
                accuracy=accuracies[i][1],
                cp_loss=max(0, loss),
                phase=phase,
                clock=_clock_bucket(clock_before, initial_cs)
                if clocks and initial_cs and i < len(clocks)
                else None,
                judgment=judged.judgment.value if judged is not None else None,
                themes=blunder_themes(game, i, boards) if blunder else (),
            )
        )
    return out


def opening_family(name: str | None) -> str:
    """The family of an opening name: "Sicilian Defense: Najdorf Variation" → "Sicilian
    Defense"."""
    if not name:
        return "Unknown opening"
    return name.split(":")[0].split(",")[0].strip() or "Unknown opening"


def result_for(result: str, white: bool) -> str:
    if result == "1/2-1/2":
        return "draw"
    if result in ("1-0", "0-1"):
        return "win" if (result == "1-0") == white else "loss"
    return "unfinished"
