"""Analysis plugins: pure functions from a game and its per-ply evaluations to a result.

A plugin has a name, a version and what it needs; the analysis service stores one result per
game, plugin and version, and re-runs a plugin only when its version's result is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import chess

from kibitz.domain.judgment import (
    CP_CEILING,
    CP_INITIAL,
    MoveJudgment,
    Score,
    judge_move,
    side_accuracy,
    weighted_move_accuracies,
    winning_chances,
)


@dataclass(frozen=True)
class PlyEval:
    """The evaluation after one ply, and the engine's choice in the position before it."""

    score: Score | None  # White's side; None for a finished position (mate, stalemate)
    best_uci: str | None = None  # the best move in the position before this ply
    line_san: str | None = None  # the best line from the position before this ply, in SAN
    # Whether a better line than the move played exists; None: it does when best_uci is known
    # and differs from the move played. Evals from a PGN's [%eval] comments do not say.
    better_line: bool | None = None


@dataclass(frozen=True)
class GameInput:
    """What a plugin sees of a game: its moves, clocks and one evaluation per ply."""

    moves_uci: Sequence[str]
    moves_san: Sequence[str]
    evals: Sequence[PlyEval]
    initial_fen: str | None = None
    clocks_cs: Sequence[int] | None = None  # remaining clock after each ply, centiseconds
    clock_initial: int | None = None  # seconds
    clock_increment: int | None = None
    result: str = "*"

    @property
    def white_starts(self) -> bool:
        return self.initial_fen is None or chess.Board(self.initial_fen).turn == chess.WHITE

    def white_moved(self, ply_index: int) -> bool:
        """Whether White played the move at `ply_index` (0-based)."""
        return (ply_index % 2 == 0) == self.white_starts

    def boards(self) -> list[chess.Board]:
        """The position before the first move and after every ply."""
        board = chess.Board(self.initial_fen) if self.initial_fen else chess.Board()
        out = [board.copy(stack=False)]
        for uci in self.moves_uci:
            board.push_uci(uci)
            out.append(board.copy(stack=False))
        return out


class Plugin(Protocol):
    name: str
    version: int
    needs: frozenset[str]  # "evals", "clocks"

    def run(self, game: GameInput) -> dict[str, Any]: ...


def _side(white: bool) -> str:
    return "white" if white else "black"


def _final_score(game: GameInput, i: int) -> Score:
    """A score for every ply, a finished position included: a mate counts for the mover."""
    ev = game.evals[i].score
    if ev is not None:
        return ev
    if game.result in ("1-0", "0-1"):
        return Score(cp=CP_CEILING if game.result == "1-0" else -CP_CEILING)
    if i > 0 and game.evals[i - 1].score is not None:
        previous = game.evals[i - 1].score
        assert previous is not None
        return previous
    return Score(cp=0)


def _has_variation(game: GameInput, i: int) -> bool:
    """Lichess judges a move only when its analysis has a better line, i.e. the move played
    was not the engine's best (lila `Analysis.infoAdvices`: `info.hasVariation`)."""
    ev = game.evals[i]
    if ev.better_line is not None:
        return ev.better_line
    return ev.best_uci is not None and ev.best_uci != game.moves_uci[i]


def judge_game(game: GameInput) -> list[MoveJudgment | None]:
    """Lichess's judgment for every ply (None where it gives none)."""
    out: list[MoveJudgment | None] = []
    previous: Score | None = Score(cp=CP_INITIAL)
    for i, ev in enumerate(game.evals):
        judged = None
        if previous is not None and ev.score is not None and _has_variation(game, i):
            judged = judge_move(previous, ev.score, game.white_moved(i))
        out.append(judged)
        previous = ev.score
    return out


def acpl(game: GameInput, white: bool) -> int | None:
    """Average centipawn loss as Lichess computes it (lila `AccuracyCP.diffsList` / `mean`):
    evals forced to centipawns and capped at ±1000, losses below zero count as zero."""
    scores: list[Score | None] = [e.score for e in game.evals]
    sequence = [Score(cp=CP_INITIAL), *scores] if white == game.white_starts else scores
    losses = []
    for a in range(0, len(sequence) - 1, 2):
        s1, s2 = sequence[a], sequence[a + 1]
        if s1 is None or s2 is None:
            continue
        c1 = max(-CP_CEILING, min(CP_CEILING, s1.forced_cp()))
        c2 = max(-CP_CEILING, min(CP_CEILING, s2.forced_cp()))
        losses.append(max(0, (c2 - c1) * (-1 if white else 1)))
    if not losses:
        return None
    return round(sum(losses) / len(losses))


@dataclass
class JudgmentsPlugin:
    """Inaccuracies, mistakes and blunders, ACPL and accuracy per side, as Lichess has them."""

    name: str = "judgments"
    version: int = 1
    needs: frozenset[str] = field(default_factory=lambda: frozenset({"evals"}))

    def run(self, game: GameInput) -> dict[str, Any]:
        from kibitz.domain.judgment import game_accuracy

        judgments = judge_game(game)
        moves = []
        sides: dict[str, dict[str, Any]] = {
            s: {"inaccuracy": 0, "mistake": 0, "blunder": 0} for s in ("white", "black")
        }
        for i, judged in enumerate(judgments):
            if judged is None:
                continue
            ev = game.evals[i]
            best_san = (ev.line_san or "").split(" ")[0] or None
            text = judged.mate_sequence or judged.judgment.value
            comment = f"{text}." + (f" {best_san} was best." if best_san else "")
            moves.append(
                {
                    "ply": i + 1,
                    "san": game.moves_san[i],
                    "judgment": judged.judgment.value,
                    "comment": comment,
                    "best": best_san,
                    "line": ev.line_san,
                }
            )
            sides[_side(game.white_moved(i))][judged.judgment.value.lower()] += 1
        white_acc, black_acc = game_accuracy(
            [_final_score(game, i) for i in range(len(game.evals))], game.white_starts
        )
        for side, accuracy in (("white", white_acc), ("black", black_acc)):
            sides[side]["acpl"] = acpl(game, side == "white")
            sides[side]["accuracy"] = None if accuracy is None else round(accuracy, 2)
        return {"moves": moves, **sides}


@dataclass
class LargestSwingPlugin:
    """The move that changed the winning chances most, who played it, and what was best."""

    name: str = "largest_swing"
    version: int = 1
    needs: frozenset[str] = field(default_factory=lambda: frozenset({"evals"}))

    def run(self, game: GameInput) -> dict[str, Any]:
        best: dict[str, Any] | None = None
        previous = winning_chances(CP_INITIAL)
        for i in range(len(game.evals)):
            chances = winning_chances(_final_score(game, i).forced_cp())
            white = game.white_moved(i)
            loss = (previous - chances) if white else (chances - previous)
            if best is None or loss > best["loss"]:
                ev = game.evals[i]
                alternative = _has_variation(game, i)
                best = {
                    "ply": i + 1,
                    "san": game.moves_san[i],
                    "by": _side(white),
                    "loss": round(loss, 4),
                    "win_percent_before": round(50 + 50 * (previous if white else -previous), 1),
                    "win_percent_after": round(50 + 50 * (chances if white else -chances), 1),
                    "best": (ev.line_san or "").split(" ")[0] or None if alternative else None,
                    "line": ev.line_san if alternative else None,
                }
            previous = chances
        return {"swing": best}


# --- phases (scalachess `core/src/main/scala/Divider.scala`) -------------------------------

_MIXEDNESS_REGIONS = [(0x0303 << (x + 8 * y), y + 1) for y in range(7) for x in range(7)]


def _mixedness_score(y: int, white: int, black: int) -> int:
    table = {
        (0, 0): 0,
        (1, 0): 1 + (8 - y),
        (2, 0): 2 + (y - 2) if y > 2 else 0,
        (3, 0): 3 + (y - 1) if y > 1 else 0,
        (4, 0): 3 + (y - 1) if y > 1 else 0,
        (0, 1): 1 + y,
        (1, 1): 5 + abs(3 - y),
        (2, 1): 4 + y,
        (3, 1): 5 + y,
        (0, 2): 2 + (6 - y) if y < 6 else 0,
        (1, 2): 4 + (6 - y),
        (2, 2): 7,
        (0, 3): 3 + (7 - y) if y < 7 else 0,
        (1, 3): 5 + (6 - y),
        (0, 4): 3 + (7 - y) if y < 7 else 0,
    }
    return table.get((white, black), 0)


def _mixedness(board: chess.Board) -> int:
    white = board.occupied_co[chess.WHITE]
    black = board.occupied_co[chess.BLACK]
    return sum(
        _mixedness_score(y, chess.popcount(white & region), chess.popcount(black & region))
        for region, y in _MIXEDNESS_REGIONS
    )


def _majors_and_minors(board: chess.Board) -> int:
    return chess.popcount(board.occupied & ~(board.kings | board.pawns))


def _backrank_sparse(board: chess.Board) -> bool:
    return (
        chess.popcount(chess.BB_RANK_1 & board.occupied_co[chess.WHITE]) < 4
        or chess.popcount(chess.BB_RANK_8 & board.occupied_co[chess.BLACK]) < 4
    )


def divide(boards: Sequence[chess.Board]) -> tuple[int | None, int | None]:
    """(first middlegame index, first endgame index) of the positions, as Lichess divides."""
    middle = next(
        (
            i
            for i, b in enumerate(boards)
            if _majors_and_minors(b) <= 10 or _backrank_sparse(b) or _mixedness(b) > 150
        ),
        None,
    )
    end = None
    if middle is not None:
        end = next((i for i, b in enumerate(boards) if _majors_and_minors(b) <= 6), None)
    if middle is not None and end is not None and middle >= end:
        middle = None
    return middle, end


@dataclass
class PhasesPlugin:
    """Accuracy per side in the opening, the middlegame and the endgame, by the same method as
    the game's accuracy (lila's weighted and harmonic means, weights from the whole game), so
    the phases and the game agree (issue 17, item 3: a plain mean read 90 % in a middlegame
    of a 42 % game)."""

    name: str = "phases"
    version: int = 2
    needs: frozenset[str] = field(default_factory=lambda: frozenset({"evals"}))

    def run(self, game: GameInput) -> dict[str, Any]:
        middle, end = divide(game.boards())
        weighted = weighted_move_accuracies(
            [_final_score(game, i) for i in range(len(game.evals))], game.white_starts
        )
        plies = len(weighted)
        bounds = {
            "opening": (0, middle if middle is not None else (end if end is not None else plies)),
            "middlegame": (middle, end if end is not None else plies)
            if middle is not None
            else None,
            "endgame": (end, plies) if end is not None else None,
        }
        out: dict[str, Any] = {"middlegame_starts": middle, "endgame_starts": end}
        for phase, span in bounds.items():
            row: dict[str, Any] = {"white": None, "black": None}
            if span is not None:
                for side in ("white", "black"):
                    moves = [
                        (accuracy, weight)
                        for white, accuracy, weight in weighted[span[0] : span[1]]
                        if _side(white) == side
                    ]
                    found = side_accuracy(moves)
                    row[side] = round(found, 1) if found is not None else None
            out[phase] = row
        return out


@dataclass
class TimeUsePlugin:
    """Time per move and the moves played in time trouble, with their judgments."""

    name: str = "time_use"
    version: int = 1
    needs: frozenset[str] = field(default_factory=lambda: frozenset({"evals", "clocks"}))
    trouble_fraction: float = 0.1  # under a tenth of the initial time…
    trouble_floor_cs: int = 1000  # …or under ten seconds

    def run(self, game: GameInput) -> dict[str, Any]:
        clocks = list(game.clocks_cs or [])
        if not clocks or game.clock_initial is None:
            return {"available": False}
        initial_cs = game.clock_initial * 100
        increment_cs = (game.clock_increment or 0) * 100
        threshold = max(self.trouble_floor_cs, int(initial_cs * self.trouble_fraction))
        judgments = judge_game(game)
        out: dict[str, Any] = {"available": True, "threshold_cs": threshold}
        for side in ("white", "black"):
            spent: list[int] = []
            trouble: list[dict[str, Any]] = []
            last = initial_cs
            for i, remaining in enumerate(clocks):
                if _side(game.white_moved(i)) != side:
                    continue
                spent.append(max(0, last - remaining + increment_cs))
                if last < threshold:  # the clock before the move was already low
                    judged = judgments[i] if i < len(judgments) else None
                    trouble.append(
                        {
                            "ply": i + 1,
                            "san": game.moves_san[i],
                            "clock_cs": last,
                            "judgment": judged.judgment.value if judged else None,
                        }
                    )
                last = remaining
            out[side] = {
                "moves": len(spent),
                "average_cs": round(sum(spent) / len(spent)) if spent else None,
                "time_trouble_moves": len(trouble),
                "time_trouble_errors": sum(1 for t in trouble if t["judgment"]),
                "in_time_trouble": trouble,
            }
        return out


BUILTIN_PLUGINS: tuple[Plugin, ...] = (
    JudgmentsPlugin(),
    LargestSwingPlugin(),
    PhasesPlugin(),
    TimeUsePlugin(),
)


def run_plugins(game: GameInput, plugins: Sequence[Plugin] = BUILTIN_PLUGINS) -> dict[str, Any]:
    """Every plugin's result by name (a plugin that needs clocks the game lacks still runs and
    says it has nothing)."""
    return {p.name: p.run(game) for p in plugins}


def evals_from_lichess(analysis: Sequence[dict[str, Any]], plies: int) -> list[PlyEval]:
    """Lichess's per-ply server analysis (`analysis` of its game export) as evaluations; a ply
    it has no entry for (the finished position) gets none."""
    out: list[PlyEval] = []
    for i in range(plies):
        entry = analysis[i] if i < len(analysis) else {}
        score = None
        if "eval" in entry:
            score = Score(cp=int(entry["eval"]))
        elif "mate" in entry:
            score = Score(mate=int(entry["mate"]))
        out.append(
            PlyEval(score=score, best_uci=entry.get("best"), line_san=entry.get("variation"))
        )
    return out


def evals_from_pgn(pgn_evals: Sequence[dict[str, Any] | None], plies: int) -> list[PlyEval]:
    """A PGN's per-ply `[%eval]` comments (as Lichess exports its analysis) as evaluations.
    They carry no best move, so every move is judged on its evals alone."""
    out: list[PlyEval] = []
    for i in range(plies):
        entry = pgn_evals[i] if i < len(pgn_evals) else None
        score = None
        if entry and entry.get("cp") is not None:
            score = Score(cp=int(entry["cp"]))
        elif entry and entry.get("mate"):
            score = Score(mate=int(entry["mate"]))
        out.append(PlyEval(score=score, better_line=True))
    return out


def complete_evals(evals: Sequence[dict[str, Any] | None] | None, plies: int) -> bool:
    """Whether per-ply evals cover the game: every ply but a finished last one."""
    if not evals or plies == 0 or len(evals) < plies - 1:
        return False

    def has_score(entry: dict[str, Any] | None) -> bool:
        if not entry:
            return False
        return (
            entry.get("cp") is not None or entry.get("eval") is not None or bool(entry.get("mate"))
        )

    return all(has_score(e) for e in evals[: plies - 1])
