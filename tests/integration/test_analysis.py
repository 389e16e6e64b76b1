"""Analysis end to end on the real stores, the embedded log and Debian's Stockfish."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from kibitz import topics
from kibitz.adapters.store_models import Analysis, MoveEval, PluginResult
from kibitz.domain.analysis import BUILTIN_PLUGINS, GameInput
from kibitz.errors import GameNotFound
from kibitz.read.analysis import analysis_view
from kibitz.runtime.bootstrap import Container
from kibitz.runtime.consumer import DLQ_SUFFIX, RetryPolicy
from kibitz.services import analysis
from kibitz.services.analysis import request_analysis, request_player_analysis
from kibitz.services.ingest import request_sync
from tests.fakes.lichess import FakeLichess
from tests.support import running, settings_for, wait_for_sync

FIXTURES = Path(__file__).parent.parent / "fixtures"
SMALL = {"quick_nodes": 1500, "deep_nodes": 6000}


async def _load_games(container: Container, fake: FakeLichess, user: str) -> list[str]:
    view = await wait_for_sync(container, await request_sync(container.ctx, user))
    assert view["status"] == "done"
    return [g["id"] for g in fake.users[user.lower()]]


async def wait_analysed(container: Container, game_id: str, timeout: float = 120) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            view = await container.sql.read(lambda s: analysis_view(s, game_id))
            if view["status"] in ("done", "failed"):
                return view
            await asyncio.sleep(0.05)


async def test_quick_results_then_deep_results_then_the_cache_spares_the_engine(
    tmp_path: Path, database_url: str, fake_lichess: FakeLichess
) -> None:
    games = fake_lichess.add_user("Ana", 2, seed=3)
    settings = settings_for(tmp_path, database_url, fake_lichess.url, engines=2, **SMALL)
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        first, second = await _load_games(container, fake_lichess, "Ana")
        queued = await request_analysis(container.ctx, first, "interactive")
        assert queued["status"] == "queued"
        seen_phases = set()
        async with asyncio.timeout(120):
            while True:
                view = await container.sql.read(lambda s: analysis_view(s, first))
                if view.get("results_phase"):
                    seen_phases.add(view["results_phase"])
                if view["status"] == "done":
                    break
                await asyncio.sleep(0.01)
        assert seen_phases >= {"deep"}
        plies = len(games[0]["moves"].split())
        assert view["phase"] == "deep" and view["source"] == "engine"
        assert view["quick_done_at"] <= view["finished_at"]
        assert set(view["results"]) == {p.name for p in BUILTIN_PLUGINS}
        assert len(view["evals"]) == plies
        assert view["nodes"] == {"quick": 1500, "deep": 6000}
        # The starting position was searched too: about level, White's side.
        assert view["start"] is not None and view["start"]["mate"] is None
        assert -150 < view["start"]["cp"] < 150
        # The API's read is the same whichever way the store takes (PostgreSQL: statements
        # on its asyncio pool), with or without the evaluations; a game never analysed, none.
        assert (await container.sql.hot() is None) == container.sql.is_sqlite
        assert await container.reader.analysis(first) == view
        brief = await container.reader.analysis(first, with_evals=False)
        assert "evals" not in brief and brief == {k: v for k, v in view.items() if k != "evals"}
        assert (await container.reader.analysis(second))["status"] == "none"
        with pytest.raises(GameNotFound):
            await container.reader.analysis("nosuchgame")

        def counts(session: Any) -> tuple[int, int]:
            evals = session.scalar(
                select(func.count()).select_from(MoveEval).where(MoveEval.game_id == first)
            )
            results = session.scalar(
                select(func.count()).select_from(PluginResult).where(PluginResult.game_id == first)
            )
            return int(evals), int(results)

        # Both phases' evaluations are kept; one result per plugin version.
        assert await container.sql.read(counts) == (2 * plies, len(BUILTIN_PLUGINS))

        # Analysing again with force: every position is in the cache, no search runs.
        engines = container.engines
        assert engines is not None
        searches = engines.searches
        await request_analysis(container.ctx, first, "interactive", force=True)
        await asyncio.sleep(0.2)
        again = await wait_analysed(container, first)
        assert again["status"] == "done"
        assert engines.searches == searches
        assert again["results"]["judgments"] == view["results"]["judgments"]
        assert await container.sql.read(counts) == (2 * plies, len(BUILTIN_PLUGINS))

        # A whole player's games in the batch lane.
        assert await request_player_analysis(container.ctx, "Ana") == 1
        assert (await wait_analysed(container, second))["status"] == "done"


async def test_lichess_server_analysis_is_used_and_costs_no_engine_time(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    export = json.loads((FIXTURES / "lichess_real_analysis.ndjson").read_text().splitlines()[0])
    fake_lichess.users["penguingim1"] = [export]
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url, engines=1)
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        await wait_for_sync(container, await request_sync(container.ctx, "penguingim1"))
        await request_analysis(container.ctx, export["id"], "interactive")
        view = await wait_analysed(container, export["id"])
        assert container.engines is not None and container.engines.searches == 0
    assert view["source"] == "lichess"
    judged = {m["ply"]: m["judgment"] for m in view["results"]["judgments"]["moves"]}
    expected = {
        i + 1: e["judgment"]["name"] for i, e in enumerate(export["analysis"]) if "judgment" in e
    }
    assert judged == expected
    assert view["results"]["judgments"]["white"]["acpl"] == 30


async def test_the_interactive_lane_overtakes_queued_batch_work(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    fake_lichess.add_user("Bo", 7, seed=11)
    settings = _one_engine(tmp_path, fake_lichess)
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        ids = await _load_games(container, fake_lichess, "Bo")
        urgent, batch = ids[0], ids[1:]
        for game_id in batch:
            await request_analysis(container.ctx, game_id, "batch")
        await wait_running(container)  # batch work is under way

        done_before = await container.sql.read(_finished)
        await request_analysis(container.ctx, urgent, "interactive")
        urgent_view = await wait_analysed(container, urgent)
        done_by_then = await container.sql.read(_finished)
        statuses = await container.sql.read(_statuses)
    assert urgent_view["status"] == "done"
    # The batch games are done or still in the queue, none lost or failed (how a queue drains
    # to the end is another test's; here only the order matters).
    assert {statuses[g] for g in batch} <= {"done", "queued", "running"}
    overtaken = [g for g in batch if g not in done_by_then]
    # At most the one search in flight on the single engine may finish a batch game first.
    assert len(done_by_then - done_before - {urgent}) <= 1
    assert overtaken, "the interactive game finished ahead of queued batch games"


class _Broken:
    name = "broken"
    version = 1
    needs = frozenset({"evals"})

    def run(self, game: GameInput) -> dict[str, Any]:
        raise ValueError("this plugin always fails")


async def test_a_failing_job_retries_with_backoff_then_lands_on_the_dlq_with_its_reason(
    tmp_path: Path, fake_lichess: FakeLichess, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_lichess.add_user("Cy", 1, seed=5)
    monkeypatch.setattr(analysis, "PLUGINS", (*BUILTIN_PLUGINS, _Broken()))
    monkeypatch.setattr(analysis, "RETRY", RetryPolicy(max_attempts=3, base_delay=0.05))
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url, **SMALL)
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        (game_id,) = await _load_games(container, fake_lichess, "Cy")
        await request_analysis(container.ctx, game_id, "interactive")
        view = await wait_analysed(container, game_id)
        dlq = await _dlq(container, topics.ANALYSIS_INTERACTIVE)
    assert view["status"] == "failed" and view["attempts"] == 3
    assert "this plugin always fails" in view["error"]
    assert len(dlq) == 1 and b"this plugin always fails" in (dlq[0].header("error") or b"")


async def test_a_job_over_its_time_limit_is_cancelled_and_retried(
    tmp_path: Path, fake_lichess: FakeLichess, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_lichess.add_user("Di", 1, seed=9)
    monkeypatch.setattr(analysis, "RETRY", RetryPolicy(max_attempts=2, base_delay=0.05))
    settings = settings_for(
        tmp_path,
        f"sqlite:///{tmp_path / 'k.db'}",
        fake_lichess.url,
        engines=1,
        quick_nodes=50_000_000,
        deep_nodes=50_000_000,
        analysis_timeout=0.5,
    )
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        (game_id,) = await _load_games(container, fake_lichess, "Di")
        await request_analysis(container.ctx, game_id, "interactive")
        view = await wait_analysed(container, game_id)
        dlq = await _dlq(container, topics.ANALYSIS_INTERACTIVE)
    assert view["status"] == "failed" and view["attempts"] == 2
    assert "timed out" in view["error"]
    assert len(dlq) == 1 and b"TimeoutError" in (dlq[0].header("error") or b"")


async def test_an_engine_killed_mid_game_is_restarted_and_the_game_completes(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    fake_lichess.add_user("Ed", 1, seed=13)
    settings = settings_for(
        tmp_path,
        f"sqlite:///{tmp_path / 'k.db'}",
        fake_lichess.url,
        engines=1,
        quick_nodes=50_000,  # long enough a search to be killed in the middle of one
        deep_nodes=50_000,
    )
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        (game_id,) = await _load_games(container, fake_lichess, "Ed")
        engines = container.engines
        assert engines is not None
        await request_analysis(container.ctx, game_id, "interactive")
        async with asyncio.timeout(60):
            while engines.searches < 3:
                await asyncio.sleep(0.01)
        os.kill(engines.pids()[0], signal.SIGKILL)
        view = await wait_analysed(container, game_id)
    assert view["status"] == "done"
    assert engines.restarts >= 1


def _finished(session: Any) -> set[str]:
    return set(session.scalars(select(Analysis.game_id).where(Analysis.status == "done")))


def _statuses(session: Any) -> dict[str, str]:
    return {g: status for g, status in session.execute(select(Analysis.game_id, Analysis.status))}


async def wait_running(container: Container, timeout: float = 60) -> None:
    """Until some analysis is running."""
    async with asyncio.timeout(timeout):
        while "running" not in (await container.sql.read(_statuses)).values():
            await asyncio.sleep(0.05)


def _one_engine(tmp_path: Path, fake: FakeLichess) -> Any:
    """One engine and budgets large enough for batch games to queue up behind each other."""
    return settings_for(
        tmp_path,
        f"sqlite:///{tmp_path / 'k.db'}",
        fake.url,
        engines=1,
        quick_nodes=3000,
        deep_nodes=30000,
    )


async def _dlq(container: Container, topic: str, timeout: float = 30) -> list[Any]:
    """The DLQ's records once it has any (the job's row is marked failed just before the runtime
    parks the message)."""
    log = container.ctx.event_log
    async with asyncio.timeout(timeout):
        while True:
            ends = await log.end_offsets(topic + DLQ_SUFFIX)
            if any(ends.values()):
                return [
                    r
                    for p, end in ends.items()
                    for r in await log.read(topic + DLQ_SUFFIX, p, 0, end)
                ]
            await asyncio.sleep(0.05)


class _Extra:
    name = "extra"
    version = 2
    needs = frozenset({"evals"})

    def run(self, game: GameInput) -> dict[str, Any]:
        return {"plies": len(game.evals)}


async def test_the_scheduler_fills_a_new_plugin_version_without_searching_again(
    tmp_path: Path, fake_lichess: FakeLichess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kibitz.services.scheduler import missing_plugin_results

    games = fake_lichess.add_user("Flo", 1, seed=17)
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url, **SMALL)
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        (game_id,) = await _load_games(container, fake_lichess, "Flo")
        await request_analysis(container.ctx, game_id, "batch")
        assert (await wait_analysed(container, game_id))["status"] == "done"
        assert await missing_plugin_results(container.ctx) == []
        engines = container.engines
        assert engines is not None
        searches = engines.searches
        # A new plugin version is deployed: only it runs, on the stored evaluations.
        monkeypatch.setattr(analysis, "PLUGINS", (*BUILTIN_PLUGINS, _Extra()))
        assert await missing_plugin_results(container.ctx) == [game_id]
        async with asyncio.timeout(60):
            while "extra" not in (view := await wait_analysed(container, game_id))["results"]:
                await asyncio.sleep(0.05)
    assert view["results"]["extra"]["plies"] == len(games[0]["moves"].split())
    assert view["results"]["extra"]["_version"] == 2
    assert engines.searches == searches


async def test_asking_for_a_game_queued_in_batch_moves_it_ahead_of_the_batch(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    fake_lichess.add_user("Gil", 6, seed=23)
    settings = _one_engine(tmp_path, fake_lichess)
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        ids = await _load_games(container, fake_lichess, "Gil")
        assert await request_player_analysis(container.ctx, "Gil") == 6
        await wait_running(container)

        done_before = await container.sql.read(_finished)
        pending = [g for g in ids if g not in done_before]
        assert len(pending) >= 3
        moved = pending[-1]
        view = await request_analysis(container.ctx, moved, "interactive")
        assert view["priority"] == "interactive"
        assert (await wait_analysed(container, moved))["status"] == "done"
        done_by_then = await container.sql.read(_finished)
        statuses = await container.sql.read(_statuses)
    assert {statuses[g] for g in ids} <= {"done", "queued", "running"}
    overtaken = [g for g in pending if g != moved and g not in done_by_then]
    assert len(done_by_then - done_before - {moved}) <= 1
    assert overtaken


async def test_a_pgn_with_lichess_evals_is_analysed_from_them_without_searching(
    tmp_path: Path,
) -> None:
    from kibitz.read.games import get_sync
    from kibitz.services.ingest import import_pgn

    text = (FIXTURES / "lichess_annotated_fishnet.pgn").read_text()
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", engines=1)
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        import_id = await import_pgn(container.ctx, text, filename="annotated.pgn")
        async with asyncio.timeout(60):
            while (await container.sql.read(lambda s: get_sync(s, import_id)))["status"] != "done":
                await asyncio.sleep(0.05)
        await request_analysis(container.ctx, "TaHSAsYD", "interactive")
        view = await wait_analysed(container, "TaHSAsYD")
        assert container.engines is not None and container.engines.searches == 0
    assert view["source"] == "pgn"
    judged = view["results"]["judgments"]
    counts = {
        k: judged["white"][k] + judged["black"][k] for k in ("inaccuracy", "mistake", "blunder")
    }
    assert counts == {"inaccuracy": 12, "mistake": 4, "blunder": 5}  # as the PGN says


async def test_one_game_asked_for_on_both_lanes_and_again_is_analysed_exactly_once(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    """Requests for one game on both lanes and a redelivered one, handled concurrently by one
    process (issue 16, item 9): one run, one `analysis.completed`."""
    from kibitz.events import AnalysisRequested
    from tests.support import read_topic, until

    fake_lichess.add_user("Una", 1, seed=11)
    settings = settings_for(
        tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url, engines=2, **SMALL
    )
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        (game,) = await _load_games(container, fake_lichess, "Una")
        requests = [
            (topics.ANALYSIS_BATCH, "batch"),
            (topics.ANALYSIS_INTERACTIVE, "interactive"),
            (topics.ANALYSIS_INTERACTIVE, "interactive"),
            (topics.ANALYSIS_BATCH, "batch"),
        ]
        await asyncio.gather(
            *(
                container.ctx.publisher.publish(
                    topic, AnalysisRequested(game_id=game, priority=lane), key=game
                )
                for topic, lane in requests
            )
        )
        assert (await wait_analysed(container, game))["status"] == "done"
        runner = container.supervisor.runners["analysis"]  # type: ignore[union-attr]
        await until(lambda: _true(runner.handled >= len(requests)), timeout=120)
        completed = [
            p
            for _, p in await read_topic(container, topics.ANALYSIS_COMPLETED)
            if p.game_id == game
        ]
        attempts = await container.sql.read(lambda s: s.get(Analysis, game).attempts)
    assert len(completed) == 1
    assert attempts == 1


async def _true(value: bool) -> bool:
    return value


async def test_a_crash_between_done_and_its_event_publishes_the_event_once_on_redelivery(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    """ "done" is stored with the id of its `analysis.completed`; when publishing it fails (the
    process died), the request comes back and the event is published then, once."""
    from tests.support import read_topic, until

    fake_lichess.add_user("Vic", 1, seed=12)
    settings = settings_for(
        tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url, engines=2, **SMALL
    )
    async with running(settings, ["ingest", "store", "analysis"]) as container:
        (game,) = await _load_games(container, fake_lichess, "Vic")
        publisher = container.ctx.publisher
        real = publisher.publish_envelope
        failures = 0

        async def crash_once(topic: str, envelope: Any) -> None:
            nonlocal failures
            if topic == topics.ANALYSIS_COMPLETED and not failures:
                failures += 1
                raise ConnectionError("the process died before the event left")
            await real(topic, envelope)

        publisher.publish_envelope = crash_once  # type: ignore[method-assign]
        await request_analysis(container.ctx, game, "interactive")
        async with asyncio.timeout(120):
            while True:  # until the event is out and its pending id forgotten
                events = [
                    (e.id, p.game_id)
                    for e, p in await read_topic(container, topics.ANALYSIS_COMPLETED)
                ]
                pending = await container.sql.read(
                    lambda s: s.get(Analysis, game).completion_event_id
                )
                if events and pending is None:
                    break
                await asyncio.sleep(0.05)
        runner = container.supervisor.runners["analysis"]  # type: ignore[union-attr]
        await until(lambda: _true(runner.handled >= 1), timeout=120)
        events = [
            (e.id, p.game_id) for e, p in await read_topic(container, topics.ANALYSIS_COMPLETED)
        ]
    assert failures == 1
    assert [g for _, g in events] == [game]
