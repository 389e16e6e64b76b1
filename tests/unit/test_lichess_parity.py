"""kibitz's judgments and ACPL against Lichess's own, on real exported games."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chess
import chess.variant
import pytest

from kibitz.domain.analysis import GameInput, JudgmentsPlugin, evals_from_lichess, judge_game

FIXTURE = Path(__file__).parent.parent / "fixtures" / "lichess_real_analysis.ndjson"
GAMES = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


def _game_input(export: dict[str, Any]) -> GameInput:
    board: chess.Board = (
        chess.variant.ThreeCheckBoard() if export["variant"] == "threeCheck" else chess.Board()
    )
    sans = export["moves"].split()
    ucis = []
    for san in sans:
        move = board.parse_san(san)
        ucis.append(move.uci())
        board.push(move)
    return GameInput(
        moves_uci=ucis, moves_san=sans, evals=evals_from_lichess(export["analysis"], len(sans))
    )


@pytest.mark.parametrize("export", GAMES, ids=[g["id"] for g in GAMES])
def test_judgments_match_lichess_move_for_move(export: dict[str, Any]) -> None:
    game = _game_input(export)
    ours = [j.judgment.value if j else None for j in judge_game(game)]
    theirs = [entry.get("judgment", {}).get("name") for entry in export["analysis"]]
    # Lichess has no entry for a finished position (1vdsvmxp ends on the third check).
    theirs += [None] * (len(ours) - len(theirs))
    assert ours == theirs
    assert any(theirs)  # the games do hold judgments to compare


@pytest.mark.parametrize("export", GAMES, ids=[g["id"] for g in GAMES])
def test_comments_counts_and_acpl_match_lichess(export: dict[str, Any]) -> None:
    result = JudgmentsPlugin().run(_game_input(export))
    comments = {m["ply"]: m["comment"] for m in result["moves"]}
    expected = {
        i + 1: entry["judgment"]["comment"]
        for i, entry in enumerate(export["analysis"])
        if "judgment" in entry
    }
    assert comments == expected
    for side in ("white", "black"):
        lichess = export["players"][side]["analysis"]
        ours = result[side]
        assert {k: ours[k] for k in ("inaccuracy", "mistake", "blunder", "acpl")} == {
            k: lichess[k] for k in ("inaccuracy", "mistake", "blunder", "acpl")
        }


def test_a_pgn_lichess_annotated_gets_the_same_judgments_from_its_evals() -> None:
    """A game as Lichess's annotator writes it (its PGN export of an analysed game): the
    `[%eval]` of every ply fed to the judgment plugin give back Lichess's judgments."""
    import io

    import chess.pgn

    from kibitz.domain.analysis import evals_from_pgn
    from kibitz.domain.games import game_from_pgn

    text = (FIXTURE.parent / "lichess_annotated_fishnet.pgn").read_text()
    record = game_from_pgn(text)
    assert record.pgn_evals is not None
    game = GameInput(
        moves_uci=record.moves_uci,
        moves_san=record.moves_san,
        evals=evals_from_pgn(record.pgn_evals, len(record.moves_uci)),
    )
    ours = {i + 1: j.judgment.value for i, j in enumerate(judge_game(game)) if j}
    theirs = {}
    parsed = chess.pgn.read_game(io.StringIO(text))
    assert parsed is not None
    for ply, node in enumerate(parsed.mainline(), start=1):
        for name in ("Inaccuracy", "Mistake", "Blunder"):
            if f"{name}." in node.comment:
                theirs[ply] = name
    assert len(theirs) == 21
    assert ours == theirs
