"""Training on the twins: a player's mistakes become cards when the analysis completes, due
the next day; answers reschedule them exactly as the FSRS library computes; puzzle attempts
move the solver's and the puzzle's ratings exactly as the Glicko-2 library computes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import chess
import fsrs
import glicko2
import pytest

from kibitz.clock import ManualClock
from kibitz.domain.games import game_from_lichess
from kibitz.errors import InvalidInput, NotFound
from kibitz.ports.store import ProblemScanResult, StoredPuzzle
from kibitz.services import problems, training
from kibitz.services.analysis import request_analysis
from tests.service.conftest import Twin, until

FIXTURES = Path(__file__).parent.parent / "fixtures"
# matyizom (White) vs veloce, Lichess game NchH5KBj, with Lichess's own analysis.
REAL_GAME = json.loads((FIXTURES / "lichess_real_analysis.ndjson").read_text().splitlines()[1])
START = datetime(2026, 12, 1, 15, 30, tzinfo=UTC).timestamp()
DAY = 86400.0


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _lichess_judged(name: str, white: bool) -> list[int]:
    """The plies Lichess judged a Mistake or a Blunder for one side."""
    return [
        i + 1
        for i, a in enumerate(REAL_GAME["analysis"])
        if a.get("judgment", {}).get("name") in (name, "Blunder", "Mistake")
        and (i % 2 == 0) == white
    ]


async def test_mistakes_become_cards_due_tomorrow_and_answers_move_them_as_fsrs_does(
    twin_factory: Any,
) -> None:
    clock = ManualClock(START)
    twin: Twin = await twin_factory(clock=clock)
    await twin.store.players.follow("matyizom", "matyizom", True)  # veloce is not followed
    record = game_from_lichess(REAL_GAME, json.dumps(REAL_GAME))
    await twin.store.games.store_games([(record, None, None)], START)
    await twin.start("analysis", "training")
    await request_analysis(twin.ctx, record.id, "batch")
    cards = await until(lambda: list(twin.store.state.cards.values()))

    # White's moves Lichess judged a Mistake or a Blunder, and nothing of Black's.
    assert sorted(c["ply"] for c in cards) == _lichess_judged("Mistake", white=True)
    assert {c["player_id"] for c in cards} == {"matyizom"}
    tomorrow = datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    assert {c["due"] for c in cards} == {tomorrow}

    assert (await training.due_cards(twin.ctx, "Matyizom"))["cards"] == []  # not yet due
    clock.t = tomorrow + 9 * 3600
    due = await training.due_cards(twin.ctx, "matyizom")
    assert due["due"] == len(cards) and [c["game"]["ply"] for c in due["cards"]] == [15, 21]
    right_card, wrong_card = due["cards"]
    best = twin.store.state.cards[right_card["id"]]["best_uci"]
    played = wrong_card["played"]["uci"]

    right = await training.answer(twin.ctx, right_card["id"], best)
    clock.t += 60
    wrong = await training.answer(twin.ctx, wrong_card["id"], played)
    assert right["correct"] and not wrong["correct"]

    # The library's own result for the same history.
    scheduler = fsrs.Scheduler(enable_fuzzing=False)
    expected_right, _ = scheduler.review_card(
        fsrs.Card(card_id=0, due=_utc(tomorrow)), fsrs.Rating.Good, _utc(tomorrow + 9 * 3600)
    )
    expected_wrong, _ = scheduler.review_card(
        fsrs.Card(card_id=0, due=_utc(tomorrow)), fsrs.Rating.Again, _utc(clock.t)
    )
    assert right["due"] == expected_right.due.timestamp() > clock.t
    assert wrong["due"] == expected_wrong.due.timestamp() < right["due"]
    assert (await training.due_cards(twin.ctx, "matyizom"))["due"] == 0

    # Another move than the engine's is checked by the engine once, then remembered.
    clock.t = max(right["due"], wrong["due"]) + 1
    board = chess.Board(right_card["fen"])
    other = next(
        m.uci() for m in board.legal_moves if m.uci() not in (best, right_card["played"]["uci"])
    )
    first = await training.answer(twin.ctx, right_card["id"], other)
    searches = twin.engine.searches
    clock.t = first["due"] + 1
    again = await training.answer(twin.ctx, right_card["id"], other)
    assert (again["correct"], again["loss"]) == (first["correct"], first["loss"])
    assert twin.engine.searches == searches

    with pytest.raises(InvalidInput):
        await training.answer(twin.ctx, right_card["id"], "e1e8")
    with pytest.raises(NotFound):
        await training.answer(twin.ctx, "nobody:x:1", "e2e4")
    with pytest.raises(InvalidInput):
        await training.due_cards(twin.ctx, "x" * 70)


def _mate_puzzle(i: int, rating: int, themes: list[str]) -> StoredPuzzle:
    """After 1...a2a3?? (any quiet move), 2.Rd8# mates on the back rank."""
    return StoredPuzzle(
        id=f"m{i}-1",
        game_id=f"m{i}",
        ply=1,
        fen="6k1/5ppp/8/8/8/8/r4PPP/3R2K1 b - - 0 1",
        blunder_uci="a2a3",
        solution=["d1d8"],
        kind="mate",
        themes=themes,
        rating=rating,
        solver_color="white",
        white_id="ann",
        black_id="bo",
        final_cp=None,
        final_mate=1,
        generator_version=1,
    )


async def test_a_sequence_of_attempts_moves_the_ratings_as_the_glicko2_library_computes(
    twin_factory: Any,
) -> None:
    twin: Twin = await twin_factory()
    ratings = [1200, 1450, 1700, 1950]
    scan = ProblemScanResult("m0", 1, 1, 1, [], 0.1)
    await twin.store.problems.save_scan(
        scan, [_mate_puzzle(i, r, ["backRankMate"]) for i, r in enumerate(ratings)], 0.0
    )
    # solved, wrong, solved, gave up; then puzzle 0 again (not the first attempt: not rated)
    outcomes = [(0, True), (1, False), (2, True), (3, None), (0, False)]
    seen = []
    for index, solved in outcomes:
        pid = f"m{index}-1"
        if solved is None:
            view = await problems.reveal_solution(twin.ctx, pid, counted=False, solver="Ann")
        else:
            move = "d1d8" if solved else "d1d7"
            view = await problems.record_attempt(twin.ctx, pid, [move], solver="Ann")
        seen.append(view["rating"])

    player = glicko2.Player()
    expected_puzzles = {}
    for index, solved in outcomes[:4]:
        won = bool(solved)
        puzzle = glicko2.Player(rating=ratings[index])
        before = (player.rating, player.rd)
        player.update_player([ratings[index]], [350], [1 if won else 0])
        puzzle.update_player([before[0]], [before[1]], [0 if won else 1])
        expected_puzzles[index] = puzzle.rating
    assert [v["rated"] for v in seen] == [True, True, True, True, False]
    assert seen[-1]["rating"] == round(player.rating) and seen[-1]["rd"] == round(player.rd)
    for index, rating in expected_puzzles.items():
        stored = twin.store.state.problems[f"m{index}-1"]["glicko"]
        assert stored.rating == pytest.approx(rating)
    # The trainer picks a puzzle near the solver's rating.
    near = await problems.serve_near(twin.ctx, None, None, solver="ann")
    distance = {
        pid: abs(p["glicko"].rating - player.rating) for pid, p in twin.store.state.problems.items()
    }
    assert near["id"] == min(distance, key=lambda k: distance[k])


async def test_a_puzzle_of_a_players_game_is_a_card_answered_by_its_first_move(
    twin_factory: Any,
) -> None:
    from kibitz.domain.games import game_from_pgn, split_pgn

    clock = ManualClock(START)
    twin: Twin = await twin_factory(clock=clock, deep_nodes=100_000, problem_nodes=300_000)
    classics = Path(problems.__file__).parent.parent / "demo" / "classics.pgn"
    opera = game_from_pgn(split_pgn(classics.read_text())[0].pgn or "")
    await twin.store.players.follow("paul morphy", "Paul Morphy", True)
    await twin.store.games.store_games([(opera, None, None)], START)
    await twin.start("analysis", "problems", "training")
    await request_analysis(twin.ctx, opera.id, "batch")
    card = await until(
        lambda: next((c for c in twin.store.state.cards.values() if c["kind"] == "puzzle"), None),
        timeout=60,
    )
    puzzle = twin.store.state.problems[card["problem_id"]]
    assert card["player_id"] == "paul morphy" and card["game_id"] == opera.id
    board = chess.Board(puzzle["fen"])
    board.push_uci(puzzle["blunder_uci"])
    assert card["fen"] == board.fen()  # the position to solve
    clock.t += 2 * DAY
    wrong_move = next(m.uci() for m in board.legal_moves if m.uci() != puzzle["solution"][0])
    wrong = await training.answer(twin.ctx, card["id"], wrong_move)
    assert not wrong["correct"] and wrong["best"]["uci"] == puzzle["solution"][0]
    clock.t = wrong["due"] + 1
    right = await training.answer(twin.ctx, card["id"], puzzle["solution"][0])
    assert right["correct"] and right["due"] > wrong["due"]
