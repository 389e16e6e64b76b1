"""Move-by-move commentary from engine facts: what a move did, what the engine thinks of it.

`move_facts` gathers the facts of one move (python-chess for the board, the engine's
evaluations before and after it, the same judgment code as the analysis); `template_line`
turns them into one sentence. The line is deterministic (its wording is chosen by a seed made
of the game id and the ply) and built only from those facts, so it never says more than the
engine and the board say.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import chess

from kibitz.domain.judgment import Judgment, Score, judge_move, win_percent
from kibitz.domain.openings import opening_at

PIECE_NAMES = {
    chess.PAWN: "pawn",
    chess.KNIGHT: "knight",
    chess.BISHOP: "bishop",
    chess.ROOK: "rook",
    chess.QUEEN: "queen",
    chess.KING: "king",
}
VALUES = {chess.PAWN: 1, chess.KNIGHT: 3, chess.BISHOP: 3, chess.ROOK: 5, chess.QUEEN: 9}


@dataclass(frozen=True)
class MoveFacts:
    game_id: str
    ply: int
    san: str
    uci: str
    mover: str  # "White" | "Black"
    mover_name: str  # the player's name, or the colour when unknown
    opponent_name: str
    before: Score | None  # White's side, in the position before the move
    after: Score | None  # White's side, after it (None: the game is over)
    best_san: str | None  # the engine's move before, when it is not the move played
    judgment: str | None = None  # Inaccuracy | Mistake | Blunder
    mate_sequence: str | None = None  # Lichess's wording when a mate was created or lost
    capture: str | None = None  # the piece taken
    check: bool = False
    castles: str | None = None  # kingside | queenside
    promotion: str | None = None
    threats: tuple[str, ...] = ()  # e.g. "the queen on d8"
    opening: str | None = None  # the opening this move reaches, when it names one
    game_over: str | None = None  # checkmate | stalemate | insufficient material
    mover_clock: int | None = None  # seconds left after the move
    initial_clock: int | None = None
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def move_label(self) -> str:
        number = (self.ply + 1) // 2
        return f"{number}.{'' if self.mover == 'White' else '..'} {self.san}"

    def as_prompt(self) -> dict[str, object]:
        """The facts an LLM gets: everything it may say, nothing it has to guess."""
        out: dict[str, object] = {
            "move": self.move_label,
            "mover": f"{self.mover_name} ({self.mover})",
            "opponent": self.opponent_name,
            "evaluation_after": describe_score(self.after) if self.after else self.game_over,
            "evaluation_before": describe_score(self.before) if self.before else None,
        }
        for name in ("judgment", "best_san", "capture", "castles", "promotion", "opening"):
            value = getattr(self, name)
            if value:
                out[name] = value
        if self.check:
            out["check"] = True
        if self.threats:
            out["threatens"] = list(self.threats)
        if self.mate_sequence:
            out["mate"] = self.mate_sequence
        if self.mover_clock is not None:
            out["seconds_left"] = self.mover_clock
        return out


def move_facts(
    game_id: str,
    ply: int,
    board_before: chess.Board,
    move: chess.Move,
    before: Score | None,
    after: Score | None,
    best_uci: str | None,
    *,
    white_name: str | None = None,
    black_name: str | None = None,
    mover_clock: int | None = None,
    initial_clock: int | None = None,
) -> MoveFacts:
    """The facts of `move`, the game's ply `ply`, played in `board_before`: the engine's
    scores (White's side) before and after it, and its best move before it."""
    white_moved = board_before.turn == chess.WHITE
    mover = "White" if white_moved else "Black"
    names = {"White": white_name or "White", "Black": black_name or "Black"}
    opponent = "Black" if white_moved else "White"
    san = board_before.san(move)
    captured = _captured(board_before, move)
    castles = None
    if board_before.is_castling(move):
        castles = "kingside" if board_before.is_kingside_castling(move) else "queenside"
    after_board = board_before.copy(stack=False)
    after_board.push(move)
    game_over = None
    if after_board.is_checkmate():
        game_over = "checkmate"
    elif after_board.is_stalemate():
        game_over = "stalemate"
    elif after_board.is_insufficient_material():
        game_over = "insufficient material"
    judged = None
    if before is not None and after is not None:
        judged = judge_move(before, after, white_moved)
    best_san = None
    if best_uci and best_uci != move.uci():
        best = chess.Move.from_uci(best_uci)
        if best in board_before.legal_moves:
            best_san = board_before.san(best)
    return MoveFacts(
        game_id=game_id,
        ply=ply,
        san=san,
        uci=move.uci(),
        mover=mover,
        mover_name=names[mover],
        opponent_name=names[opponent],
        before=before,
        after=after,
        best_san=best_san,
        judgment=str(judged.judgment) if judged else None,
        mate_sequence=judged.mate_sequence if judged else None,
        capture=PIECE_NAMES[captured] if captured else None,
        check=after_board.is_check(),
        castles=castles,
        promotion=PIECE_NAMES[move.promotion] if move.promotion else None,
        threats=_threats(after_board, move.to_square),
        opening=opening_at(after_board),
        game_over=game_over,
        mover_clock=mover_clock,
        initial_clock=initial_clock,
    )


def _captured(board: chess.Board, move: chess.Move) -> chess.PieceType | None:
    if board.is_en_passant(move):
        return chess.PAWN
    piece = board.piece_at(move.to_square)
    if piece is not None and piece.color != board.turn:
        return piece.piece_type
    return None


def _threats(board: chess.Board, square: chess.Square) -> tuple[str, ...]:
    """Enemy pieces the moved piece now attacks that are worth more than it or undefended."""
    piece = board.piece_at(square)
    if piece is None:
        return ()
    out = []
    for target in board.attacks(square):
        victim = board.piece_at(target)
        if victim is None or victim.color == piece.color or victim.piece_type == chess.KING:
            continue
        worth_more = VALUES.get(victim.piece_type, 0) > VALUES.get(piece.piece_type, 0)
        undefended = not board.is_attacked_by(victim.color, target)
        if worth_more or (undefended and victim.piece_type != chess.PAWN):
            out.append(f"the {PIECE_NAMES[victim.piece_type]} on {chess.square_name(target)}")
    return tuple(out)


# --- words ---------------------------------------------------------------------------------


def describe_score(score: Score) -> str:
    """An evaluation in plain words, from the engine's score (White's side) turned into
    White's winning percentage with Lichess's curve."""
    if score.mate is not None:
        side = "White" if score.mate > 0 else "Black"
        n = abs(score.mate)
        return f"{side} mates in {n}" if n > 1 else f"{side} mates next move"
    percent = win_percent(score.forced_cp())
    for bound, words in (
        (80, "White is winning"),  # about +3.8 pawns and more
        (65, "White is clearly better"),  # from about +1.6
        (55, "White is slightly better"),  # from about +0.5
        (45, "the position is balanced"),
        (35, "Black is slightly better"),
        (20, "Black is clearly better"),
    ):
        if percent >= bound:
            return words
    return "Black is winning"


def _mover_percent(score: Score, mover: str) -> float:
    percent = win_percent(score.forced_cp())
    return percent if mover == "White" else 100 - percent


def _seeded(facts: MoveFacts) -> random.Random:
    digest = hashlib.sha256(f"{facts.game_id}:{facts.ply}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def template_line(facts: MoveFacts) -> str:
    """One sentence on the move, from its facts alone."""
    rng = _seeded(facts)
    who, move = facts.mover_name, facts.move_label
    parts: list[str] = []

    if facts.game_over == "checkmate":
        return rng.choice(
            [
                f"{move}: checkmate! {who} wins the game.",
                f"{move} is mate. {who} finishes it off.",
            ]
        )
    if facts.game_over:
        return f"{move}: {facts.game_over}, and the game is drawn."

    parts.append(_action(facts, rng))
    verdict = _verdict(facts, rng)
    if verdict:
        parts.append(verdict)
    elif facts.threats and facts.judgment is None:
        targets = " and ".join(facts.threats[:2])
        verb = "forks" if len(facts.threats) > 1 else "attacks"
        parts.append(f"It {verb} {targets}.")
    if facts.opening and facts.ply <= 20:
        parts.append(
            rng.choice([f"This is the {facts.opening}.", f"We are in the {facts.opening}."])
        )
    if facts.after is not None:
        parts.append(_evaluation(facts, rng))
    clock = _time_trouble(facts)
    if clock:
        parts.append(clock)
    return " ".join(p for p in parts if p)


def _action(facts: MoveFacts, rng: random.Random) -> str:
    who, move = facts.mover_name, facts.move_label
    check = " with check" if facts.check else ""
    if facts.castles:
        return rng.choice(
            [
                f"{who} castles {facts.castles} ({move}){check}.",
                f"{move}: {who} tucks the king away {facts.castles}{check}.",
            ]
        )
    if facts.promotion:
        return f"{move}: {who} promotes to a {facts.promotion}{check}!"
    if facts.capture:
        return rng.choice(
            [
                f"{move}: {who} takes the {facts.capture}{check}.",
                f"{who} captures a {facts.capture} with {facts.san}.",  # the SAN shows a check
            ]
        )
    if facts.check:
        return rng.choice([f"{move}, check from {who}.", f"{who} gives check with {move}."])
    if facts.ply == 1:
        return f"{who} opens with {move}."
    return rng.choice([f"{who} plays {move}.", f"{move} from {who}.", f"{who} answers {move}."])


def _verdict(facts: MoveFacts, rng: random.Random) -> str:
    better = facts.best_san
    if facts.mate_sequence and facts.judgment:
        if facts.mate_sequence.startswith("Lost"):
            tail = f" {better} kept the mating attack." if better else ""
            return f"A {facts.judgment.lower()}: it lets a forced mate slip.{tail}"
        tail = f" {better} was the way to avoid it." if better else ""
        return f"A {facts.judgment.lower()}: checkmate is now unavoidable.{tail}"
    if facts.judgment == Judgment.BLUNDER:
        missed = _missed_win(facts)
        lead = "That is a blunder" + (", and it throws away a winning position" if missed else "")
        if not better:
            return f"{lead}: the engine wanted something else."
        return rng.choice(
            [f"{lead}: {better} was much stronger.", f"{lead}! {better} was the move."]
        )
    if facts.judgment == Judgment.MISTAKE:
        best = f"{better} was better" if better else "there was better"
        return rng.choice([f"A mistake; {best}.", f"That is a mistake: {best}."])
    if facts.judgment == Judgment.INACCURACY:
        best = f"{better} was more precise" if better else "there was a more precise move"
        return f"An inaccuracy: {best}."
    if facts.best_san is None and facts.before is not None and facts.ply > 8:
        return rng.choice(["The engine's first choice.", "Exactly what the engine wanted."])
    return ""


def _missed_win(facts: MoveFacts) -> bool:
    if facts.before is None or facts.after is None:
        return False
    return (
        _mover_percent(facts.before, facts.mover) >= 80
        and _mover_percent(facts.after, facts.mover) < 60
    )


def _evaluation(facts: MoveFacts, rng: random.Random) -> str:
    assert facts.after is not None
    words = describe_score(facts.after)
    if facts.before is not None:
        shift = _mover_percent(facts.after, facts.mover) - _mover_percent(facts.before, facts.mover)
        if shift >= 15:
            return rng.choice([f"A big improvement: {words}.", f"The tide turns: {words}."])
        if shift <= -15:
            return f"Now {words}."
    return rng.choice([f"The engine says {words}.", f"{words[0].upper()}{words[1:]}."])


def _time_trouble(facts: MoveFacts) -> str:
    left = facts.mover_clock
    if left is None:
        return ""
    limit = max(10, (facts.initial_clock or 200) // 10)
    if left > limit:
        return ""
    return f"{facts.mover_name} is short of time: {left} s left."


@dataclass(frozen=True)
class Comment:
    text: str
    commentator: str  # engine | llm
    fallback: str | None = None  # why the LLM's line was not used, when one was configured


class TemplateCommentator:
    """The default commentator: engine-grounded templates, deterministic."""

    name = "engine"

    async def comment(self, facts: MoveFacts) -> Comment:
        return Comment(template_line(facts), self.name)
