"""Game parsing: Lichess JSON and PGN into validated records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kibitz.domain.games import game_from_lichess, game_from_pgn, split_pgn
from kibitz.errors import InvalidPgn

FIXTURES = Path(__file__).parent.parent / "fixtures"


def lichess_game() -> dict[str, object]:
    return json.loads((FIXTURES / "lichess_game_with_analysis.json").read_text())


def test_a_lichess_game_keeps_everything_lichess_sends() -> None:
    record = game_from_lichess(lichess_game())
    assert record.id == "q7ZvsdUF"
    assert record.moves_uci[:4] == ["e2e4", "e7e5", "g1f3", "b8c6"]
    assert record.white_id == "alice" and record.black_rating == 1980
    assert record.result == "1-0" and record.status == "resign"
    assert record.opening_eco == "C57" and record.opening_ply == 12
    assert record.clock_initial == 180 and record.clock_increment == 2
    assert record.clocks_cs is not None and len(record.clocks_cs) == len(record.moves_uci)
    assert record.server_analysis is not None
    assert record.server_analysis[5]["judgment"]["name"] == "Inaccuracy"
    assert record.player_analysis == {
        "white": {"inaccuracy": 1, "mistake": 0, "blunder": 0, "acpl": 21, "accuracy": 91},
        "black": {"inaccuracy": 1, "mistake": 0, "blunder": 1, "acpl": 78, "accuracy": 62},
    }
    assert record.raw_json is not None and json.loads(record.raw_json)["source"] == "pool"


def test_an_illegal_lichess_move_is_rejected_with_its_ply() -> None:
    game = lichess_game()
    game["moves"] = "e4 e5 Ke3"
    with pytest.raises(InvalidPgn, match="ply 3"):
        game_from_lichess(game)


def test_a_changed_game_has_a_new_content_hash() -> None:
    game = lichess_game()
    before = game_from_lichess(game).content_hash()
    game["status"] = "outoftime"
    assert game_from_lichess(game).content_hash() != before
    assert game_from_lichess(lichess_game()).content_hash() == before


PGN_WITH_BROKEN = (FIXTURES / "three_good_one_broken.pgn").read_text()


def test_split_pgn_keeps_every_game_by_index_and_the_store_rejects_the_broken_one() -> None:
    entries = split_pgn(PGN_WITH_BROKEN)
    assert [e.index for e in entries] == [1, 2, 3, 4]
    assert all(e.pgn is not None and e.error is None for e in entries)
    with pytest.raises(InvalidPgn, match="illegal move"):
        game_from_pgn(entries[2].pgn or "")
    assert [game_from_pgn(e.pgn or "").white_name for e in (entries[0], entries[1], entries[3])]


def test_pgn_eval_and_clock_comments_are_kept() -> None:
    first = split_pgn(PGN_WITH_BROKEN)[0]
    assert first.pgn is not None
    record = game_from_pgn(first.pgn)
    assert record.id == "q7ZvsdUF"  # a Lichess Site header gives the Lichess id
    assert record.clocks_cs is not None and record.clocks_cs[:2] == [18000, 17800]
    assert record.pgn_evals is not None and record.pgn_evals[0] == {"cp": 18}
    assert "[%eval 0.18]" in (record.pgn or "")


def test_a_pgn_without_opening_tags_is_named_from_its_moves() -> None:
    """Issue 17, item 5: such a game showed no opening at all."""
    from kibitz.domain.games import game_from_pgn

    plain = '[White "A"]\n[Black "B"]\n[Result "*"]\n\n1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 *\n'
    record = game_from_pgn(plain)
    assert (record.opening_name, record.opening_ply) == ("Ruy Lopez: Morphy Defense", 6)
    tagged = plain.replace('[Result "*"]', '[Result "*"]\n[Opening "Spanish Game"]')
    assert game_from_pgn(tagged).opening_name == "Spanish Game"  # the tag wins
    odd = game_from_pgn('[Result "*"]\n\n1. a3 h6 2. h3 a6 *\n')
    assert odd.opening_name is None


def test_phase_accuracies_are_computed_as_the_game_accuracy_so_they_agree_with_it() -> None:
    """Issue 17, item 3: a plain mean per phase read 88.6 and 79.2 for a side whose game
    accuracy, Lichess's, was 59.8 — below every phase."""
    import json
    from pathlib import Path

    from kibitz.domain.analysis import GameInput, JudgmentsPlugin, PhasesPlugin, evals_from_lichess
    from kibitz.domain.games import game_from_lichess
    from kibitz.errors import InvalidPgn

    fixture = Path(__file__).parent.parent / "fixtures" / "lichess_real_analysis.ndjson"
    checked = 0
    for line in fixture.read_text().splitlines():
        game = json.loads(line)
        try:
            record = game_from_lichess(game, line)
        except InvalidPgn:
            continue  # a variant
        if not record.server_analysis:
            continue
        evals = evals_from_lichess(record.server_analysis, len(record.moves_uci))
        played = GameInput(record.moves_uci, record.moves_san, evals, result=record.result)
        overall, phases = JudgmentsPlugin().run(played), PhasesPlugin().run(played)
        for side in ("white", "black"):
            parts = [phases[p][side] for p in ("opening", "middlegame", "endgame")]
            parts = [p for p in parts if p is not None]
            assert min(parts) - 0.1 <= overall[side]["accuracy"] <= max(parts) + 0.1, (
                game["id"],
                side,
                overall[side]["accuracy"],
                parts,
            )
            checked += 1
    assert checked >= 4


def test_standings_count_a_personality_once_and_rank_by_points_per_round() -> None:
    """Issue 17, item 14: robot instances were ranked one by one, so the person (who plays
    every round) always came first."""
    from kibitz.domain.matches import Match, Round, standings, unanimous

    rounds = [
        Round(1, "fen", status="completed", responses={"p": {}, "a1": {}, "b1": {}}),
        Round(2, "fen", status="completed", responses={"p": {}, "a2": {}, "b2": {}}),
        Round(3, "fen", status="completed", responses={"p": {}, "a1": {}, "b2": {}}),
    ]
    state = Match(
        id="m",
        person="p",
        rounds_total=3,
        robots_per_round=2,
        source="problems",
        positions=[],
        rounds=rounds,
        scores={"p": 6, "a1": 3, "a2": 4, "b1": 0, "b2": 1},
        identities={"a1": "sharp_tactician", "a2": "sharp_tactician", "b1": "x", "b2": "x"},
    )
    table = standings(state)
    assert [(s.who, s.score, s.rounds) for s in table] == [
        ("sharp_tactician", 7, 3),
        ("you", 6, 3),
        ("x", 1, 3),
    ]
    same = Round(1, "fen", responses={"p": {"move": "e2e4"}, "a1": {"move": "e2e4"}})
    assert unanimous(same)
    assert not unanimous(Round(1, "fen", responses={"p": {"move": "e2e4"}}))
