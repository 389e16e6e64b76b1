"""Game accuracy on the cases of Lichess's own test suite for it.

The inputs (centipawns after each ply) and the expected values with their tolerances are
those of lila `modules/analyse/src/test/AccuracyPercentTest.scala` (commit 0cb3e7c1).
"""

from __future__ import annotations

import pytest

from kibitz.domain.judgment import Score, game_accuracy

# (name, cps after each ply, white moves first, (white, tolerance), (black, tolerance))
CASES = [
    ("two good moves", [15, 15], True, (100, 1), (100, 1)),
    ("white blunders on first move", [-900, -900], True, (10, 5), (100, 1)),
    ("black blunders on first move", [15, 900], True, (100, 1), (10, 5)),
    ("both blunder on first move", [-900, 0], True, (10, 5), (10, 5)),
    ("20 perfect moves", [15] * 20, True, (100, 1), (100, 1)),
    ("20 perfect moves and a white blunder", [15] * 20 + [-900], True, (50, 5), (100, 1)),
    ("21 perfect moves and a black blunder", [15] * 21 + [900], True, (100, 1), (50, 5)),
    ("5 average moves on each side", [-50, 15] * 5, True, (76, 8), (76, 8)),
    ("50 average moves on each side", [-50, 15] * 50, True, (76, 8), (76, 8)),
    ("50 mediocre moves on each side", [-135, 15] * 50, True, (54, 8), (54, 8)),
    ("50 terrible moves on each side", [-435, 15] * 50, True, (20, 8), (20, 8)),
    ("black first: two good moves", [15, 15], False, (100, 1), (100, 1)),
    ("black first: black blunders", [900, 900], False, (100, 1), (10, 5)),
    ("black first: white blunders", [15, -900], False, (10, 5), (100, 1)),
    ("black first: both blunder", [900, 0], False, (10, 5), (10, 5)),
]


@pytest.mark.parametrize(
    ("cps", "white_first", "white", "black"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_game_accuracy_meets_lichess_own_expectations(
    cps: list[int], white_first: bool, white: tuple[int, int], black: tuple[int, int]
) -> None:
    got_white, got_black = game_accuracy([Score(cp=c) for c in cps], white_first)
    assert got_white is not None and got_black is not None
    assert got_white == pytest.approx(white[0], abs=white[1])
    assert got_black == pytest.approx(black[0], abs=black[1])
