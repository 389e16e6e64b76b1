"""The puzzle domain: Lichess's starting and uniqueness criteria, themes, the solution check."""

from __future__ import annotations

from typing import Any

import chess
import pytest

from kibitz.domain import puzzles
from kibitz.domain.judgment import Score
from kibitz.domain.puzzles import Candidate, Line

SCHOLAR = ["e2e4", "e7e5", "d1h5", "b8c6", "f1c4", "g8f6", "h5f7"]


async def _no_search(board: chess.Board, lines: int) -> list[Line]:
    raise AssertionError("these lines decide without another search")


def test_win_chances_use_lichess_curve_and_count_mates_as_certain() -> None:
    assert puzzles.win_chances(Score(cp=0)) == 0
    assert puzzles.win_chances(Score(cp=200)) == pytest.approx(0.3524, abs=1e-4)
    assert puzzles.win_chances(Score(cp=-200)) == pytest.approx(-0.3524, abs=1e-4)
    assert puzzles.win_chances(Score(mate=7)) == 1.0
    assert puzzles.win_chances(Score(mate=-2)) == -1.0


def test_a_blunder_allowing_mate_is_a_mate_candidate() -> None:
    scores = [Score(cp=c) for c in (30, 25, 10, 40, 50)] + [Score(mate=1), None]
    assert puzzles.find_candidates(chess.Board(), SCHOLAR, scores) == [Candidate(6, "mate")]


def test_a_swing_to_a_clear_win_is_an_advantage_candidate_unless_already_winning() -> None:
    moves = ["e2e4", "e7e5", "g1f3", "d8g5"]  # 2...Qg5?? hangs the queen to Nxg5
    assert puzzles.find_candidates(
        chess.Board(), moves, [Score(cp=30), Score(cp=40), Score(cp=30), Score(cp=850)]
    ) == [Candidate(4, "advantage")]
    # The same swing when White was winning by more than 300 before: no puzzle.
    assert (
        puzzles.find_candidates(
            chess.Board(), moves, [Score(cp=30), Score(cp=40), Score(cp=350), Score(cp=850)]
        )
        == []
    )
    # Not enough of a swing (+150 → +380, and White is not down in material).
    assert (
        puzzles.find_candidates(
            chess.Board(), moves, [Score(cp=30), Score(cp=40), Score(cp=150), Score(cp=380)]
        )
        == []
    )


def test_a_game_from_a_position_judges_its_first_move_from_that_position_s_score() -> None:
    # Lichess puzzle 000rZ replayed as a game: 13.Nxe6?? allows 13...Qxh2#.
    board = chess.Board("2kr1b1r/p1p2pp1/2pqb3/7p/3N2n1/2NPB3/PPP2PPP/R2Q1RK1 w - - 2 13")
    moves, scores = ["d4e6", "d6h2"], [Score(mate=-1), None]
    # Searched, the start is about level: the first move is a mate candidate.
    level = Score(cp=-60)
    assert puzzles.find_candidates(board, moves, scores, level) == [Candidate(1, "mate")]
    # Black was already winning by more than 300 before the move: no puzzle, as Lichess's
    # "too much of a winning position to start with" (unless a mate is on: it is here).
    winning = Score(cp=-450)
    assert puzzles.find_candidates(board, moves, scores, winning) == [Candidate(1, "mate")]
    # An advantage swing is judged against the searched start, not an assumed one: 1.Qd5??
    # hangs the queen to the pawn. From a level start that is a puzzle for Black; from a
    # start Black was already winning by more than 300, it is not.
    board = chess.Board("4k3/8/4p3/8/8/8/3PP3/3QK3 w - - 0 1")
    moves, scores = ["d1d5", "e6d5"], [Score(cp=-850), Score(cp=-900)]
    assert puzzles.find_candidates(board, moves, scores, Score(cp=10)) == [
        Candidate(1, "advantage")
    ]
    assert puzzles.find_candidates(board, moves, scores, Score(cp=-350)) == []
    assert puzzles.find_candidates(board, moves, scores) == [Candidate(1, "advantage")]


def test_a_player_already_up_in_material_gets_no_puzzle() -> None:
    moves = ["e2e4", "d7d5", "e4d5", "g8f6"]  # White is a pawn up when the swing comes
    scores = [Score(cp=30), Score(cp=60), Score(cp=100), Score(cp=900)]
    assert puzzles.find_candidates(chess.Board(), moves, scores) == []


async def test_the_only_move_needs_a_gap_of_0_6_in_win_chances() -> None:
    board = chess.Board()
    unique = [Line("e2e4", Score(cp=900)), Line("d2d4", Score(cp=50))]
    close = [Line("e2e4", Score(cp=900)), Line("d2d4", Score(cp=700))]
    # +450 against +10: 0.66 apart, enough; +450 against +60: 0.57 apart, not.
    enough = [Line("e2e4", Score(cp=450)), Line("d2d4", Score(cp=10))]
    short = [Line("e2e4", Score(cp=450)), Line("d2d4", Score(cp=60))]
    assert await puzzles.is_only_move(board, enough, _no_search)
    assert not await puzzles.is_only_move(board, short, _no_search)
    assert await puzzles.is_only_move(board, unique, _no_search)
    assert not await puzzles.is_only_move(board, close, _no_search)
    assert await puzzles.is_only_move(board, unique[:1], _no_search)  # a single legal move
    # Seen from Black, the scores (White's side) are turned around.
    black = chess.Board("4k3/8/8/8/8/8/8/4K3 b - - 0 1")
    assert await puzzles.is_only_move(
        black, [Line("e8d7", Score(cp=-900)), Line("e8e7", Score(cp=0))], _no_search
    )


async def test_a_mate_in_one_is_the_only_move_when_nothing_else_keeps_much() -> None:
    board = chess.Board()
    assert await puzzles.is_only_move(
        board, [Line("a1a8", Score(mate=1)), Line("h2h3", Score(cp=100))], _no_search
    )
    assert not await puzzles.is_only_move(
        board, [Line("a1a8", Score(mate=1)), Line("h2h3", Score(cp=800))], _no_search
    )


def test_themes_of_a_knight_fork() -> None:
    board = chess.Board("r3k3/8/8/3N4/8/8/8/4K3 w - - 0 1")
    found = puzzles.themes(board, ["d5c7", "e8d7", "c7a8"], "advantage")
    assert "fork" in found and "short" in found and "endgame" in found
    assert "hangingPiece" not in found


def test_themes_of_a_pin_a_discovered_check_a_hanging_piece_and_a_promotion() -> None:
    pin = chess.Board("4k3/8/2n5/8/8/8/8/3BK3 w - - 0 1")
    assert "pin" in puzzles.themes(pin, ["d1a4", "e8d7", "a4c6"], "advantage")
    discovered = chess.Board("r3k3/8/8/8/4B3/8/8/4RK2 w - - 0 1")
    # Bd5+: the rook gives the check, the bishop moves on to take the rook.
    assert "discoveredAttack" in puzzles.themes(discovered, ["e4d5", "e8f8", "d5a8"], "advantage")
    hanging = chess.Board("4k3/8/8/3q4/8/8/8/3RK3 w - - 0 1")
    assert "hangingPiece" in puzzles.themes(hanging, ["d1d5", "e8e7", "d5d1"], "advantage")
    promotion = chess.Board("8/P7/8/8/8/8/k7/4K3 w - - 0 1")
    assert "promotion" in puzzles.themes(promotion, ["a7a8q"], "advantage")


def test_themes_of_a_back_rank_mate() -> None:
    board = chess.Board("6k1/5ppp/8/8/8/8/5PPP/3R2K1 w - - 0 1")
    found = puzzles.themes(board, ["d1d8"], "mate")
    assert found[:3] == ["mate", "mateIn1", "backRankMate"]
    assert "fork" not in found  # a mate attacks everything; that is no fork


def test_difficulty_grows_with_the_length_and_a_quiet_first_move() -> None:
    board = chess.Board("r3k3/8/8/3N4/8/8/8/4K3 w - - 0 1")
    short = puzzles.difficulty(board, ["d5c7", "e8d7", "c7a8"], ["fork"])
    longer = puzzles.difficulty(board, ["d5c7", "e8d7", "c7a8", "d7c6", "a8b6"], ["fork"])
    assert 600 <= short < longer <= 2800


def test_the_last_move_may_be_any_mate_and_other_moves_must_be_the_solution() -> None:
    board = chess.Board("6k1/5ppp/8/8/8/8/5PPP/R2R2K1 w - - 0 1")
    a8, d8, d7 = (chess.Move.from_uci(u) for u in ("a1a8", "d1d8", "d1d7"))
    assert puzzles.is_solution_move(board, a8, d8, last=True)
    assert not puzzles.is_solution_move(board, a8, d8, last=False)
    assert not puzzles.is_solution_move(board, d7, d8, last=True)


# Positions and verdicts from lichess-puzzler's tagger tests (`tagger/test.py`, ornicar/
# lichess-puzzler): the FEN is before the opponent's blunder, the line starts with it.
FORKS = [
    ("6q1/p6p/6p1/4k3/1P2N3/2B2P2/4K1P1/8 b - - 3 43", "e5d5 e4f6 d5c4 f6g8", True),
    (
        "rnb1k2r/p1B2ppp/4p3/1Bb5/8/4P3/PP1K1PPP/nN4NR b kq - 0 12",
        "b8d7 b5c6 c8a6 c6a8 c5b4 b1c3",
        False,
    ),
    (
        "r3k2r/p2q1ppp/4pn2/1Qp5/8/4P3/PP1N1PPP/R3K2R w KQkq - 2 16",
        "b5c5 d7d2 e1d2 f6e4 d2e2 e4c5",
        True,
    ),
    ("8/p7/1p6/2p5/P6P/2P2Nk1/1r4P1/4R1K1 w - - 1 39", "f3d2 b2d2 h4h5 d2g2", False),
]
DISCOVERED = [
    ("5rk1/2pqnrpp/p3p1b1/N3P3/1PRPPp2/P4Q2/3B1RPP/6K1 w - - 3 30", "d2f4 f7f4 f3f4 f8f4", False),
    (
        "5rk1/3R4/p1p3pp/1p2b3/2P1n2q/4Q2P/PP3PP1/4R1K1 w - - 4 27",
        "e3e4 h4f2 g1h1 f2f1 e1f1 f8f1",
        False,
    ),
    (
        "r2q1rk1/pppb1pbp/2n1pnp1/1BPpB3/3P4/4PN2/PP3PPP/RN1QK2R w KQ - 3 9",
        "e1g1 c6e5 d4e5 d7b5",
        True,
    ),
    ("r4rk1/p1p1qppp/3b4/4n3/Q7/2NP4/PP3PPP/R1B2RK1 w - - 0 16", "f1e1 e5f3 g2f3 e7e1", True),
    (
        "5r2/6k1/8/p1p1p1p1/Pp1p2P1/1P1PnN1P/2P1KR2/8 w - - 3 38",
        "f3e5 f8e8 e5c6 e3g4 e2f1 g4f2",
        True,
    ),
    ("2r3k1/1r2pp1p/bqNp2p1/3P4/1p2P3/4bN2/1P4PP/2RQR2K w - - 0 24", "c6e7 b7e7 c1c8 a6c8", False),
]


def _replay(fen: str, line: str) -> Any:
    from kibitz.domain.puzzles import _Replay

    board = chess.Board(fen)
    first, *rest = line.split()
    board.push_uci(first)  # the blunder
    return _Replay(board, [chess.Move.from_uci(u) for u in rest])


@pytest.mark.parametrize(("fen", "line", "expected"), FORKS)
def test_fork_is_tagged_as_lichess_puzzler_tags_it(fen: str, line: str, expected: bool) -> None:
    """Issue 17, item 11: "fork" fired where there was none (Réti-Tartakower)."""
    from kibitz.domain.puzzles import _fork

    assert _fork(_replay(fen, line)) is expected


@pytest.mark.parametrize(("fen", "line", "expected"), DISCOVERED)
def test_discovered_attack_is_tagged_as_lichess_puzzler_tags_it(
    fen: str, line: str, expected: bool
) -> None:
    """Issue 17, item 11: "discoveredAttack" fired on the Elephant trap, which has none."""
    from kibitz.domain.puzzles import _discovered_attack

    assert _discovered_attack(_replay(fen, line)) is expected


def test_the_elephant_trap_has_no_discovered_attack() -> None:
    # 1.d4 d5 2.c4 e6 3.Nc3 Nf6 4.Bg5 Nbd7 5.cxd5 exd5 6.Nxd5?? Nxd5! 7.Bxd8 Bb4+ 8.Qd2
    # Bxd2+ 9.Kxd2 Kxd8: Black wins a piece with a check and a recapture, nothing discovered.
    from kibitz.domain.puzzles import themes

    board = chess.Board()
    for san in "d4 d5 c4 e6 Nc3 Nf6 Bg5 Nbd7 cxd5 exd5 Nxd5".split():
        board.push_san(san)
    line = []
    play = board.copy()
    for san in "Nxd5 Bxd8 Bb4+ Qd2 Bxd2+ Kxd2 Kxd8".split():
        move = play.parse_san(san)
        line.append(move.uci())
        play.push(move)
    assert "discoveredAttack" not in themes(board, line, "advantage")
