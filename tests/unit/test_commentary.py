"""The commentary's facts and words, from positions whose facts are known."""

from __future__ import annotations

import chess

from kibitz.domain.commentary import describe_score, move_facts, template_line
from kibitz.domain.judgment import Score
from kibitz.domain.openings import opening_at
from kibitz.runtime.breaker import CircuitBreaker


def _board(sans: str) -> chess.Board:
    board = chess.Board()
    for san in sans.split():
        board.push_san(san)
    return board


def test_a_blunder_is_named_with_the_better_move_and_the_new_evaluation() -> None:
    # 1. e4 e5 2. Qh5 Nc6 3. Bc4: Black blunders with 3...Nf6?? (Qxf7# follows); g6 was best.
    board = _board("e4 e5 Qh5 Nc6 Bc4")
    move = board.parse_san("Nf6")
    facts = move_facts(
        "g1",
        6,
        board,
        move,
        Score(cp=-20),
        Score(mate=1),
        "g7g6",
        white_name="Ann",
        black_name="Bob",
    )
    assert facts.judgment == "Blunder" and facts.mate_sequence
    assert facts.best_san == "g6" and facts.mover == "Black" and facts.mover_name == "Bob"
    line = template_line(facts)
    assert "3... Nf6" in line and "blunder" in line.lower() and "g6" in line
    assert "White mates next move" in line
    assert template_line(facts) == line  # deterministic


def test_captures_checks_castling_mate_threats_and_openings_are_facts_of_the_board() -> None:
    board = _board("e4 e5 Nf3 Nc6")
    facts = move_facts("g", 5, board, board.parse_san("Bb5"), Score(cp=30), Score(cp=35), "f1b5")
    assert facts.opening == "Ruy Lopez" and facts.best_san is None
    assert "Ruy Lopez" in template_line(facts)

    board = _board("e4 e5 Nf3 Nc6 Bc4 Nf6 Ng5 d5 exd5 Nxd5")
    fork = move_facts("g", 11, board, board.parse_san("Nxf7"), Score(cp=0), Score(cp=10), None)
    assert fork.capture == "pawn" and set(fork.threats) == {"the queen on d8", "the rook on h8"}

    board = _board("e4 e5 Nf3 Nc6 Bc4 Nf6")
    castle = move_facts("g", 7, board, board.parse_san("O-O"), Score(cp=20), Score(cp=20), None)
    assert (castle.castles == "kingside" and "castle" in template_line(castle).lower()) or (
        "tucks the king" in template_line(castle)
    )

    board = _board("f3 e5 g4")
    mate = move_facts("g", 4, board, board.parse_san("Qh4#"), Score(mate=-1), None, "d8h4")
    assert mate.game_over == "checkmate" and "checkmate" in template_line(mate).lower()


def test_time_trouble_comes_from_the_clock_and_words_follow_the_engine() -> None:
    board = _board("d4 d5")
    facts = move_facts(
        "g",
        3,
        board,
        board.parse_san("c4"),
        Score(cp=20),
        Score(cp=25),
        None,
        mover_clock=8,
        initial_clock=180,
    )
    assert "short of time: 8 s left" in template_line(facts)
    assert opening_at(_board("d4 d5 c4")) == "Queen's Gambit"
    assert describe_score(Score(cp=0)) == "the position is balanced"
    assert describe_score(Score(cp=900)) == "White is winning"
    assert describe_score(Score(cp=-250)) == "Black is clearly better"
    assert describe_score(Score(mate=-3)) == "Black mates in 3"


def test_the_circuit_breaker_opens_after_repeated_failures_and_one_probe_closes_it() -> None:
    now = [0.0]
    breaker = CircuitBreaker("t", failures_to_open=3, reset_after=10, clock=lambda: now[0])
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half-open" and breaker.allow() and not breaker.allow()
    breaker.failure()  # the probe failed: open again for another 10 s
    assert breaker.state == "open"
    now[0] = 20.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
