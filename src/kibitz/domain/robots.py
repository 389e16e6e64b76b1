"""Robot players: three personalities that choose a move, say why, and vote, from the engine's
lines. Pure: the engine's lines come in, a choice and a sentence go out; the randomness is
seeded by the request, so a robot answers the same question the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import chess

from kibitz.domain.commentary import PIECE_NAMES, VALUES


@dataclass(frozen=True)
class Personality:
    name: str  # the id used in events and configuration
    identity: str  # what the person sees
    nodes: int  # engine budget per search
    lines: int  # MultiPV
    tolerance_cp: int  # how far below the best a move it may choose can be


PERSONALITIES: dict[str, Personality] = {
    p.name: p
    for p in (
        Personality("curious_student", "curious student", 20_000, 4, 150),
        Personality("skeptical_scientist", "skeptical scientist", 200_000, 1, 0),
        Personality("creative_artist", "creative artist", 80_000, 4, 60),
    )
}


@dataclass(frozen=True)
class Candidate:
    """A move and its score in centipawns for the side to move (mates as ±10000)."""

    uci: str
    cp: int


def _sound(candidates: list[Candidate], tolerance: int) -> list[Candidate]:
    best = candidates[0].cp
    return [c for c in candidates if c.cp >= best - tolerance]


def _flair(board: chess.Board, move: chess.Move) -> int:
    """How much an artist likes a move: checks, sacrifices, captures of big pieces."""
    score = 0
    if board.gives_check(move):
        score += 3
    target = board.piece_at(move.to_square)
    if target is not None:
        score += 1 + VALUES.get(target.piece_type, 0) // 3
    mover = board.piece_at(move.from_square)
    after = board.copy(stack=False)
    after.push(move)
    if mover is not None and after.is_attacked_by(after.turn, move.to_square):
        score += 2  # offered: a sacrifice, if it is sound (the tolerance says so)
    return score


def choose_move(
    personality: Personality, board: chess.Board, candidates: list[Candidate], seed: str
) -> str:
    """The robot's move among the engine's lines (best first)."""
    sound = _sound(candidates, personality.tolerance_cp)
    if personality.name == "curious_student":
        return random.Random(seed).choice(sound).uci
    if personality.name == "creative_artist":
        ranked = sorted(
            sound, key=lambda c: (-_flair(board, chess.Move.from_uci(c.uci)), -c.cp, c.uci)
        )
        return ranked[0].uci
    return sound[0].uci


def describe(board: chess.Board, move: chess.Move) -> str:
    """What a move does, in a few words."""
    piece = board.piece_at(move.from_square)
    name = PIECE_NAMES[piece.piece_type] if piece else "piece"
    bits = []
    if board.is_castling(move):
        bits.append("tucks the king away")
    target = board.piece_at(move.to_square)
    if target is not None:
        bits.append(f"takes the {PIECE_NAMES[target.piece_type]}")
    if move.promotion:
        bits.append(f"promotes to a {PIECE_NAMES[move.promotion]}")
    if board.gives_check(move):
        bits.append("gives check")
    after = board.copy(stack=False)
    after.push(move)
    mover_value = VALUES.get(piece.piece_type, 0) if piece else 0
    for square in after.attacks(move.to_square):
        hit = after.piece_at(square)
        if hit is None or hit.color == board.turn or hit.piece_type == chess.KING:
            continue
        if VALUES[hit.piece_type] > mover_value:
            bits.append(f"hits the {PIECE_NAMES[hit.piece_type]}")
            break
    if not bits:
        bits.append(f"improves the {name}")
    return " and ".join(bits)


def reason(
    personality: Personality, board: chess.Board, uci: str, candidates: list[Candidate]
) -> str:
    """One line in the robot's voice, true to the engine's view of its move."""
    move = chess.Move.from_uci(uci)
    san = board.san(move)
    what = describe(board, move)
    best = candidates[0]
    mine = next((c for c in candidates if c.uci == uci), None)
    gap = best.cp - mine.cp if mine is not None else None
    if personality.name == "skeptical_scientist":
        score = f"{best.cp / 100:+.1f}" if abs(best.cp) < 10_000 else "a forced mate"
        return f"{san}: it {what}; the evaluation ({score}) leaves the alternatives behind."
    if personality.name == "creative_artist":
        return f"{san}! It {what} — the position asks for imagination."
    hedge = "I think" if gap is not None and gap <= 30 else "maybe"
    return f"{san}, {hedge}: it {what}, and that looks natural to me."


def choose_vote(
    personality: Personality,
    board: chess.Board,
    answers: dict[str, str],
    candidates: list[Candidate],
    seed: str,
) -> str | None:
    """The letter this robot votes for among `answers` (letter → move; its own left out)."""
    if not answers:
        return None
    known = {c.uci: c.cp for c in candidates}
    floor = min(known.values(), default=0) - 100

    def value(letter: str) -> int:
        return known.get(answers[letter], floor)

    letters = sorted(answers)
    best = max(value(letter) for letter in letters)
    if personality.name == "curious_student":
        close = [letter for letter in letters if value(letter) >= best - 100]
        return random.Random(seed).choice(close)
    if personality.name == "creative_artist":
        sound = [letter for letter in letters if value(letter) >= best - 100]
        return max(
            sound,
            key=lambda letter: (
                _flair(board, chess.Move.from_uci(answers[letter]))
                if chess.Move.from_uci(answers[letter]) in board.legal_moves
                else -1,
                value(letter),
                letter,
            ),
        )
    return max(letters, key=lambda letter: (value(letter), letter))
