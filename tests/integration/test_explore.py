"""Explore (issue 18): any position searched on the interactive lane at the budget asked for,
through the API of a process that had no engine running (it starts Stockfish on first use),
with the evaluation cache answering the second time; bad positions get a 422 JSON answer."""

from __future__ import annotations

from pathlib import Path

from tests.support import api

# 1. e4 e5 2. Bc4 Nc6 3. Qh5 Nf6?? — White mates with Qxf7#.
BEFORE_MATE = "r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4"
MATED = "r1bqkb1r/pppp1Qpp/2n2n2/4p3/2B1P3/8/PPPP1PPP/RNB1K1NR b KQkq - 0 4"


async def test_a_position_is_searched_at_the_budget_asked_for_then_answered_from_the_cache(
    tmp_path: Path,
) -> None:
    async with api(tmp_path, f"sqlite:///{tmp_path / 'k.db'}") as (http, container):
        assert not container.ctx.evaluator.available  # no service here searches
        first = await http.post("/api/explore", json={"fen": BEFORE_MATE, "nodes": 20_000})
        assert first.status_code == 200, first.text
        found = first.json()
        assert (found["mate"], found["cp"], found["best"]) == (1, None, "h5f7")
        assert found["line_san"][0] == "Qxf7#" and found["line_uci"][0] == "h5f7"
        assert found["nodes"] == 20_000 and found["cached"] is False
        assert found["engine"] != "none" and found["game_over"] is False

        again = await http.post("/api/explore", json={"fen": BEFORE_MATE, "nodes": 20_000})
        assert again.json()["cached"] is True and again.json()["best"] == "h5f7"

        over = (await http.post("/api/explore", json={"fen": MATED, "nodes": 20_000})).json()
        assert over["game_over"] is True and over["best"] is None and over["line_san"] == []
        assert over["outcome"] == "checkmate"


async def test_a_bad_position_or_budget_gets_a_422_naming_what_is_wrong(tmp_path: Path) -> None:
    async with api(tmp_path, f"sqlite:///{tmp_path / 'k.db'}") as (http, _):
        cases = {
            "not a fen": ("rnbqkbnr/pppppppp w", 20_000, "fen: invalid starting position"),
            "two white kings": ("4k3/8/8/8/8/8/8/K3K3 w - - 0 1", 20_000, "too many kings"),
            "too small a budget": (BEFORE_MATE, 10, "nodes must be between"),
        }
        for name, (fen, nodes, said) in cases.items():
            answer = await http.post("/api/explore", json={"fen": fen, "nodes": nodes})
            assert answer.status_code == 422, name
            assert answer.json()["error"] == "invalid_input" and said in answer.json()["detail"]
