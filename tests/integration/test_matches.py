"""Guess-the-move matches on the real store, the embedded log and Debian's Stockfish: the match
service, the robot pool and the robot worker talking only through events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import chess
import psycopg
import pytest

from kibitz import topics
from kibitz.events import RoundRobotsNeeded
from kibitz.runtime.bootstrap import Container
from kibitz.services import matches, robots
from kibitz.settings import load_settings
from tests.support import read_topic, running, settings_for, until, write_match_positions


async def seed_positions(container: Container) -> None:
    """Puzzles whose starts are the match positions (the match source 'problems')."""
    await container.sql.run(lambda s: write_match_positions(s, container.sql))


async def view(container: Container, match_id: str) -> dict[str, Any]:
    return await container.reader.match(match_id)


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


async def _completed(container: Container, match_id: str) -> dict[str, Any] | None:
    state = await view(container, match_id)
    return state if state["status"] == "completed" else None


class SettableClock:
    """Real sleeps, a time the test moves: the pool's idle timer without waiting 5 minutes."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.05))


async def test_the_pool_scales_up_under_ten_matches_never_past_the_maximum_and_back_down(
    tmp_path: Path,
) -> None:
    from kibitz.events import MatchCompleted, new_event

    clock = SettableClock()
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'kibitz.db'}")
    async with running(settings, [], clock=clock) as container:
        pool = robots.RobotPool(container.ctx)
        live = container.reader.robot_pool

        counts = await pool.scale()
        assert counts == dict.fromkeys(counts, 2) and len(counts) == 3  # min idle per type
        peak = 0
        got: list[int] = []
        for n in range(10):
            need = RoundRobotsNeeded(match_id=f"m{n}", round=1, count=3)
            assigned = await pool.assign(new_event(need, f"m{n}"), need)
            got.append(len(assigned))
            again = await pool.assign(new_event(need, f"m{n}"), need)
            assert again == assigned  # asked twice, the same robots
            await pool.scale()
            clock.t += 1
            view = await live()
            peak = max(peak, view["total"])
            assert view["total"] <= settings.robots_max
        assert peak == settings.robots_max == 20
        assert got[:6] == [3] * 6 and sum(got) == 20  # the first matches fully served
        busy = (await live())["by_personality"]
        assert sum(v["busy"] for v in busy.values()) == 20

        for n in range(10):
            done = MatchCompleted(match_id=f"m{n}", scores={})
            await pool.release_match(new_event(done, f"m{n}"), done)
        assert {r["state"] for r in (await live())["robots"]} == {"idle"}
        await pool.scale()
        assert (await live())["total"] == 20  # idle, but not for long enough yet
        clock.t += settings.robots_idle_release + 1
        counts = await pool.scale()
        assert counts == dict.fromkeys(counts, 2)
        view = await live()
        assert view["total"] == 6 and view["released"] == 14

        events = [p for _, p in await read_topic(container, topics.ROBOT_EVENTS)]
        scaled = [e for e in events if e.event_type == "robot.pool_scaled"]
        assert any(e.reason == "scale_up" for e in scaled)
        assert any(e.reason == "scale_down" and e.after == 2 for e in scaled)
        assert sum(1 for e in events if e.event_type == "robot.released") == 20 + 14


@pytest.mark.kafka
@pytest.mark.slow(35)
async def test_a_robot_worker_killed_mid_round_the_round_completes_on_time_without_it(
    tmp_path: Path, own_broker: str, fresh_pg_url: str
) -> None:
    """Distributed: the match and robot services here, the robot worker its own process, on
    Kafka and PostgreSQL. The worker is frozen after round 1 and killed once round 2 has sent
    it its commands: round 2 must close at its deadlines, without the robots' answers."""
    import os
    import signal
    import subprocess

    from tests.e2e.conftest import KIBITZ

    # Round 1 must hear both robots and this test's vote, on a loaded machine too: generous
    # deadlines (round 2, whose robots never answer, takes them in full).
    deadlines = {"match_response_seconds": 20.0, "match_vote_seconds": 8.0}
    settings = load_settings(
        home=tmp_path / "home",
        database_url=fresh_pg_url,
        bus_url=f"kafka://{own_broker}",
        demo=False,
        match_nodes=20_000,
        robots_tick=0.5,
        engines=1,
        **deadlines,
    )
    async with running(settings, ["matches", "robots"]) as container:
        await seed_positions(container)
        env = {
            **os.environ,
            "KIBITZ_HOME": str(tmp_path / "worker"),
            "KIBITZ_DATABASE_URL": fresh_pg_url,
            "KIBITZ_BUS_URL": f"kafka://{own_broker}",
            "KIBITZ_ENGINES": "1",
        }
        worker = await asyncio.create_subprocess_exec(
            KIBITZ,
            "run",
            "robot-worker",
            env=env,
            stdout=(tmp_path / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            # Round 1 gives the robots 20 s: start it once the worker is up (its heartbeat is
            # written when its services run), not while a loaded machine still boots it.
            pg = fresh_pg_url.replace("postgresql+psycopg://", "postgresql://")

            async def worker_up() -> bool:
                with psycopg.connect(pg) as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM workers WHERE worker LIKE %s AND last_seen > 0",
                        (f"%:{worker.pid}:%",),
                    ).fetchone()
                return bool(row and row[0])

            await until(worker_up, timeout=120, every=0.2)
            made = await matches.create_match(
                container.ctx, rounds=2, robots_per_round=2, source="problems"
            )
            match_id = made["id"]
            state = await round_in(container, match_id, 1, "responding")
            fen = state["rounds"][0]["fen"]
            move = min(chess.Board(fen).legal_moves, key=lambda m: m.uci()).uci()
            await matches.submit_response(container.ctx, match_id, 1, move, "first")
            state = await round_in(container, match_id, 1, "voting")
            answers = state["rounds"][0]["answers"]
            assert len(answers) == 3  # the worker answered for both robots
            mine = state["rounds"][0]["my_letter"]
            other = next(a["letter"] for a in answers if a["letter"] != mine)
            await matches.submit_vote(container.ctx, match_id, 1, other)
            await round_in(container, match_id, 1, "completed")

            worker.send_signal(signal.SIGSTOP)  # frozen: it cannot answer round 2
            state = await round_in(container, match_id, 2, "responding")
            started = asyncio.get_running_loop().time()
            worker.send_signal(signal.SIGKILL)  # killed mid-round, its commands unanswered
            await asyncio.wait_for(worker.wait(), 10)
            current = state["rounds"][1]
            fen = current["fen"]
            move = min(chess.Board(fen).legal_moves, key=lambda m: m.uci()).uci()
            await matches.submit_response(container.ctx, match_id, 2, move, "alone")
            state = await round_in(container, match_id, 2, "completed")
            took = asyncio.get_running_loop().time() - started
            budget = deadlines["match_response_seconds"] + deadlines["match_vote_seconds"]
            # Closed by its deadlines, not by the dead worker (which never answers): the slack
            # is for a loaded machine, far below "never".
            assert took <= budget + 10.0, f"round 2 took {took:.1f}s, deadlines {budget}s"
            current = state["rounds"][1]
            assert [a["mine"] for a in current["answers"]] == [True]  # the robots were skipped
            assert current["voted"] == 0  # nobody had another answer to vote for
            final = await until(lambda: _completed(container, match_id), timeout=30)
            assert final["status"] == "completed"
            # A fresh process rebuilds the match from Kafka's compacted match-state alone.
            replay = await asyncio.create_subprocess_exec(
                *(KIBITZ, "replay", "match", match_id, "--from-state"),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            said = (await asyncio.wait_for(replay.communicate(), 60))[0].decode()
            assert replay.returncode == 0, said
            assert "equal to the stored state" in " ".join(said.split())
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
