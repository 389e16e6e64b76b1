"""Guess-the-move matches on the real store, the embedded log and Debian's Stockfish: the match
service, the robot pool and the robot worker talking only through events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import chess
import pytest
from sqlalchemy import select

from kibitz import topics
from kibitz.adapters.store_models import Problem, ProblemTheme, Robot
from kibitz.domain import puzzles
from kibitz.errors import Conflict, InvalidInput
from kibitz.runtime.bootstrap import Container
from kibitz.services import matches
from tests.support import read_topic, running, settings_for, until

# Middlegame and endgame positions of the demo's classic games (public-domain scores).
POSITIONS = [
    "r1bqkb1r/pppp1ppp/2n2n2/4p3/2B1P3/5N2/PPPP1PPP/RNBQK2R w KQkq - 4 4",
    "r1bqk2r/pppp1ppp/2n2n2/2b1p3/2B1P3/3P1N2/PPP2PPP/RNBQK2R w KQkq - 1 5",
    "rn1qkb1r/p4ppp/2p2n2/1B2p1B1/4P3/1Q6/PPP2PPP/R3K2R w KQkq - 0 11",
    "1n1rkb1r/p4ppp/4q3/4p1B1/4P3/8/PPP2PPP/2KR4 w k - 0 17",
    "r4rk1/pp3ppp/2n5/3q4/3P4/5N2/PP3PPP/R2Q1RK1 w - - 0 14",
]


async def seed_positions(container: Container, fens: list[str] = POSITIONS) -> None:
    """Puzzles whose starting positions are `fens` (the match source 'problems')."""
    rows = []
    for i, fen in enumerate(fens):
        # A puzzle starts after its blunder: the match plays the position after this move.
        reply = min(chess.Board(fen).legal_moves, key=lambda m: m.uci())
        rows.append(
            {
                "id": f"m{i}-1",
                "game_id": f"m{i}",
                "ply": 1,
                "fen": fen,
                "blunder_uci": reply.uci(),
                "solution": [],
                "kind": "advantage",
                "themes": ["advantage"],
                "rating": 1000,
                "solver_color": "white",
                "white_id": "ana",
                "black_id": "bo",
                "generator_version": puzzles.GENERATOR_VERSION,
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                "served_count": 0,
                "attempts": 0,
                "successes": 0,
            }
        )

    def write(session: Any) -> None:
        session.execute(container.ctx.store.insert(Problem), rows)
        session.execute(
            container.ctx.store.insert(ProblemTheme),
            [{"problem_id": r["id"], "theme": "advantage"} for r in rows],
        )

    await container.ctx.store.run(write)


async def view(container: Container, match_id: str) -> dict[str, Any]:
    return await container.ctx.store.read(lambda s: matches.match_view(s, match_id))


async def round_in(container: Container, match_id: str, number: int, status: str) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        try:
            v = await view(container, match_id)
        except Exception:
            return None
        if len(v["rounds"]) >= number and v["rounds"][number - 1]["status"] == status:
            return v
        return None

    return await until(ready, timeout=90)


async def match_events(container: Container, match_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.type, p.model_dump())
        for e, p in await read_topic(container, topics.MATCH_EVENTS)
        if e.key == match_id
    ]


FAST = {
    "match_response_seconds": 40.0,
    "match_vote_seconds": 20.0,
    "match_nodes": 20_000,
    "robots_tick": 0.2,
    "engines": 2,
}


async def test_a_five_round_match_with_three_robots_completes_scores_add_up_and_replays(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'kibitz.db'}", **FAST)
    async with running(settings, ["matches", "robots", "robot-worker"]) as container:
        await seed_positions(container)
        made = await matches.create_match(
            container.ctx, rounds=5, robots_per_round=3, source="problems"
        )
        match_id = made["id"]
        previous: set[str] = set()
        votes_cast = 0
        for number in range(1, 6):
            state = await round_in(container, match_id, number, "responding")
            current = state["rounds"][number - 1]
            robots_now = set(current["robots"])
            assert len(robots_now) == 3 and len(current["letters"]) == 4
            assert not robots_now & previous, "a robot excluded for this round plays in it"
            board = chess.Board(current["fen"])
            move = min(board.legal_moves, key=lambda m: m.uci()).uci()
            if number == 1:
                with pytest.raises(InvalidInput, match="not a legal move"):
                    await matches.submit_response(container.ctx, match_id, 1, "e9e4", "why not")
                with pytest.raises(Conflict, match="not voting"):
                    await matches.submit_vote(container.ctx, match_id, 1, "A")
                with pytest.raises(Conflict, match="not the current round"):
                    await matches.submit_response(container.ctx, match_id, 2, move, "ahead")
            await matches.submit_response(container.ctx, match_id, number, move, "it is legal")
            state = await round_in(container, match_id, number, "voting")
            current = state["rounds"][number - 1]
            mine = current["my_letter"]
            others = [a["letter"] for a in current["answers"] if a["letter"] != mine]
            assert len(others) == 3, current["answers"]  # every robot answered in time
            if number == 1:
                with pytest.raises(Conflict, match=r"already answered|not responding"):
                    await matches.submit_response(container.ctx, match_id, 1, move, "again")
                with pytest.raises(InvalidInput, match="your own answer"):
                    await matches.submit_vote(container.ctx, match_id, 1, mine)
            await matches.submit_vote(container.ctx, match_id, number, others[0])
            state = await round_in(container, match_id, number, "completed")
            votes_cast += state["rounds"][number - 1]["voted"]
            previous = robots_now
        final = await until(lambda: _completed(container, match_id), timeout=60)
        assert final["ranking"][0] and len(final["standings"]) >= 4

        stored = await container.ctx.store.read(lambda s: matches.stored_state(s, match_id))
        assert stored is not None
        totals: dict[str, int] = {}
        for rnd in stored["rounds"]:
            for pid, points in {**rnd["engine_points"]}.items():
                totals[pid] = totals.get(pid, 0) + points
            for pid, points in rnd["vote_points"].items():
                totals[pid] = totals.get(pid, 0) + points
        assert {p: s for p, s in stored["scores"].items() if s} == {
            p: s for p, s in totals.items() if s
        }
        assert sum(sum(r["vote_points"].values()) for r in stored["rounds"]) == votes_cast
        assert matches.replay(await match_events(container, match_id)) == stored

        async def all_idle() -> bool:
            states = await container.ctx.store.read(
                lambda s: list(s.scalars(select(Robot.state).where(Robot.state != "released")))
            )
            return bool(states) and set(states) == {"idle"}

        await until(all_idle, timeout=30)


async def _completed(container: Container, match_id: str) -> dict[str, Any] | None:
    state = await view(container, match_id)
    return state if state["status"] == "completed" else None
