"""Every service on the twins: ingest, analysis (phases, lanes, retries, DLQ), live commentary,
problems, matches and robots. The services, the runtime and the event log are the real ones."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import chess
import pytest

from kibitz import topics
from kibitz.domain import matches as rules
from kibitz.domain.analysis import BUILTIN_PLUGINS
from kibitz.domain.games import game_from_lichess, game_from_pgn, split_pgn
from kibitz.domain.puzzles import GENERATOR_VERSION
from kibitz.errors import Conflict, EngineUnavailable, InvalidInput, NotFound
from kibitz.events import (
    AnalysisCompleted,
    AnalysisProgress,
    AnalysisRequested,
    CommentaryPublished,
    LiveMove,
    ProblemsGenerated,
    RoundRobotsAssigned,
    RoundRobotsNeeded,
    RoundStarted,
    new_event,
)
from kibitz.runtime import metrics
from kibitz.runtime.consumer import DLQ_SUFFIX, RetryPolicy
from kibitz.services import analysis, ingest, matches, problems, robots
from kibitz.services.analysis import request_analysis
from tests.fakes.lichess import BASE_TIME_MS, random_game
from tests.service.conftest import Twin, until
from tests.support import MATCH_POSITIONS, read_topic
from tests.twins.engine import recording_mode

FIXTURES = Path(__file__).parent.parent / "fixtures"
CLASSICS = Path(problems.__file__).parent.parent / "demo" / "classics.pgn"
# matyizom vs veloce (Lichess game NchH5KBj, 47 plies) with Lichess's own analysis.
REAL_GAME = json.loads((FIXTURES / "lichess_real_analysis.ndjson").read_text().splitlines()[1])


def _games(name: str, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        random_game(rng, f"s{seed}{i:05d}", name, f"opp{i % 5}", BASE_TIME_MS + i * 60_000)
        for i in range(count)
    ]


async def _stored(twin: Twin, *games: dict[str, Any]) -> list[str]:
    records = [game_from_lichess(g, json.dumps(g)) for g in games]
    await twin.store.games.store_games([(r, None, None) for r in records], 0.0)
    return [r.id for r in records]


async def _when(read: Any, count: int) -> Any:
    """`read()`'s value once it holds `count` items (None before)."""
    value = await read()
    return value if len(value) >= count else None


# --- ingest ----------------------------------------------------------------------------------


async def test_a_sync_survives_a_broken_stream_and_a_broken_line_and_a_second_adds_nothing(
    twin_factory: Any,
) -> None:
    twin: Twin = await twin_factory()
    games = _games("Alice", 40, seed=3)
    twin.lichess.add_games("Alice", games[:20])
    twin.lichess.add_line("Alice", '{"id": "broken", "moves": 12}')  # line 21: not a game
    twin.lichess.add_games("Alice", games[20:])
    twin.lichess.drop_after = 15
    await twin.start("ingest", "store")
    sync_id = await ingest.request_sync(twin.ctx, "Alice")
    view = await until(lambda: (v := twin.store.syncs.view(sync_id))["status"] == "done" and v)
    assert (view["games_received"], view["games_stored"], view["games_rejected"]) == (41, 40, 1)
    assert view["rejected"][0]["index"] == 21 and "moves" in view["rejected"][0]["reason"]
    assert set(twin.store.state.games) == {g["id"] for g in games}
    # The broken stream was opened again after the last game received, not from the start.
    assert len(twin.lichess.requests) == 2
    assert twin.lichess.requests[1]["since"] == games[14]["createdAt"] + 1

    again = await ingest.request_sync(twin.ctx, "Alice")
    second = await until(lambda: (v := twin.store.syncs.view(again))["status"] == "done" and v)
    assert second["games_created"] == 0 and len(twin.store.state.games) == 40


async def test_a_pgn_import_rejects_the_broken_game_by_index_and_stores_the_rest(
    twin_factory: Any,
) -> None:
    twin: Twin = await twin_factory()
    await twin.start("store")
    text = (FIXTURES / "three_good_one_broken.pgn").read_text()
    import_id = await ingest.import_pgn(twin.ctx, text, "four.pgn")
    view = await until(lambda: (v := twin.store.syncs.view(import_id))["status"] == "done" and v)
    assert (view["games_stored"], view["games_rejected"]) == (3, 1)
    assert len(twin.store.state.games) == 3
    with pytest.raises(InvalidInput, match="no PGN game"):
        await ingest.import_pgn(twin.ctx, "\n\n")


# --- analysis --------------------------------------------------------------------------------


async def test_quick_then_deep_results_each_lane_at_its_priority_then_the_cache(
    twin_factory: Any,
) -> None:
    twin: Twin = await twin_factory()
    fast, slow = await _stored(twin, *_games("Bo", 2, seed=11))
    await twin.start("analysis")
    await request_analysis(twin.ctx, fast, "interactive")
    await until(lambda: twin.store.state.analyses[fast]["status"] == "done")
    interactive = set(twin.engine.priorities)
    twin.engine.priorities.clear()
    await request_analysis(twin.ctx, slow, "batch")
    await until(lambda: twin.store.state.analyses[slow]["status"] == "done")
    # Batch work at batch priorities only (its quick pass may take the deep pass's results,
    # searched first here: a deep result serves a quick lookup).
    assert interactive == {0, 1} and 3 in set(twin.engine.priorities) <= {2, 3}

    plies = len(twin.store.state.games[fast].moves_uci)
    for game_id in (fast, slow):
        assert len(twin.store.state.evals[(game_id, "quick")]) == plies or game_id == slow
        assert len(twin.store.state.evals[(game_id, "deep")]) == len(
            twin.store.state.games[game_id].moves_uci
        )
        assert set(twin.store.state.results[game_id]) == {
            (p.name, p.version) for p in BUILTIN_PLUGINS
        }
    events = await twin.events(topics.ANALYSIS_PROGRESS)
    mine = [p for _, p in events if isinstance(p, AnalysisProgress) and p.game_id == fast]
    assert mine[-1].status == "done" and mine[-1].positions_done == plies + 1
    deep_counts = [p.positions_done for p in mine if p.phase == "deep" and p.status == "running"]
    assert deep_counts == sorted(deep_counts)  # progress only goes forward

    async def completed() -> list[str]:
        done = [p for _, p in await twin.events(topics.ANALYSIS_COMPLETED)]
        return sorted(p.game_id for p in done if isinstance(p, AnalysisCompleted))

    assert await until(lambda: _when(completed, 2)) == sorted([fast, slow])  # once each

    searches = twin.engine.searches  # analysed again: every position from the cache
    await request_analysis(twin.ctx, fast, "interactive", force=True)
    assert await until(lambda: _when(completed, 3)) == sorted([fast, fast, slow])
    assert twin.engine.searches == searches


async def test_games_analysed_side_by_side_search_each_shared_position_once(
    twin_factory: Any,
) -> None:
    """Issue 21 (repertoire): a player's games reach the same positions. Analysed at the same
    time, neither has stored its results in the cache when the other looks, so each shared
    position was searched once per game; now the second waits for the first one's search."""
    twin: Twin = await twin_factory()
    (game,) = _games("Bo", 1, seed=11)  # recorded; the same moves under three ids
    copies = [{**game, "id": f"{game['id'][:-1]}{n}"} for n in range(3)]
    ids = await _stored(twin, *copies)
    await twin.start("analysis")
    for game_id in ids:
        await request_analysis(twin.ctx, game_id, "batch")
    await until(lambda: all(twin.store.state.analyses[g]["status"] == "done" for g in ids))
    board, positions = chess.Board(), set()
    for uci in twin.store.state.games[ids[0]].moves_uci:
        positions.add(board.epd())
        board.push_uci(uci)
    if not board.is_game_over():
        positions.add(board.epd())
    # Each position once at the quick and once at the deep budget at most (a deep result
    # also serves the quick pass): one game's searches, not three games'.
    assert len(positions) <= twin.engine.searches <= 2 * len(positions)


async def test_interactive_requests_get_the_deeper_budget_until_they_wait_too_long(
    twin_factory: Any,
) -> None:
    """Issue 21: a request for one game searches its deep pass at the interactive budget
    (Lichess's user budget), batch work at the lower one; while requests wait longer than
    `degrade_after`, new interactive deep passes run at the batch budget and say so, until a
    request starts within half of it again."""
    twin: Twin = await twin_factory(
        quick_nodes=2_000, deep_nodes=2_000, interactive_deep_nodes=8_000, degrade_after=5.0
    )
    game, other = await _stored(twin, *_games("Bo", 2, seed=11))  # recorded at both budgets
    await twin.start("analysis")
    worker = twin.component("analysis")
    before = metrics.ANALYSES_DEGRADED._value.get()

    async def run(game_id: str, priority: str, waited: float) -> dict[str, Any]:
        row = twin.store.state.analyses.get(game_id, {})
        runs = row.get("attempts", 0)
        request = AnalysisRequested(game_id=game_id, priority=priority, force=True)
        asked = new_event(request, game_id)
        at = asked.occurred_at - timedelta(seconds=waited)  # asked `waited` seconds ago
        asked = asked.model_copy(update={"occurred_at": at})
        await twin.ctx.publisher.publish_envelope(analysis.topic_for(priority), asked)
        await until(
            lambda: (
                twin.store.state.analyses.get(game_id, {}).get("attempts", 0) > runs
                and twin.store.state.analyses[game_id]["status"] == "done"
                and game_id not in worker.running
            )
        )
        return twin.store.state.analyses[game_id]

    fresh = await run(game, "interactive", 0)
    assert fresh["nodes"] == (2_000, 8_000) and not fresh["degraded"]
    late = await run(game, "interactive", 60)  # waited a minute for an engine
    assert late["nodes"] == (2_000, 2_000) and late["degraded"]
    still = await run(other, "interactive", 3)  # 2.5 s < 3 s < 5 s: not yet drained
    assert still["nodes"] == (2_000, 2_000) and still["degraded"]
    assert metrics.ANALYSES_DEGRADED._value.get() == before + 2
    drained = await run(other, "interactive", 0)
    assert drained["nodes"] == (2_000, 8_000) and not drained["degraded"]
    batch = await run(game, "batch", 600)  # batch work keeps its own budget, whatever waits
    assert batch["nodes"] == (2_000, 2_000) and not batch["degraded"]
    assert metrics.ANALYSES_DEGRADED._value.get() == before + 2


async def test_a_completion_stored_but_never_published_is_relayed_once_under_its_id(
    twin_factory: Any,
) -> None:
    """A stop after "done" was stored and the request settled, before `analysis.completed`
    went out: no redelivery publishes it, the relay does (issue 20's five-kills run)."""
    twin: Twin = await twin_factory()
    game_id, _ = await _stored(twin, *_games("Bo", 2, seed=11))  # recorded positions
    await twin.start("analysis")
    await request_analysis(twin.ctx, game_id, "batch")
    await until(lambda: twin.store.state.analyses[game_id]["status"] == "done")
    worker = twin.component("analysis")
    await until(lambda: game_id not in worker.running)
    row = twin.store.state.analyses[game_id]
    assert row["completion_event_id"] is None  # published by its handler
    row.update(completion_event_id="lost-in-a-crash", finished_at=twin.ctx.clock.now() - 5)
    assert await worker.relay_completions() == 0  # its own handler may still publish it
    row["finished_at"] = twin.ctx.clock.now() - 60
    assert await worker.relay_completions() == 1
    assert await worker.relay_completions() == 0  # once
    ids = [
        envelope.id
        for envelope, payload in await twin.events(topics.ANALYSIS_COMPLETED)
        if payload.game_id == game_id
    ]
    assert len(ids) == 2 and ids[1] == "lost-in-a-crash"


class _FailingEngine:
    name = "broken"

    async def analyse(self, board: chess.Board, nodes: int, priority: Any = 0) -> Any:
        raise EngineUnavailable("the engine failed twice: it crashed")

    async def analyse_lines(self, *args: Any, **kwargs: Any) -> Any:
        raise EngineUnavailable("the engine failed twice: it crashed")


async def test_a_failing_job_is_retried_then_fails_and_lands_on_the_dlq_with_its_reason(
    twin_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, handler_timeout=30)
    monkeypatch.setattr(analysis, "RETRY", retry)
    twin: Twin = await twin_factory()
    twin.ctx.evaluator.attach(_FailingEngine())
    twin.ctx.evaluator.breaker.failures_to_open = 10**6  # every attempt, the engine itself
    (game_id,) = await _stored(twin, *_games("Cy", 1, seed=5))
    await twin.start("analysis", retry=retry)
    await request_analysis(twin.ctx, game_id, "interactive")
    row = await until(lambda: (a := twin.store.state.analyses[game_id])["status"] == "failed" and a)
    assert row["attempts"] == 3 and "it crashed" in row["error"]
    dlq_topic = topics.ANALYSIS_INTERACTIVE + DLQ_SUFFIX
    parked = await until(lambda: twin.log.read(dlq_topic, 0, 0, 10))
    assert len(parked) == 1 and b"it crashed" in (parked[0].header("error") or b"")


async def test_lichess_analysis_is_reused_without_searching(twin_factory: Any) -> None:
    twin: Twin = await twin_factory()
    (game_id,) = await _stored(twin, REAL_GAME)
    await twin.start("analysis")
    await request_analysis(twin.ctx, game_id, "batch")
    row = await until(lambda: (a := twin.store.state.analyses[game_id])["status"] == "done" and a)
    assert row["source"] == "lichess" and twin.engine.searches == 0


# --- live commentary -------------------------------------------------------------------------


def _live_moves(plies: int) -> list[LiveMove]:
    board, out = chess.Board(), []
    for ply, san in enumerate(REAL_GAME["moves"].split()[:plies], start=1):
        before = board.fen()
        move = board.parse_san(san)
        board.push(move)
        out.append(
            LiveMove(
                game_id="live1",
                username="matyizom",
                ply=ply,
                uci=move.uci(),
                san=san,
                fen_before=before,
                fen=board.fen(),
                white="matyizom",
                black="veloce",
            )
        )
    return out


async def test_every_live_move_gets_one_line_once_and_speech_failing_costs_only_the_audio(
    twin_factory: Any,
) -> None:
    twin: Twin = await twin_factory(speech=True)
    await twin.start("commentary")
    moves = _live_moves(12)
    for move in moves:
        await twin.ctx.publisher.publish_envelope(topics.LIVE_MOVES, new_event(move, "live1"))
    await until(lambda: len(twin.store.state.commentary) == 12)
    twin.speech.fail = True
    await twin.ctx.publisher.publish_envelope(topics.LIVE_MOVES, new_event(moves[3], "live1"))
    extra = _live_moves(13)[12]
    await twin.ctx.publisher.publish_envelope(topics.LIVE_MOVES, new_event(extra, "live1"))
    await until(lambda: len(twin.store.state.commentary) == 13)
    lines = [p for _, p in await twin.events(topics.COMMENTARY)]
    assert [p.ply for p in lines if isinstance(p, CommentaryPublished)] == list(range(1, 14))
    assert all(twin.store.state.commentary[("live1", n)]["audio"] for n in range(1, 13))
    assert twin.store.state.commentary[("live1", 13)]["audio"] is None  # speech failed
    assert len(twin.speech.spoken) == 12
    assert all(line.text for line in lines if isinstance(line, CommentaryPublished))


# --- problems --------------------------------------------------------------------------------


async def test_puzzles_come_from_an_analysed_game_once_and_are_served_least_recently_first(
    twin_factory: Any,
) -> None:
    twin: Twin = await twin_factory(deep_nodes=100_000, problem_nodes=300_000)
    first = split_pgn(CLASSICS.read_text())[0].pgn
    assert first is not None
    opera = game_from_pgn(first)
    await twin.store.games.store_games([(opera, None, None)], 0.0)
    game_id = opera.id
    await twin.start("analysis", "problems")
    await request_analysis(twin.ctx, game_id, "batch")
    generated = await until(
        lambda: [p for _, p in twin.store.state.scans.items()] and twin.store.state.scans
    )
    assert generated[game_id]["version"] == GENERATOR_VERSION
    found = [p for p in twin.store.state.problems.values() if p["game_id"] == game_id]
    # After 16...Nxb8, 17.Rd8# is the only mate (a back-rank mate).
    mate = [p for p in found if p["solution"] == ["d1d8"]]
    assert mate and mate[0]["ply"] == 32 and "backRankMate" in mate[0]["themes"]
    for puzzle in found:  # each solution is legal from the position after the blunder
        board = chess.Board(puzzle["fen"])
        board.push_uci(puzzle["blunder_uci"])
        for uci in puzzle["solution"]:
            assert chess.Move.from_uci(uci) in board.legal_moves
            board.push_uci(uci)

    async def generated_for() -> list[str]:
        events = [p for _, p in await twin.events(topics.PROBLEMS_GENERATED)]
        return [p.game_id for p in events if isinstance(p, ProblemsGenerated)]

    assert await until(lambda: _when(generated_for, 1)) == [game_id]
    searches = twin.engine.searches
    worker = twin.component("problems")
    assert await worker.generate_game(game_id) == []  # searched once per generator version
    assert twin.engine.searches == searches

    served = [(await problems.serve(twin.ctx))["id"] for _ in range(len(found) + 1)]
    assert sorted(served[: len(found)]) == sorted(p["id"] for p in found)  # each once first
    assert served[-1] == served[0]  # then the least recently served
    with pytest.raises(NotFound):
        await problems.serve(twin.ctx, player="nobody")


# --- matches and robots ----------------------------------------------------------------------


def _seed_positions(twin: Twin) -> None:
    for i, fen in enumerate(MATCH_POSITIONS):
        blunder = min(chess.Board(fen).legal_moves, key=lambda m: m.uci()).uci()
        twin.store.state.problems[f"m{i}-1"] = {
            "id": f"m{i}-1",
            "game_id": f"m{i}",
            "fen": fen,
            "blunder_uci": blunder,
            "solution": [],
            "themes": ["advantage"],
            "white_id": "ana",
            "black_id": "bo",
            "served_count": 0,
            "last_served_at": None,
        }


def _match(twin: Twin, match_id: str) -> rules.Match | None:
    row = twin.store.state.matches.get(match_id)
    return rules.Match.from_json(row["state"]) if row else None


async def test_a_match_with_two_robots_plays_two_rounds_to_the_end(twin_factory: Any) -> None:
    twin: Twin = await twin_factory(match_response_seconds=20, match_vote_seconds=20)
    _seed_positions(twin)
    if recording_mode():  # robots choose by a random seed: record every reply's position
        for fen in MATCH_POSITIONS:
            board = chess.Board(fen)
            board.push(min(board.legal_moves, key=lambda m: m.uci()))  # the round's position
            for move in list(board.legal_moves):
                board.push(move)
                await twin.engine.analyse(board, twin.ctx.settings.match_nodes)
                board.pop()
    await twin.start("matches", "robots", "robot-worker")
    made = await matches.create_match(twin.ctx, rounds=2, robots_per_round=2, source="problems")
    match_id = made["id"]
    for number in (1, 2):

        def current(status: str, n: int = number) -> rules.Round | None:
            state = _match(twin, match_id)
            rnd = state.current() if state else None
            return rnd if rnd and rnd.number == n and rnd.status == status else None

        rnd = await until(lambda: current("responding"))
        moves = sorted(m.uci() for m in chess.Board(rnd.fen).legal_moves)[:10]
        # Ten different answers at once (issue 17, item 13): one is accepted, nine get 409.
        answers = await asyncio.gather(
            *(matches.submit_response(twin.ctx, match_id, number, m, "natural") for m in moves),
            return_exceptions=True,
        )
        assert sum(isinstance(a, dict) for a in answers) == 1
        assert all(isinstance(a, Conflict) for a in answers if not isinstance(a, dict))
        rnd = await until(lambda: current("voting"))
        state = _match(twin, match_id)
        assert state is not None and len(rnd.responses) == 3  # the two robots answered too
        mine = rnd.letters[state.person]
        others = [letter for letter in rnd.letters.values() if letter != mine]
        votes = await asyncio.gather(
            *(matches.submit_vote(twin.ctx, match_id, number, o) for o in others * 3),
            return_exceptions=True,
        )
        assert sum(isinstance(v, dict) for v in votes) == 1
    final = await until(lambda: (m := _match(twin, match_id)) and m.status == "completed" and m)
    assert len(final.rounds) == 2 and all(r.status == "completed" for r in final.rounds)
    first, second = ({r["id"] for r in rnd.robots} for rnd in final.rounds)
    assert len(first) == len(second) == 2 and not first & second  # round 2 excludes round 1's
    assert set(final.ranking) == {final.person} | first | second
    await until(lambda: all(r["state"] == "idle" for r in twin.store.state.robots.values()))


async def test_robots_assigned_before_their_round_is_stored_are_tried_again_not_dropped(
    twin_factory: Any,
) -> None:
    """The fold publishes `round.robots_needed` before it stores the round's start (a crash in
    between publishes again), so the pool's answer can come first. It was dropped, and the
    match waited for ever (a suite run, 2026-12-08): it is now tried again."""
    twin: Twin = await twin_factory()
    worker = matches.MatchesWorker(twin.ctx)
    positions = [{"fen": fen} for fen in MATCH_POSITIONS[:2]]
    created = rules.apply(None, rules.Created("m", "person:you", 2, 1, "problems", positions))
    assert created is not None

    async def store(state: rules.Match) -> None:
        await twin.ctx.store.matches.save("m", state.person, state.status, state.to_json(), 0.0)

    assigned = RoundRobotsAssigned(match_id="m", round=1, robots=[{"id": "r1", "identity": "x"}])
    envelope = new_event(assigned, "m")
    for stored in (None, created):  # not stored at all, then without the round
        if stored is not None:
            await store(stored)
        with pytest.raises(matches.StateBehind):
            await worker.on_assigned(envelope, assigned)
    starting = rules.apply(created, rules.Starting("m", 1))
    assert starting is not None
    await store(starting)
    await worker.on_assigned(envelope, assigned)  # the retry: the round starts
    started = [p for _, p in await twin.events(topics.MATCH_EVENTS) if isinstance(p, RoundStarted)]
    assert [(p.round, [r["id"] for r in p.robots]) for p in started] == [(1, ["r1"])]
    letters = started[0].letters
    after = rules.apply(
        starting, rules.Started("m", 1, [{"id": "r1", "identity": "x"}], letters, 9e9)
    )
    assert after is not None
    await store(after)
    await worker.on_assigned(envelope, assigned)  # redelivered once it started: nothing more
    again = [p for _, p in await twin.events(topics.MATCH_EVENTS) if isinstance(p, RoundStarted)]
    assert len(again) == 1


async def test_the_robot_pool_keeps_its_idle_minimum_and_never_passes_its_maximum(
    twin_factory: Any,
) -> None:
    twin: Twin = await twin_factory(robots_min_idle=1, robots_max=4, robots_idle_release=0)
    pool = robots.RobotPool(twin.ctx)
    counts = await pool.scale()
    assert sum(counts.values()) == min(4, len(counts))
    need = RoundRobotsNeeded(match_id="m", round=1, count=6, exclude_robots=[])
    chosen = await pool.assign(new_event(need, "m"), need)
    assert len(chosen) == 4  # the maximum, though 6 were asked for
    again = await pool.assign(new_event(need, "m"), need)
    assert again == chosen  # asked again: the same robots

    async def published() -> dict[str, tuple[str, str | None, int | None]]:
        """The latest state of each robot on the compacted robot-pool-state topic."""
        return {
            p.robot_id: (p.state, p.match_id, p.round)
            for _, p in await read_topic(twin, topics.ROBOT_POOL_STATE)  # type: ignore[arg-type]
        }

    def stored() -> dict[str, tuple[str, str | None, int | None]]:
        robots = twin.store.state.robots.values()
        return {r["id"]: (r["state"], r["match_id"], r["round"]) for r in robots}

    assert await published() == stored()
    assert {state for state, _, _ in stored().values()} == {"busy"}
    await pool.free("m", 1)
    assert await twin.store.robots.states() == {"idle": 4}
    assert await published() == stored()


# --- issue 17: followed players' new games, and puzzles from every game ----------------------


async def test_the_scheduler_analyses_the_new_games_of_followed_players_only(
    twin_factory: Any,
) -> None:
    """Issue 17, item 1: a followed player's synced games stayed unanalysed."""
    twin: Twin = await twin_factory()
    followed = await _stored(twin, *_games("Bo", 2, seed=11))
    (other,) = await _stored(twin, *_games("Cy", 1, seed=5))
    await ingest.set_followed(twin.ctx, "Bo", True)
    await twin.start("scheduler", "analysis")
    for game_id in followed:
        await until(lambda g=game_id: twin.store.state.analyses.get(g, {}).get("status") == "done")
    assert other not in twin.store.state.analyses
    lanes = {e[1].priority for e in await twin.events(topics.ANALYSIS_BATCH)}
    assert lanes == {"batch"}


async def test_puzzles_for_every_game_queue_the_unanalysed_ones_first(twin_factory: Any) -> None:
    """Issue 17, item 2: without a player, unanalysed games were skipped (0 queued)."""
    twin: Twin = await twin_factory()
    ids = await _stored(twin, *_games("Bo", 2, seed=11))
    accepted = await problems.request_generation(twin.ctx)
    assert accepted["games"] == 2 and accepted["games_queued_for_analysis"] == 2
    assert {twin.store.state.analyses[g]["status"] for g in ids} == {"queued"}
    queued = [p.game_id for _, p in await twin.events(topics.ANALYSIS_BATCH)]
    assert sorted(queued) == sorted(ids)


class _StalledPublisher:
    """A publisher whose log never answers (a stopped broker)."""

    def __init__(self) -> None:
        self.calls = 0

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        await asyncio.Event().wait()


async def test_serving_a_puzzle_never_waits_on_a_stalled_log(twin_factory: Any) -> None:
    """Issue 17, item 8: with the broker stopped, /api/problems/random took 30 s, then 500."""
    twin: Twin = await twin_factory(problems_min_unserved=50)
    _seed_positions(twin)
    stalled = _StalledPublisher()
    twin.ctx.publisher = stalled  # type: ignore[assignment]
    async with asyncio.timeout(1.0):
        view = await problems.serve(twin.ctx, theme="advantage")
    assert view["id"] in twin.store.state.problems
    await until(lambda: stalled.calls == 1)  # the pool-low request is on its way, apart


class _SlowEngine:
    """The recorded engine, a little slower: a job runs long enough to be cancelled."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, inner.name

    async def analyse(self, board: chess.Board, nodes: int, priority: Any = 0) -> Any:
        await asyncio.sleep(0.05)
        return await self.inner.analyse(board, nodes, priority)

    async def analyse_lines(self, *args: Any, **kwargs: Any) -> Any:
        return await self.inner.analyse_lines(*args, **kwargs)


async def test_a_running_analysis_cancelled_stops_and_writes_nothing_more(
    twin_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17, item 7: a queued or running analysis could not be cancelled."""
    twin: Twin = await twin_factory(engines=1, analysis_lease=0.2)  # renewed every 0.05 s
    twin.ctx.evaluator.attach(_SlowEngine(twin.engine))
    game_id, other = await _stored(twin, *_games("Bo", 2, seed=11))
    await twin.start("analysis")
    with pytest.raises(Conflict):
        await analysis.cancel_analysis(twin.ctx, game_id)  # nothing queued yet
    await request_analysis(twin.ctx, game_id, "interactive")
    await until(lambda: twin.store.state.analyses[game_id]["status"] == "running")
    cancelled = await analysis.cancel_analysis(twin.ctx, game_id)
    assert cancelled == {"game_id": game_id, "status": "cancelled", "was": "running"}
    await until(lambda: game_id not in twin.component("analysis").running)  # it stopped
    searches = twin.engine.searches
    await asyncio.sleep(0.3)
    assert twin.engine.searches == searches  # no search after it stopped
    assert twin.store.state.analyses[game_id]["status"] == "cancelled"
    assert (game_id, "deep") not in twin.store.state.evals
    await request_analysis(twin.ctx, other, "batch")
    await analysis.cancel_analysis(twin.ctx, other)  # queued: skipped when it comes
    again = await request_analysis(twin.ctx, game_id, "interactive")  # asked again: it runs
    assert again["status"] == "queued"
    await until(lambda: twin.store.state.analyses[game_id]["status"] == "done")
    assert twin.store.state.analyses[other]["status"] == "cancelled"


async def test_a_sync_paused_by_a_429_says_why_and_when_it_resumes(twin_factory: Any) -> None:
    """Issue 17, item 4: during the pause the sync said only "running" for a minute."""
    twin: Twin = await twin_factory()
    twin.lichess.add_games("Dee", _games("Dee", 3, seed=21))
    twin.lichess.rate_limit_until = 1_900_000_000.0  # 2030-03-17 17:46:40 UTC
    twin.lichess.hold = asyncio.Event()
    await twin.start("ingest", "store")
    sync_id = await ingest.request_sync(twin.ctx, "Dee")
    waiting = await until(lambda: (v := twin.store.syncs.view(sync_id))["notice"] and v)
    assert waiting["status"] == "running"
    assert waiting["notice"] == (
        "Lichess asked kibitz to slow down (HTTP 429); resuming at 17:46:40 UTC"
    )
    twin.lichess.hold.set()
    done = await until(lambda: (v := twin.store.syncs.view(sync_id))["status"] == "done" and v)
    assert done["notice"] is None and done["games_stored"] == 3


async def test_a_round_where_every_answer_is_the_same_move_is_scored_without_a_vote(
    twin_factory: Any,
) -> None:
    """Issue 17, item 15: identical answers made the vote meaningless."""
    from kibitz.events import RoundCompleted, RoundVotingStarted

    twin: Twin = await twin_factory()
    fen = chess.Board(MATCH_POSITIONS[0]).fen()
    move = min(chess.Board(fen).legal_moves, key=lambda m: m.uci()).uci()
    if recording_mode():
        board = chess.Board(fen)
        await twin.engine.analyse(board, twin.ctx.settings.match_nodes)
        board.push_uci(move)
        await twin.engine.analyse(board, twin.ctx.settings.match_nodes)
    state = None
    for event in (
        rules.Created("m", "person:you", 1, 1, "problems", [{"fen": fen}]),
        rules.Starting("m", 1),
        rules.Started("m", 1, [{"id": "r1", "identity": "x"}], {"person:you": "A", "r1": "B"}, 9e9),
        rules.Responded("m", 1, "person:you", move, "same"),
        rules.Responded("m", 1, "r1", move, "same"),
    ):
        state = rules.apply(state, event)
    assert state is not None
    worker = matches.MatchesWorker(twin.ctx)
    await worker.start_voting(None, state)
    published = [p for _, p in await twin.events(topics.MATCH_EVENTS)]
    assert any(isinstance(p, RoundCompleted) for p in published)
    assert not any(isinstance(p, RoundVotingStarted) for p in published)
