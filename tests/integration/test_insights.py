"""Insights on the real stores: two real Lichess games with Lichess's own analysis (tests/
fixtures/lichess_real_analysis.ndjson), the player renamed "Tester" (White in one, Black in
the other); every number equals a direct computation over the stored evaluations."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from sqlalchemy import select

from kibitz.adapters.store_models import Game, MoveEval
from kibitz.domain.judgment import move_accuracy, stored_score, win_percent
from kibitz.services.analysis import request_analysis
from kibitz.services.ingest import request_sync
from tests.fakes.lichess import FakeLichess
from tests.support import running, settings_for, until, wait_for_sync

FIXTURES = Path(__file__).parent.parent / "fixtures"
REAL = {
    g["id"]: g
    for g in map(json.loads, (FIXTURES / "lichess_real_analysis.ndjson").read_text().splitlines())
}


def _as_tester(game: dict, side: str) -> dict:
    out = copy.deepcopy(game)
    out["players"][side]["user"] = {"name": "Tester", "id": "tester"}
    return out


def _direct(rows: list[MoveEval], white: bool) -> list[tuple[float, int]]:
    """(accuracy, centipawn loss) of each of one side's moves, straight from the rows."""
    out = []
    previous = 15  # the score before the first move (Lichess's)
    for row in rows:
        score = stored_score(row.cp, row.mate)
        assert score is not None
        cp = max(-1000, min(1000, score.forced_cp()))
        mover_white = row.ply % 2 == 1
        if mover_white == white:
            before, after = win_percent(previous), win_percent(cp)
            if not white:
                before, after = 100 - before, 100 - after
            loss = (cp - previous) * (-1 if white else 1)
            out.append((move_accuracy(before, after), max(0, loss)))
        previous = cp
    return out


async def test_insights_equal_a_direct_computation_over_the_stored_evaluations(
    tmp_path: Path, database_url: str, fake_lichess: FakeLichess
) -> None:
    fake_lichess.users["tester"] = [
        _as_tester(REAL["NchH5KBj"], "white"),  # a Scandinavian, won as White
        _as_tester(REAL["3zfAoBZs"], "black"),  # a Nimzo-Larsen, lost as Black
    ]
    settings = settings_for(tmp_path, database_url, fake_lichess.url)
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        ctx = container.ctx
        assert (await wait_for_sync(container, await request_sync(ctx, "Tester")))[
            "status"
        ] == "done"
        for game_id in ("NchH5KBj", "3zfAoBZs"):
            await request_analysis(ctx, game_id, "interactive")

        async def analysed() -> bool:
            view = await container.reader.player_report("tester")
            return bool(view["analysed"] == 2)

        await until(analysed)
        found = await container.reader.insights("tester")

        def rows(game_id: str) -> list[MoveEval]:
            return list(
                container.sql.unit_of_work(
                    lambda s: list(
                        s.scalars(
                            select(MoveEval)
                            .where(MoveEval.game_id == game_id)
                            .order_by(MoveEval.ply)
                        )
                    )
                )
            )

        white_moves = _direct(rows("NchH5KBj"), True)
        black_moves = _direct(rows("3zfAoBZs"), False)
        dates = await container.sql.read(
            lambda s: dict(s.execute(select(Game.id, Game.played_at_ms)).all())
        )

    def mean(values: list[float]) -> float:
        return round(sum(values) / len(values), 1)

    def expect(moves: list[tuple[float, int]]) -> tuple[int, float, float]:
        return len(moves), mean([a for a, _ in moves]), mean([c for _, c in moves])

    def shown(group: dict) -> tuple[int, float, float]:
        return group["moves"], group["accuracy"], group["acpl"]

    both = white_moves + black_moves
    assert found["games"] == 2
    assert shown(found["overall"]) == expect(both)
    assert shown(found["colour"]["white"]) == expect(white_moves)
    assert shown(found["colour"]["black"]) == expect(black_moves)
    assert shown(found["result"]["win"]) == expect(white_moves)
    assert shown(found["result"]["loss"]) == expect(black_moves)
    assert found["result"]["win"]["game_ids"] == ["NchH5KBj"]
    assert shown(found["opening"]["Scandinavian Defense"]) == expect(white_moves)
    assert shown(found["opening"]["Nimzo-Larsen Attack"]) == expect(black_moves)
    assert sum(g["moves"] for g in found["phase"].values()) == len(both)
    assert set(found["phase"]) <= {"opening", "middlegame", "endgame"}
    months = {g: f"{dates[g] // 1000}" for g in dates}
    assert sum(g["games"] for g in found["month"].values()) == len(months)
    # Lichess's own numbers for these players in these games: ACPL 60 (matyizom, White) and 95
    # (TackoFall, Black), blunders 0 and 2.
    assert round(found["colour"]["white"]["acpl"]) == 60
    assert round(found["colour"]["black"]["acpl"]) == 95
    assert (found["colour"]["white"]["blunders"], found["colour"]["black"]["blunders"]) == (0, 2)
    themes = found["blunder_themes"]
    assert themes and all(t["game_ids"] == ["3zfAoBZs"] for t in themes.values())
    assert max(t["blunders"] for t in themes.values()) <= 2
