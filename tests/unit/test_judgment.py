"""Lichess's win-chance model, judgments and accuracy (values worked by hand from the formulas
in scalachess eval.scala, lila Advice.scala and AccuracyPercent.scala)."""

from __future__ import annotations

import math

import pytest

from kibitz.domain.judgment import (
    MATE_CREATED,
    MATE_LOST,
    Judgment,
    Score,
    game_accuracy,
    judge_move,
    move_accuracy,
    win_percent,
    winning_chances,
)


def test_winning_chances_follow_lichess_sigmoid_and_bounds() -> None:
    assert winning_chances(0) == 0
    assert winning_chances(100) == pytest.approx(2 / (1 + math.exp(-0.368208)) - 1)
    assert winning_chances(-100) == pytest.approx(-winning_chances(100))
    assert -1 <= winning_chances(-(10**6)) <= winning_chances(10**6) <= 1


def test_win_percent_caps_centipawns_at_a_thousand() -> None:
    assert win_percent(0) == 50
    assert win_percent(5000) == win_percent(1000)
    assert win_percent(-5000) == pytest.approx(100 - win_percent(1000))


@pytest.mark.parametrize(
    ("before", "after", "white_moved", "expected"),
    [
        (40, 20, True, None),  # a small slip: winning chances drop 0.037
        (100, 40, True, Judgment.INACCURACY),
        (100, -10, True, Judgment.MISTAKE),
        (0, -150, True, Judgment.MISTAKE),
        (100, -100, True, Judgment.BLUNDER),
        (0, 300, False, Judgment.BLUNDER),  # Black's move hands White +3
        (0, -300, False, None),  # Black's move improves Black's position
    ],
)
def test_centipawn_judgments_use_winning_chance_loss_thresholds(
    before: int, after: int, white_moved: bool, expected: Judgment | None
) -> None:
    loss = winning_chances(before) - winning_chances(after)
    loss = loss if white_moved else -loss
    verdict = judge_move(Score(cp=before), Score(cp=after), white_moved)
    assert (verdict.judgment if verdict else None) == expected
    # the thresholds themselves: .3 blunder, .2 mistake, .1 inaccuracy
    if expected is Judgment.BLUNDER:
        assert loss >= 0.3
    elif expected is Judgment.MISTAKE:
        assert 0.2 <= loss < 0.3
    elif expected is Judgment.INACCURACY:
        assert 0.1 <= loss < 0.2
    else:
        assert loss < 0.1


def test_walking_into_a_forced_mate_is_judged_by_how_bad_things_already_were() -> None:
    assert judge_move(Score(cp=0), Score(mate=-3), True) == (
        judge_move(Score(cp=-700), Score(mate=-3), True)
    )
    blunder = judge_move(Score(cp=0), Score(mate=-3), True)
    assert blunder is not None and blunder.judgment is Judgment.BLUNDER
    assert blunder.mate_sequence == MATE_CREATED
    mistake = judge_move(Score(cp=-800), Score(mate=-3), True)
    assert mistake is not None and mistake.judgment is Judgment.MISTAKE
    inaccuracy = judge_move(Score(cp=-1200), Score(mate=-3), True)
    assert inaccuracy is not None and inaccuracy.judgment is Judgment.INACCURACY
    # the same from Black's side: White's +800 is Black's -800
    black = judge_move(Score(cp=800), Score(mate=3), False)
    assert black is not None and black.judgment is Judgment.MISTAKE


def test_letting_a_forced_mate_slip_is_judged_by_what_is_left() -> None:
    lost = judge_move(Score(mate=4), Score(cp=300), True)
    assert lost is not None and (lost.judgment, lost.mate_sequence) == (Judgment.BLUNDER, MATE_LOST)
    still_winning = judge_move(Score(mate=4), Score(cp=1200), True)
    assert still_winning is not None and still_winning.judgment is Judgment.INACCURACY
    assert judge_move(Score(mate=4), Score(mate=3), True) is None  # on track
    assert judge_move(Score(mate=2), Score(mate=5), True) is None  # delayed: not judged


def test_move_accuracy_matches_lichess_curve() -> None:
    assert move_accuracy(60, 60) == 100
    assert move_accuracy(40, 55) == 100
    expected = 103.1668100711649 * math.exp(-0.04354415386753951 * 10) - 3.166924740191411 + 1
    assert move_accuracy(60, 50) == pytest.approx(expected)
    assert move_accuracy(100, 0) == 0


def test_game_accuracy_rewards_the_side_that_keeps_its_chances() -> None:
    steady = [Score(cp=15)] * 20
    white, black = game_accuracy(steady)
    assert white == pytest.approx(100) and black == pytest.approx(100)
    blunder_at_ply_9 = [Score(cp=15)] * 8 + [Score(cp=-400)] + [Score(cp=-400)] * 11
    white, black = game_accuracy(blunder_at_ply_9)
    assert white is not None and black is not None
    assert white < 90 < black


def test_game_accuracy_of_a_one_move_game_has_no_black_figure() -> None:
    white, black = game_accuracy([Score(cp=20)])
    assert white == pytest.approx(100)
    assert black is None


def test_game_accuracy_survives_a_zero_accuracy_move() -> None:
    white, _ = game_accuracy([Score(cp=15), Score(mate=1), Score(mate=-1), Score(cp=0)])
    assert white is not None and 0 <= white <= 100


def test_a_score_is_either_centipawns_or_mate() -> None:
    with pytest.raises(ValueError):
        Score()
    with pytest.raises(ValueError):
        Score(cp=1, mate=1)
