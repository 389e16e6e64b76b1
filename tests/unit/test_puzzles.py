"""The puzzle domain: Lichess's starting and uniqueness criteria, themes, the solution check."""

from __future__ import annotations

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


def test_a_player_already_up_in_material_gets_no_puzzle() -> None:
    moves = ["e2e4", "d7d5", "e4d5", "g8f6"]  # White is a pawn up when the swing comes
    scores = [Score(cp=30), Score(cp=60), Score(cp=100), Score(cp=900)]
    assert puzzles.find_candidates(chess.Board(), moves, scores) == []


async def test_the_only_move_needs_a_gap_of_0_7_in_win_chances() -> None:
    board = chess.Board()
    unique = [Line("e2e4", Score(cp=900)), Line("d2d4", Score(cp=50))]
    close = [Line("e2e4", Score(cp=900)), Line("d2d4", Score(cp=700))]
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
    assert "discoveredAttack" in puzzles.themes(discovered, ["e4c6", "e8f7", "c6a8"], "advantage")
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
