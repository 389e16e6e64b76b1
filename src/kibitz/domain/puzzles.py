"""Puzzles from a player's own games: where one starts, whether its solution is unique, what it
is about and how hard it looks.

The criteria are those of Lichess's puzzle generator (facts read in `ornicar/lichess-puzzler`,
`generator/generator.py` version 49 and `generator/util.py`; no code copied):

- win chances of a score, from the side to move's point of view: a mate counts ±1, centipawns
  go through the same curve as lila's (`2 / (1 + exp(-0.00368208 · cp)) - 1`).
- a candidate is the position right after a move by the side that goes on to lose ("the
  blunder"), seen by the side to move (the solver): not when the solver is already up in
  material; not when the solver was already winning by more than 300 cp before it (unless a
  mate in fewer than 15 is on now); a mate in fewer than 15 makes a mate puzzle; otherwise an
  advantage puzzle when the score is at least +200 cp and the win chances rose by more than
  0.6, and the score is at least +400 cp unless the solver is down in material.
- a solver's move is the only good one ("valid attack") when there is no second move, or the
  best mates in one and the best non-mating move keeps at most 0.6 win chances, or the best
  move's win chances exceed the second's by more than ATTACK_GAP (see there: 0.6, measured
  against the Lichess puzzle database, where version 49 says 0.7).
- a mate line: every solver move is the only good one and still mates in fewer than 15; the
  defender plays the engine's best reply. An advantage line: each position must still be worth
  at least +200 cp to the solver (else no puzzle); it ends at the first solver move that is not
  unique, is cut back to end on a solver move that had an alternative, and one-move advantage
  puzzles are discarded.

Lichess keeps two-move puzzles and mates in one only for its highest tier of games; kibitz
uses a player's own games, at any level, and keeps them (that tier's rules). Lichess also
skips positions whose castling rights a FEN could not tell apart from their history; kibitz's
puzzles start from the game's own FEN, so it does not need to.

The engine is a parameter (`Search`): the domain stays pure, the service passes its pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import chess

from kibitz.domain.commentary import VALUES
from kibitz.domain.judgment import Score, winning_chances

# Bump when the criteria change: games are scanned again. 2: a game from a position is judged
# from that position's score; the only-move margin is 0.6.
GENERATOR_VERSION = 2

MATE_SOON = 15  # a mate in fewer moves than this makes a mate puzzle
ALREADY_WINNING_CP = 300
MIN_ADVANTAGE_CP = 200
CLEAR_ADVANTAGE_CP = 400
START_GAIN = 0.6  # win chances the blunder must hand the solver
# Win chances between the only move and the second best. lichess-puzzler asks for 0.7 today
# (version 49); most puzzles of its database were cut by earlier versions, which asked for 0.64
# on lila's curve of the time (multiplier 0.004, before lila PR 11148): about 0.6 on today's.
# Measured on 166 real database puzzles (bench/puzzles_recall.py, bench/RESULTS.md), 0.6
# finds more of them with the same line than 0.7, at any node budget; lichess-puzzler's own
# "not a puzzle" positions (generator/test.py) are still rejected.
ATTACK_GAP = 0.6
MATE_IN_ONE_OTHER_MAX = 0.6  # win chances the best non-mating move may keep
INITIAL_SCORE_CP = 20  # the score assumed before the first move
MAX_LINE = 24  # plies: a longer line is not a puzzle anyone solves


@dataclass(frozen=True)
class Line:
    """One line of a MultiPV search: its first move and its score (White's side)."""

    uci: str
    score: Score


# (board, number of lines) → the engine's best lines, best first; [] when the game is over.
Search = Callable[[chess.Board, int], Awaitable[list[Line]]]


def pov(score: Score, color: chess.Color) -> Score:
    """`score` (White's side) from `color`'s point of view."""
    return score if color == chess.WHITE else score.invert()


def win_chances(score: Score) -> float:
    """Win chances on [-1, 1] of a score from the side it is seen by (mate: ±1)."""
    if score.mate is not None:
        return 1.0 if score.mate > 0 else -1.0
    return winning_chances(score.cp or 0)


def at_least_cp(score: Score, cp: int) -> bool:
    """Is `score` (one side's point of view) worth at least `cp` centipawns? Mates count as
    more than any centipawn score when they are for this side, less when against."""
    if score.mate is not None:
        return score.mate > 0
    return (score.cp or 0) >= cp


def mates_soon(score: Score) -> bool:
    """A forced mate in fewer than MATE_SOON moves for the side the score is seen by."""
    return score.mate is not None and 0 < score.mate < MATE_SOON


def material(board: chess.Board, color: chess.Color) -> int:
    return sum(len(board.pieces(piece, color)) * value for piece, value in VALUES.items())


def material_diff(board: chess.Board, color: chess.Color) -> int:
    return material(board, color) - material(board, not color)


@dataclass(frozen=True)
class Candidate:
    """A position worth searching: the ply of the blunder and the kind of puzzle expected."""

    ply: int  # 1-based ply of the move that created the chance
    kind: str  # mate | advantage


def find_candidates(
    board: chess.Board,
    moves_uci: Sequence[str],
    scores_after: Sequence[Score | None],
    start: Score | None = None,
) -> list[Candidate]:
    """The plies after which the side to move has a chance worth a puzzle, by Lichess's
    starting criteria. `board` is the game's initial position; `scores_after[i]` the score
    (White's side) after move i + 1, None where unknown or the game is over; `start` the
    initial position's score (White's side) when it was searched: a game that starts from a
    position (a FEN setup) can then have its very first move judged. Without it the score
    before the first move is assumed, as lichess-puzzler does for games from the start."""
    board = board.copy(stack=False)
    found: list[Candidate] = []
    # What the position before each move is worth to the side that answers it (the solver).
    previous = Score(cp=INITIAL_SCORE_CP) if start is None else pov(start, not board.turn)
    for index, uci in enumerate(moves_uci):
        board.push(chess.Move.from_uci(uci))
        if index >= len(scores_after):
            break
        white_score = scores_after[index]
        if white_score is None:
            previous = Score(cp=0)
            continue
        solver = board.turn
        score = pov(white_score, solver)
        kind = _candidate_kind(board, solver, previous, score)
        if kind is not None:
            found.append(Candidate(index + 1, kind))
        previous = score.invert()  # what the position is worth to the side to move next
    return found


def _candidate_kind(
    board: chess.Board, solver: chess.Color, previous: Score, score: Score
) -> str | None:
    if board.legal_moves.count() < 2:
        return None
    if at_least_cp(previous, ALREADY_WINNING_CP + 1) and not mates_soon(score):
        return None  # the solver was winning already
    if material_diff(board, solver) > 0:
        return None  # already up in material: taking it back is no puzzle
    if mates_soon(score):
        return "mate"
    if at_least_cp(score, MIN_ADVANTAGE_CP) and win_chances(score) > (
        win_chances(previous) + START_GAIN
    ):
        if not at_least_cp(score, CLEAR_ADVANTAGE_CP) and material_diff(board, solver) > -1:
            return None  # not clearly winning, and not from being down in material
        return "advantage"
    return None


@dataclass(frozen=True)
class Verdict:
    """A search's outcome: the solution (UCI moves from the position after the blunder,
    starting and ending with the solver's move), or why there is no puzzle."""

    moves: tuple[str, ...] = ()
    rejected: str | None = None
    searches: int = 0
    final_score: Score | None = None  # the solver's point of view, at the end of the line

    @property
    def ok(self) -> bool:
        return self.rejected is None and bool(self.moves)


@dataclass
class _Counter:
    search: Search
    calls: int = 0

    async def __call__(self, board: chess.Board, lines: int) -> list[Line]:
        self.calls += 1
        return await self.search(board, lines)


async def is_only_move(board: chess.Board, lines: list[Line], search: Search) -> bool:
    """Is the best line the only good move for the side to move (Lichess's valid attack)?"""
    solver = board.turn
    if len(lines) < 2:
        return True
    best, second = pov(lines[0].score, solver), pov(lines[1].score, solver)
    if best.mate == 1:
        if win_chances(second) <= MATE_IN_ONE_OTHER_MAX:
            return True
        if second.mate == 1:
            # Several mates in one (any of them solves it): the best move that does not mate
            # must be bad enough.
            mates = _count_mates_in_one(board)
            every = await search(board, mates + 1)
            other = pov(every[-1].score, solver)
            return not (other.mate != 1 and win_chances(other) > MATE_IN_ONE_OTHER_MAX)
        return False
    return win_chances(best) > win_chances(second) + ATTACK_GAP


def _count_mates_in_one(board: chess.Board) -> int:
    count = 0
    for move in board.legal_moves:
        board.push(move)
        count += board.is_checkmate()
        board.pop()
    return count


async def solve(board: chess.Board, kind: str, search: Search) -> Verdict:
    """Search the solution from `board` (after the blunder; the solver to move)."""
    counted = _Counter(search)
    board = board.copy()
    if kind == "mate":
        verdict = await _mate_line(board, counted)
    else:
        verdict = await _advantage_line(board, counted)
    return Verdict(verdict.moves, verdict.rejected, counted.calls, verdict.final_score)


async def _mate_line(board: chess.Board, search: Search) -> Verdict:
    solver = board.turn
    moves: list[str] = []
    while not board.is_game_over(claim_draw=False):
        if len(moves) >= MAX_LINE:
            return Verdict(rejected="the mate is too long")
        lines = await search(board, 2 if board.turn == solver else 1)
        if not lines:
            return Verdict(rejected="the engine gave no move")
        if board.turn == solver:
            if not await is_only_move(board, lines, search):
                return Verdict(rejected=f"more than one good move after {len(moves)} plies")
            if not mates_soon(pov(lines[0].score, solver)):
                return Verdict(rejected="no forced mate found at this search budget")
        moves.append(lines[0].uci)
        board.push(chess.Move.from_uci(lines[0].uci))
    if not board.is_checkmate() or board.turn == solver:
        return Verdict(rejected="the line does not end in the solver's mate")
    return Verdict(tuple(moves), final_score=Score(mate=1))


@dataclass
class _Step:
    uci: str
    best: Score  # solver's point of view
    has_second: bool


async def _advantage_line(board: chess.Board, search: Search) -> Verdict:
    solver = board.turn
    steps: list[_Step] = []
    while not board.is_game_over(claim_draw=False) and len(steps) < MAX_LINE:
        if board.is_repetition(2):
            return Verdict(rejected="the line repeats")
        lines = await search(board, 2)
        if not lines:
            break
        if board.turn == solver and not await is_only_move(board, lines, search):
            break  # the line ends where the solver's move stops being the only one
        best = pov(lines[0].score, solver)
        if not at_least_cp(best, MIN_ADVANTAGE_CP):
            return Verdict(rejected="not winning enough")
        steps.append(_Step(lines[0].uci, best, len(lines) > 1))
        board.push(chess.Move.from_uci(lines[0].uci))
    while steps and (len(steps) % 2 == 0 or not steps[-1].has_second):
        steps.pop()  # end on a solver move that had an alternative
    if not steps:
        return Verdict(rejected="no solver move is the only good one")
    if len(steps) == 1:
        return Verdict(rejected="a one-move puzzle")
    return Verdict(tuple(s.uci for s in steps), final_score=steps[-1].best)


# --- themes ---------------------------------------------------------------------------------


@dataclass
class _Replay:
    """The solution played out: the board before each move, and the solver's colour."""

    start: chess.Board
    moves: list[chess.Move]
    boards: list[chess.Board] = field(default_factory=list)

    def __post_init__(self) -> None:
        board = self.start.copy(stack=False)
        for move in self.moves:
            self.boards.append(board.copy(stack=False))
            board.push(move)
        self.end = board

    @property
    def solver(self) -> chess.Color:
        return self.start.turn

    def solver_moves(self) -> list[tuple[chess.Board, chess.Move]]:
        return [
            (b, m) for b, m in zip(self.boards, self.moves, strict=True) if b.turn == self.solver
        ]


def themes(board: chess.Board, solution_uci: Sequence[str], kind: str) -> list[str]:
    """The puzzle's themes, recognised with python-chess on the solution's positions; names
    as Lichess's puzzle themes. `board` is the position after the blunder."""
    replay = _Replay(board, [chess.Move.from_uci(u) for u in solution_uci])
    found: list[str] = []
    solver_moves = len(replay.solver_moves())
    if kind == "mate" and replay.end.is_checkmate():
        found.append("mate")
        found.append(f"mateIn{solver_moves}" if solver_moves <= 5 else "mateIn5OrMore")
        if _back_rank_mate(replay.end):
            found.append("backRankMate")
    else:
        found.append("advantage")
        gain = material_diff(replay.end, replay.solver) - material_diff(board, replay.solver)
        if gain >= 5 or replay.end.is_checkmate():
            found.append("crushing")
    found.append({1: "oneMove", 2: "short", 3: "long"}.get(solver_moves, "veryLong"))
    checks = [name for name, test in _MOTIFS if test(replay)]
    found += checks
    if _is_endgame(board):
        found.append("endgame")
    elif board.fullmove_number <= 12:
        found.append("opening")
    else:
        found.append("middlegame")
    return found


def _back_rank_mate(board: chess.Board) -> bool:
    king = board.king(board.turn)
    if king is None:
        return False
    back = 0 if board.turn == chess.WHITE else 7
    if chess.square_rank(king) != back:
        return False
    forward = 1 if board.turn == chess.WHITE else -1
    for file in range(max(0, chess.square_file(king) - 1), min(7, chess.square_file(king) + 1) + 1):
        square = chess.square(file, back + forward)
        piece = board.piece_at(square)
        if piece is None or piece.color != board.turn:
            if not board.is_attacked_by(not board.turn, square):
                return False
    return any(chess.square_rank(s) == back for s in board.checkers())


def _is_endgame(board: chess.Board) -> bool:
    pieces = sum(
        len(board.pieces(piece, color))
        for piece in (chess.KNIGHT, chess.BISHOP, chess.ROOK, chess.QUEEN)
        for color in chess.COLORS
    )
    return pieces <= 4 or (
        not board.pieces(chess.QUEEN, chess.WHITE)
        and not board.pieces(chess.QUEEN, chess.BLACK)
        and pieces <= 6
    )


def _value(piece: chess.Piece | None) -> int:
    if piece is None:
        return 0
    return 100 if piece.piece_type == chess.KING else VALUES[piece.piece_type]


# The tactical themes follow lichess-puzzler's tagger (`tagger/cook.py`, helpers in
# `tagger/util.py`): the same definitions, so a theme means here what it means on Lichess.
_KING_VALUES = {**VALUES, chess.KING: 99}
_RAY_PIECES = (chess.QUEEN, chess.ROOK, chess.BISHOP)


def _defended(board: chess.Board, piece: chess.Piece, square: chess.Square) -> bool:
    """Defended, counting a defender behind an attacking ray piece (an x-ray)."""
    if board.attackers(piece.color, square):
        return True
    for attacker in board.attackers(not piece.color, square):
        attacking = board.piece_at(attacker)
        if attacking is not None and attacking.piece_type in _RAY_PIECES:
            without = board.copy(stack=False)
            without.remove_piece_at(attacker)
            if without.attackers(piece.color, square):
                return True
    return False


def _in_bad_spot(board: chess.Board, square: chess.Square) -> bool:
    """Attacked, and undefended or attacked by something cheaper (a king does not count)."""
    piece = board.piece_at(square)
    if piece is None or not board.attackers(not piece.color, square):
        return False
    if not _defended(board, piece, square):
        return True
    for attacker in board.attackers(not piece.color, square):
        attacking = board.piece_at(attacker)
        if (
            attacking is not None
            and attacking.piece_type != chess.KING
            and VALUES[attacking.piece_type] < VALUES[piece.piece_type]
        ):
            return True
    return False


def loose_pieces(board: chess.Board, color: chess.Color) -> list[chess.Square]:
    """`color`'s pieces (not pawns, not the king) attacked and undefended, or attacked by
    something cheaper."""
    return [
        square
        for square, piece in board.piece_map().items()
        if piece.color == color
        and piece.piece_type not in (chess.PAWN, chess.KING)
        and _in_bad_spot(board, square)
    ]


def _fork(replay: _Replay) -> bool:
    """A solver's move (not the last) by a piece that is not a king and stands safe, which
    then attacks two enemy pieces other than pawns, each worth more than it or undefended (and
    not attacking it back). cook.py `fork`."""
    for before, move in replay.solver_moves()[:-1]:
        after = before.copy(stack=False)
        after.push(move)
        mover = after.piece_at(move.to_square)
        if mover is None or mover.piece_type == chess.KING:
            continue
        if _in_bad_spot(after, move.to_square):
            continue
        attacking_back = after.attackers(not replay.solver, move.to_square)
        targets = 0
        for square in after.attacks(move.to_square):
            target = after.piece_at(square)
            if target is None or target.color == replay.solver or target.piece_type == chess.PAWN:
                continue
            if _KING_VALUES[target.piece_type] > _KING_VALUES[mover.piece_type] or (
                not _defended(after, target, square) and square not in attacking_back
            ):
                targets += 1
        if targets > 1:
            return True
    return False


def _pin(replay: _Replay) -> bool:
    """A solver's move that pins an enemy piece (to its king) which was not pinned before."""
    enemy = not replay.solver
    for before, move in replay.solver_moves():
        after = before.copy(stack=False)
        after.push(move)
        for square in chess.SquareSet(after.occupied_co[enemy]):
            piece = after.piece_at(square)
            if piece is None or piece.piece_type == chess.KING:
                continue
            if after.is_pinned(enemy, square) and not before.is_pinned(enemy, square):
                return True
    return False


def _skewer(replay: _Replay) -> bool:
    """A solver's slider attacks a valuable piece, which moves away, and the solver then takes
    the piece that stood behind it on that line."""
    solver_moves = replay.solver_moves()
    for i, (before, move) in enumerate(solver_moves[:-1]):
        after = before.copy(stack=False)
        after.push(move)
        mover = after.piece_at(move.to_square)
        if mover is None or mover.piece_type not in (chess.BISHOP, chess.ROOK, chess.QUEEN):
            continue
        next_board, next_move = solver_moves[i + 1]
        if not next_board.is_capture(next_move) or next_move.from_square != move.to_square:
            continue
        for square in after.attacks(move.to_square):
            front = after.piece_at(square)
            if front is None or front.color == mover.color:
                continue
            between = chess.SquareSet(chess.between(move.to_square, next_move.to_square))
            behind = after.piece_at(next_move.to_square)
            if square in between and behind is not None and _value(front) > _value(behind):
                return True
    return False


def _discovered_attack(replay: _Replay) -> bool:
    """A discovered check, or a capture by a solver's piece along a line its previous move
    opened (not a recapture on the square the opponent just moved to, not through castling).
    cook.py `discovered_attack`."""
    for before, move in replay.solver_moves():
        after = before.copy(stack=False)
        after.push(move)
        checkers = after.checkers()
        if checkers and move.to_square not in checkers:
            return True
    moves = replay.moves
    for i in range(2, len(moves), 2):  # the solver's moves after the first
        before, move = replay.boards[i], moves[i]
        if not before.is_capture(move):
            continue
        if moves[i - 1].to_square == move.to_square:
            return False  # a recapture
        opened = moves[i - 2]
        between = chess.SquareSet.between(move.from_square, move.to_square)
        if (
            opened.from_square in between
            and move.to_square != opened.to_square
            and move.from_square != opened.to_square
            and not replay.boards[i - 2].is_castling(opened)
        ):
            return True
    return False


def _hanging_piece(replay: _Replay) -> bool:
    """The first move takes a piece that nothing defended."""
    before, move = replay.solver_moves()[0]
    if not before.is_capture(move) or before.is_en_passant(move):
        return False
    target = before.piece_at(move.to_square)
    if target is None or target.piece_type == chess.PAWN:
        return False
    board = before.copy(stack=False)
    board.remove_piece_at(move.from_square)
    return not board.is_attacked_by(target.color, move.to_square)


def _promotion(replay: _Replay) -> bool:
    return any(m.promotion for _, m in replay.solver_moves())


def _sacrifice(replay: _Replay) -> bool:
    """At some point of the line, after the defender's reply, the solver has less material
    than at the start (it gave something up to win more)."""
    start = material_diff(replay.start, replay.solver)
    board = replay.start.copy(stack=False)
    for i, move in enumerate(replay.moves):
        board.push(move)
        if i % 2 == 1 and material_diff(board, replay.solver) <= start - 2:
            return True
    return False


_MOTIFS: tuple[tuple[str, Callable[[_Replay], bool]], ...] = (
    ("fork", _fork),
    ("pin", _pin),
    ("skewer", _skewer),
    ("discoveredAttack", _discovered_attack),
    ("hangingPiece", _hanging_piece),
    ("promotion", _promotion),
    ("sacrifice", _sacrifice),
)

THEMES = (
    "mate",
    "mateIn1",
    "mateIn2",
    "mateIn3",
    "mateIn4",
    "mateIn5",
    "mateIn5OrMore",
    "backRankMate",
    "advantage",
    "crushing",
    "oneMove",
    "short",
    "long",
    "veryLong",
    *(name for name, _ in _MOTIFS),
    "opening",
    "middlegame",
    "endgame",
)


def difficulty(board: chess.Board, solution_uci: Sequence[str], found_themes: Sequence[str]) -> int:
    """An estimated puzzle rating (Glicko-like scale, 600-2800) before anyone has played it:
    longer lines, quiet first moves, sacrifices and many legal replies make a puzzle harder.
    Lichess rates its puzzles from players' results; this is only the starting estimate."""
    solver_moves = (len(solution_uci) + 1) // 2
    first = chess.Move.from_uci(solution_uci[0])
    quiet = not board.is_capture(first) and not board.gives_check(first)
    rating = 900 + 250 * (solver_moves - 1)
    rating += 250 if quiet else 0
    rating += 200 if "sacrifice" in found_themes else 0
    rating += min(200, 5 * max(0, board.legal_moves.count() - 20))
    rating -= 150 if "hangingPiece" in found_themes else 0
    return max(600, min(2800, rating))


def is_solution_move(
    board: chess.Board, move: chess.Move, expected: chess.Move, last: bool
) -> bool:
    """Does `move` solve this step? The expected move does; on the last move any mate does
    too (as in Lichess's trainer: a checkmate always wins)."""
    if move == expected:
        return True
    if last:
        board = board.copy(stack=False)
        board.push(move)
        return board.is_checkmate()
    return False
