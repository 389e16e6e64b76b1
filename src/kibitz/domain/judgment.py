"""Win chances, move judgments and accuracy, computed exactly as Lichess computes them.

Sources (read in Lichess's open-source code; facts, not copied code):
- win chances: scalachess `core/src/main/scala/eval.scala`, `WinPercent.winningChances` and
  `fromCentiPawns`; `Eval.Cp.CEILING = 1000`, `Eval.Cp.initial = 15`.
- judgments: lila `modules/tree/src/main/Advice.scala` (`CpAdvice`, `MateAdvice`) and
  `modules/tree/src/main/Info.scala` (an eval is taken after a ply; the mover is the side to
  move before it).
- accuracy: lila `modules/analyse/src/main/AccuracyPercent.scala` (`fromWinPercents`,
  `gameAccuracy`) with scalalib `Maths` (`weightedMean`, `harmonicMean` over max(1, v),
  population `standardDeviation`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

WIN_CHANCE_MULTIPLIER = -0.00368208  # lila PR 11148
CP_CEILING = 1000
CP_INITIAL = 15

# (minimum loss of winning chances on the [-1, +1] scale, judgment), worst first
WINNING_CHANCE_THRESHOLDS = ((0.3, "Blunder"), (0.2, "Mistake"), (0.1, "Inaccuracy"))


class Judgment(StrEnum):
    INACCURACY = "Inaccuracy"
    MISTAKE = "Mistake"
    BLUNDER = "Blunder"


@dataclass(frozen=True)
class Score:
    """An engine score from White's side: centipawns, or moves to mate (negative: Black mates)."""

    cp: int | None = None
    mate: int | None = None

    def __post_init__(self) -> None:
        if (self.cp is None) == (self.mate is None):
            raise ValueError("a score is either centipawns or mate")

    def invert(self) -> Score:
        return Score(cp=-self.cp) if self.cp is not None else Score(mate=-(self.mate or 0))

    def forced_cp(self) -> int:
        """Centipawns, a mate counting as the ceiling with its sign (Lichess's `forceAsCp`)."""
        if self.cp is not None:
            return self.cp
        return CP_CEILING if (self.mate or 0) > 0 else -CP_CEILING


def stored_score(cp: int | None, mate: int | None) -> Score | None:
    """A score kept as two columns (centipawns or mate); None when neither is set."""
    if cp is not None:
        return Score(cp=cp)
    return Score(mate=mate) if mate else None


def winning_chances(cp: float) -> float:
    """White's winning chances on [-1, +1] for a centipawn score."""
    exponent = WIN_CHANCE_MULTIPLIER * cp
    if exponent > 700:  # the JVM's exp gives infinity here (chances -1); Python's would raise
        return -1.0
    raw = 2 / (1 + math.exp(exponent)) - 1
    return max(-1.0, min(1.0, raw))


def pov_chances(score: Score, white: bool) -> float:
    """The winning chances [-1, 1] of the side `white` says, for a White's-side score, as
    Lichess's board computes them (lila `ui/lib/src/ceval/winningChances.ts`, `povChances`):
    centipawns capped at ±1000, a mate in n counting as (21 - min(10, n)) x 100 centipawns."""
    if score.mate is not None:
        cp = (21 - min(10, abs(score.mate))) * 100 * (1 if score.mate > 0 else -1)
    else:
        cp = max(-CP_CEILING, min(CP_CEILING, score.cp or 0))
    value = winning_chances(cp)
    return value if white else -value


def win_percent(cp: float) -> float:
    """White's win percentage [0, 100]; centipawns are capped at ±1000 first."""
    return 50 + 50 * winning_chances(max(-CP_CEILING, min(CP_CEILING, cp)))


def white_percent(score: Score | None) -> float | None:
    """What an evaluation bar shows: White's win percentage, 100 or 0 for a forced mate, None
    for a finished game (the one curve: the web pages get it from here)."""
    if score is None:
        return None
    if score.mate is not None:
        return 100.0 if score.mate > 0 else 0.0
    return round(win_percent(score.cp or 0), 2)


@dataclass(frozen=True)
class MoveJudgment:
    judgment: Judgment
    mate_sequence: str | None = None  # Lichess's wording for mate-related judgments


MATE_CREATED = "Checkmate is now unavoidable"
MATE_LOST = "Lost forced checkmate sequence"


def judge_move(before: Score, after: Score, white_moved: bool) -> MoveJudgment | None:
    """The judgment of one move from the scores before and after it (White's side), or None."""
    if before.cp is not None and after.cp is not None:
        change = winning_chances(after.cp) - winning_chances(before.cp)
        loss = -change if white_moved else change
        for threshold, name in WINNING_CHANCE_THRESHOLDS:
            if loss >= threshold:
                return MoveJudgment(Judgment(name))
        return None
    mover_before = before if white_moved else before.invert()
    mover_after = after if white_moved else after.invert()
    cp_before = mover_before.cp or 0
    cp_after = mover_after.cp or 0
    created = mover_before.cp is not None and (mover_after.mate or 0) < 0
    lost = (mover_before.mate or 0) > 0 and (
        mover_after.cp is not None or (mover_after.mate or 0) < 0
    )
    if created:
        severity = 3 if cp_before >= -700 else 2 if cp_before >= -999 else 1
        return MoveJudgment(_by_severity(severity), MATE_CREATED)
    if lost:
        severity = 1 if cp_after > 999 else 2 if cp_after > 700 else 3
        return MoveJudgment(_by_severity(severity), MATE_LOST)
    return None


def _by_severity(severity: int) -> Judgment:
    return {1: Judgment.INACCURACY, 2: Judgment.MISTAKE, 3: Judgment.BLUNDER}[severity]


def move_accuracy(win_percent_before: float, win_percent_after: float) -> float:
    """A move's accuracy [0, 100] from the mover's win percentage before and after it."""
    if win_percent_after >= win_percent_before:
        return 100.0
    drop = win_percent_before - win_percent_after
    raw = 103.1668100711649 * math.exp(-0.04354415386753951 * drop) - 3.166924740191411
    return max(0.0, min(100.0, raw + 1))  # +1: Lichess's bonus for imperfect analysis


def game_accuracy(
    scores_after_each_ply: list[Score], white_started: bool = True
) -> tuple[float | None, float | None]:
    """(White's, Black's) game accuracy: the mean of a volatility-weighted mean and a harmonic
    mean of per-move accuracies. None for a side with no move."""
    moves = weighted_move_accuracies(scores_after_each_ply, white_started)
    return (
        side_accuracy([(a, w) for white, a, w in moves if white]),
        side_accuracy([(a, w) for white, a, w in moves if not white]),
    )


def weighted_move_accuracies(
    scores_after_each_ply: list[Score], white_started: bool = True
) -> list[tuple[bool, float, float]]:
    """Per ply: (White moved?, the move's accuracy, its weight: the volatility of the win
    percentage around it), as lila's `AccuracyPercent.gameAccuracy` computes them."""
    percents = [win_percent(CP_INITIAL)] + [
        win_percent(s.forced_cp()) for s in scores_after_each_ply
    ]
    moves = len(scores_after_each_ply)
    window = max(2, min(8, moves // 10))
    windows = [percents[:window]] * (min(window, len(percents)) - 2) + [
        percents[i : i + window] for i in range(max(1, len(percents) - window + 1))
    ]
    weights = [max(0.5, min(12.0, _population_stdev(w))) for w in windows]
    out = []
    for i in range(moves):
        white = (i % 2 == 0) == white_started
        before, after = percents[i], percents[i + 1]
        accuracy = (
            move_accuracy(before, after) if white else move_accuracy(100 - before, 100 - after)
        )
        out.append((white, accuracy, weights[i]))
    return out


def _population_stdev(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def side_accuracy(moves: list[tuple[float, float]]) -> float | None:
    """One side's accuracy over (accuracy, weight) moves: the mean of their weighted mean and
    their harmonic mean (lila). None without a move."""
    if not moves:
        return None
    total_weight = sum(w for _, w in moves)
    weighted = sum(a * w for a, w in moves) / total_weight
    harmonic = len(moves) / sum(1 / max(1.0, a) for a, _ in moves)
    return (weighted + harmonic) / 2
