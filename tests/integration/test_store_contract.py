"""The store's contract (`kibitz.ports.store`): one suite, run on SQLite, on PostgreSQL and on
the in-memory twin the service tests use, so the twin cannot drift from the real adapters."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import chess
import pytest

from kibitz.adapters.eval_cache_sql import SqlEvalCache
from kibitz.adapters.repositories_sql import SqlRepositories
from kibitz.adapters.store_sql import SqlStore
from kibitz.domain import training
from kibitz.domain.analysis import PlyEval
from kibitz.domain.engine import EngineEval
from kibitz.domain.games import game_from_lichess
from kibitz.domain.judgment import Score
from kibitz.errors import Conflict, GameNotFound, NotFound
from kibitz.ports import EvalCache
from kibitz.ports.store import (
    NewCard,
    PhaseResult,
    ProblemScanResult,
    ScalePolicy,
    Store,
    StoredPuzzle,
)
from tests.fakes.lichess import BASE_TIME_MS, random_game
from tests.support import stored_puzzle
from tests.twins.store import MemoryStore


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def repos(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """(the store's repositories, its evaluation cache), once per implementation."""
    if request.param == "memory":
        memory = MemoryStore()
        yield memory, memory.eval_cache
        return
    url = (
        f"sqlite:///{tmp_path / 'k.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("fresh_pg_url")
    )
    sql = SqlStore(url)
    await asyncio.to_thread(sql.upgrade)
    try:
        yield SqlRepositories(sql), SqlEvalCache(sql)
    finally:
        await sql.aclose()


def _records(count: int, seed: int = 1) -> list[Any]:
    rng = random.Random(seed)
    games = [
        random_game(rng, f"c{seed}{i:05d}", "Ann", f"opp{i}", BASE_TIME_MS + i * 1000)
        for i in range(count)
    ]
    return [game_from_lichess(g, json.dumps(g)) for g in games]


async def test_an_index_counts_into_its_sync_once_however_often_it_is_delivered(
    repos: Any,
) -> None:
    store: Store = repos[0]
    records = _records(3)
    await store.syncs.create_sync("s1", "ann", "Ann")
    await store.syncs.report("s1", "ann", 4, "streamed", None, 10.0)
    items = [(r, "s1", i) for i, r in enumerate(records, start=1)]
    first = await store.games.store_games(items, 11.0)
    assert [new for _, new in first] == [True, True, True]
    again = await store.games.store_games(items[:2], 12.0)  # a redelivery
    assert [new for _, new in again] == [False, False]
    await store.syncs.reject("s1", 4, "not a game", 13.0)
    await store.syncs.reject("s1", 4, "not a game", 14.0)  # redelivered rejection
    resumed = await store.syncs.start("s1", "ann")
    assert resumed == (4, records[-1].played_at_ms)
    assert await store.players.due_for_sync(0.0) == []  # not followed


async def test_an_analysis_lease_is_held_until_it_expires_and_attempts_end_in_failed(
    repos: Any,
) -> None:
    store: Store = repos[0]
    (record,) = _records(1)
    await store.games.store_games([(record, None, None)], 0.0)
    with pytest.raises(GameNotFound):
        await store.analyses.request("nope", "batch", force=False, now=1.0)
    queued = await store.analyses.request(record.id, "batch", force=False, now=1.0)
    assert queued["status"] == "queued"
    moved = await store.analyses.request(record.id, "interactive", force=False, now=2.0)
    assert moved["priority"] == "interactive"

    def claim(owner: str, now: float) -> Any:
        return store.analyses.claim(
            record.id,
            owner,
            "batch",
            force=False,
            now=now,
            lease_seconds=20,
            nodes=(1, 2),
            engine="sf",
        )

    assert await claim("a", 100.0) == "taken"
    assert await claim("b", 110.0) == "a"  # a holds it
    await store.analyses.renew(record.id, "a", 140.0)
    assert await claim("b", 130.0) == "a"
    assert await claim("b", 141.0) == "taken"  # a's lease ran out
    assert await store.analyses.release(record.id, "a", "late", 2) is None  # not a's any more
    assert await store.analyses.release(record.id, "b", "boom", 2) == ("failed", "engine")
    job = await store.analyses.job(record.id)
    assert job is not None and job.status == "failed"

    assert await claim("c", 200.0) == "taken"
    evals = [PlyEval(score=Score(cp=10)) for _ in record.moves_uci]
    result = PhaseResult("deep", evals, None, 2, "engine", {"p": (1, {"x": 1})}, True, "ev1")
    assert not await store.analyses.store_phase(record.id, "b", result, 201.0)  # not b's
    assert await store.analyses.store_phase(record.id, "c", result, 201.0)
    assert await claim("d", 202.0) == "done"
    assert await store.analyses.pending_completion(record.id) == ("ev1", "engine")
    assert await store.analyses.unpublished_completions(201.0, 10) == []  # not before 201
    assert await store.analyses.unpublished_completions(211.0, 10) == [record.id]
    await store.analyses.completion_published(record.id, "ev1")
    assert await store.analyses.unpublished_completions(211.0, 10) == []
    assert await store.analyses.pending_completion(record.id) is None
    assert await store.analyses.missing_results([("p", 1)], 10) == []
    assert await store.analyses.missing_results([("p", 2)], 10) == [record.id]
    stored = await store.analyses.stored(record.id)
    assert stored is not None and stored[1] == "deep" and len(stored[0].evals) == len(evals)


def _puzzle(i: int) -> StoredPuzzle:
    return stored_puzzle(f"g{i}-1")


async def test_concurrent_clients_are_served_distinct_puzzles_least_recently_served_first(
    repos: Any,
) -> None:
    store: Store = repos[0]
    scan = ProblemScanResult("g0", 1, 10, 20, [], 0.5)
    await store.problems.save_scan(scan, [_puzzle(i) for i in range(12)], 5.0)
    await store.problems.save_scan(scan, [_puzzle(0)], 5.0)  # stored once
    served = await asyncio.gather(*(store.problems.serve(None, None, 10.0, 5) for _ in range(12)))
    assert len({view["id"] for view, _ in served}) == 12  # no puzzle served twice
    view, remaining = await store.problems.serve("ann", "short", 20.0, 5)
    assert remaining == 0 and view["id"] in {f"g{i}-1" for i in range(12)}
    with pytest.raises(NotFound):
        await store.problems.serve("nobody", None, 21.0, 5)
    assert await store.problems.solution("g3-1") == (chess.Board().fen(), "f2f3", ["e7e5"])
    assert await store.problems.attempted("g3-1", ended=False, solved=False) == (0, 0)
    assert await store.problems.attempted("g3-1", ended=True, solved=True) == (1, 1)


async def test_robots_are_assigned_once_per_round_within_the_maximum(repos: Any) -> None:
    store: Store = repos[0]
    policy = ScalePolicy(min_idle=1, scale_up_busy=0.8, max_live=5, idle_release=10)
    counts, changes = await store.robots.scale(policy, 0.0)
    assert sum(counts.values()) == len(changes) - len(counts) or sum(counts.values()) <= 5
    chosen, _ = await store.robots.assign("m", 1, 9, set(), 5, 1.0)
    assert len(chosen) == 5
    again, created = await store.robots.assign("m", 1, 9, set(), 5, 2.0)
    assert again == chosen and created == []
    assert await store.robots.states() == {"busy": 5}
    released = await store.robots.release_match("m", 3.0)
    assert sorted(c.robot_id or "" for c in released) == sorted(r["id"] for r in chosen)
    assert await store.robots.states() == {"idle": 5}


async def test_a_tracking_lease_belongs_to_one_owner_until_it_ends(repos: Any) -> None:
    store: Store = repos[0]
    assert await store.tracking.claim("ann", "Ann", {"speech": True}, "a", 10.0, 30.0)
    assert not await store.tracking.claim("ann", "Ann", {}, "b", 20.0, 30.0)
    await store.tracking.renew(["ann"], "a", 100.0)
    assert not await store.tracking.claim("ann", "Ann", {}, "b", 60.0, 30.0)
    await store.tracking.set_state("ann", "a", 61.0, status="ended", end_reason="done")
    assert await store.tracking.claim("ann", "Ann", {}, "b", 62.0, 30.0)
    assert await store.tracking.profile("ann") == {}
    game = await store.tracking.open_game("g1", "ann")
    assert game.last_ply == 0
    assert await store.tracking.game_started("g1", "Ann", "Bo", None)
    assert not await store.tracking.game_started("g1", "Ann", "Bo", None)  # announced once
    await store.tracking.ply_published("g1", 5)
    await store.tracking.ply_published("g1", 3)  # late: never goes back
    assert (await store.tracking.open_game("g1", "ann")).last_ply == 5


async def test_one_commentary_line_per_ply_and_matches_saved_by_state(repos: Any) -> None:
    store: Store = repos[0]
    line = {"game_id": "g", "ply": 1, "uci": "e2e4", "san": "e4", "fen": "x", "text": "t"}
    line |= {"commentator": "engine", "fallback": False}
    assert await store.commentaries.add(line)
    assert not await store.commentaries.add(line)
    assert await store.commentaries.exists("g", 1) and not await store.commentaries.exists("g", 2)
    await store.matches.save("m1", "person:you", "running", {"id": "m1", "n": 1}, 1.0)
    await store.matches.save("m1", "person:you", "completed", {"id": "m1", "n": 2}, 2.0)
    assert await store.matches.state("m1") == {"id": "m1", "n": 2}
    assert await store.matches.running() == []


async def test_the_eval_cache_gives_the_smallest_budget_at_least_the_one_asked(repos: Any) -> None:
    cache: EvalCache = repos[1]
    epd = chess.Board().epd()
    small = EngineEval(Score(cp=20), "e2e4", ("e2e4", "e7e5"), 10, 1000)
    big = EngineEval(Score(cp=30), "d2d4", ("d2d4",), 18, 100_000)
    await cache.keep([(epd, small), (epd, big)])
    await cache.keep([(epd, EngineEval(Score(cp=99), "a2a3", ("a2a3",), 1, 1000))])  # first wins
    assert await cache.lookup([epd], 500) == {epd: small}
    assert await cache.lookup([epd], 5000) == {epd: big}
    assert await cache.lookup([epd, "8/8/8/8/8/8/8/8 w - -"], 200_000) == {}


async def test_of_fifty_racing_answers_and_votes_exactly_one_each_is_claimed(repos: Any) -> None:
    """Issue 17, item 13: concurrent duplicates were both accepted; the store decides now."""
    store: Store = repos[0]
    for kind in ("response", "vote"):
        claims = await asyncio.gather(
            *(store.matches.claim("m1", 1, "person:you", kind) for _ in range(50))
        )
        assert claims.count(True) == 1
    assert await store.matches.claim("m1", 2, "person:you", "response")  # another round
    await store.matches.unclaim("m1", 2, "person:you", "response")
    assert await store.matches.claim("m1", 2, "person:you", "response")  # taken back: free


async def test_a_thousand_serves_of_two_hundred_puzzles_by_fifty_clients_serve_each_five_times(
    repos: Any,
) -> None:
    """Issue 17, item 9: least-recently-served drifted under load (counts 4 to 6)."""
    store: Store = repos[0]
    scan = ProblemScanResult("g0", 1, 10, 20, [], 0.5)
    await store.problems.save_scan(scan, [_puzzle(i) for i in range(200)], 1.0)
    served: list[str] = []

    async def client(n: int) -> None:
        for i in range(20):
            view, _ = await store.problems.serve(None, None, 100.0 + n * 0.001 + i, 5)
            served.append(view["id"])

    await asyncio.gather(*(client(n) for n in range(50)))
    counts = Counter(served)
    assert len(served) == 1000 and len(counts) == 200
    assert set(counts.values()) == {5}


async def test_a_queued_or_running_analysis_is_cancelled_and_its_worker_loses_the_lease(
    repos: Any,
) -> None:
    """Issue 17, item 7: there was no way to cancel an analysis."""
    store: Store = repos[0]
    first, second = _records(2, seed=3)
    await store.games.store_games([(first, None, None), (second, None, None)], 0.0)
    with pytest.raises(Conflict):
        await store.analyses.cancel(first.id)  # nothing queued
    await store.analyses.request(first.id, "batch", force=False, now=1.0)
    assert await store.analyses.cancel(first.id) == "queued"
    claim = {"force": False, "lease_seconds": 20, "nodes": (1, 2), "engine": "sf"}
    assert await store.analyses.claim(first.id, "w", "batch", now=2.0, **claim) == "cancelled"
    await store.analyses.request(second.id, "batch", force=False, now=1.0)
    assert await store.analyses.claim(second.id, "w", "batch", now=2.0, **claim) == "taken"
    assert await store.analyses.renew(second.id, "w", 30.0)
    assert await store.analyses.cancel(second.id) == "running"
    assert not await store.analyses.renew(second.id, "w", 40.0)  # the worker learns it here
    again = await store.analyses.request(first.id, "interactive", force=False, now=3.0)
    assert again["status"] == "queued"  # asked again: it runs


# --- training ----------------------------------------------------------------------------------


def _rated_puzzle(i: int, rating: int, themes: list[str]) -> StoredPuzzle:
    return replace(_puzzle(i), rating=rating, themes=themes)


async def test_a_first_attempt_is_rated_once_however_many_arrive_at_once(repos: Any) -> None:
    store: Store = repos[0]
    scan = ProblemScanResult("g0", 1, 10, 20, [], 0.5)
    await store.problems.save_scan(
        scan, [_rated_puzzle(i, 1300 + 100 * i, ["fork"]) for i in range(4)], 5.0
    )
    results = await asyncio.gather(
        *(store.training.rate_attempt("ann", "g0-1", True, 10.0, training.rate) for _ in range(12))
    )
    assert sum(1 for r in results if r is not None and r[2]) == 1  # one first attempt
    start = training.Rating(training.START_RATING, training.START_RD, training.START_VOL)
    solver, puzzle = training.rate(start, training.Rating(1300, 350, 0.06), True)
    rating, rated, best = await store.training.solver("ann")
    assert rated == 1 and rating.rating == pytest.approx(solver.rating)
    assert rating.rd == pytest.approx(solver.rd) and best == 0
    # The puzzle's rating moved: it is served within a window around its new rating only.
    view, _ = await store.problems.serve(
        None, None, 20.0, 5, (puzzle.rating - 1, puzzle.rating + 1)
    )
    assert view["id"] == "g0-1"
    assert await store.training.rate_attempt("ann", "nope", True, 11.0, training.rate) is None
    assert await store.training.streak_ended("ann", 7) == 7
    assert await store.training.streak_ended("ann", 3) == 7


async def test_cards_are_stored_once_and_a_stale_review_writes_nothing(repos: Any) -> None:
    store: Store = repos[0]
    schedule = training.new_schedule(100.0)
    cards = [
        NewCard(
            id=f"ann:g1:{ply}",
            player_id="ann",
            kind="mistake",
            game_id="g1",
            ply=ply,
            fen=chess.Board().fen(),
            schedule=schedule,
            due=100.0 + ply,
            created=50.0,
            played_uci="f2f3",
            best_uci="e2e4",
            judgment="Blunder",
            loss=0.3,
        )
        for ply in (1, 3, 5)
    ]
    assert await store.training.add_cards("g1", ["ann"], cards) == 3
    assert await store.training.add_cards("g1", ["ann"], cards[:1]) == 0
    due, count, total = await store.training.due("ann", 104.0, 10)
    assert [c.ply for c in due] == [1, 3] and (count, total) == (2, 3)
    card = due[0]
    new, when = training.review(card.schedule, True, 104.0)
    reviewed = await asyncio.gather(
        *(store.training.review(card, "e2e4", True, new, when, 104.0) for _ in range(8))
    )
    assert reviewed.count(True) == 1  # the others read the card before that review
    after = await store.training.card(card.id)
    assert after is not None and after.reviews == 1 and after.due == when
    assert await store.training.known_answer(card.id, "d2d4") is None
    await store.training.remember_answer(card.id, "d2d4", True, 0.01)
    assert await store.training.known_answer(card.id, "d2d4") == (True, 0.01)
