"""Live: the tracker follows a game on the fake Lichess server; the commentary comments it."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kibitz import topics
from kibitz.adapters.store_models import Commentary, TrackedPlayer, TrackingSession
from kibitz.api.tracker_app import create_tracker_app
from kibitz.events import LiveMove, LiveSession, TrackingRequested, new_event
from kibitz.runtime.bootstrap import Container
from kibitz.runtime.cluster import free_port
from kibitz.services.tracker import Tracker
from tests.fakes.lichess import FakeLichess
from tests.support import read_topic, running, settings_for, until

FIXTURES = Path(__file__).parent.parent / "fixtures"
# matyizom vs veloce (Lichess game NchH5KBj, 47 plies): Lichess's analysis judges Black's 12th
# move, 12...Nxd7 (ply 24), a blunder: "Qxg5 was best".
REAL_GAME = json.loads((FIXTURES / "lichess_real_analysis.ndjson").read_text().splitlines()[1])
SANS: list[str] = REAL_GAME["moves"].split()
LIVE = {"track_wait": 0.5, "track_poll": 0.05}


async def _ended(container: Container, game_id: str) -> bool:
    row = await container.sql.read(lambda s: s.get(TrackingSession, game_id))
    return row is not None and row.ended_at is not None


async def _lines(container: Container, game_id: str) -> list[Commentary]:
    return list(
        await container.sql.read(
            lambda s: s.scalars(
                select(Commentary).where(Commentary.game_id == game_id).order_by(Commentary.ply)
            ).all()
        )
    )


@pytest.fixture
async def tracker_http(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """An HTTP client of a tracker's own interface (POST /start-tracking, GET /health)."""
    clients: list[httpx.AsyncClient] = []

    def connect(tracker: Tracker) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=create_tracker_app(tracker))
        client = httpx.AsyncClient(transport=transport, base_url="http://tracker")
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.aclose()


async def test_every_ply_reaches_live_moves_once_in_order_across_a_disconnect(
    tmp_path: Path, database_url: str, fake_lichess: FakeLichess, tracker_http: Any
) -> None:
    game = fake_lichess.add_live_game(
        "matyizom", SANS, opponent="veloce", pace=0.03, start_in=0.3, drop_at_ply=20
    )
    # The game starts 0.3 s after the tracker first asks: the tracker must still be waiting
    # then, however long its first status request took on a loaded machine (0.5 s, from
    # before that request, once ran out first and the game was never followed).
    wait = {**LIVE, "track_wait": 3.0}
    settings = settings_for(tmp_path, database_url, fake_lichess.url, **wait)
    async with running(settings, ["tracker"]) as container:
        http = tracker_http(container.component("tracker"))
        first = await http.post("/start-tracking", json={"username": "matyizom"})
        assert first.json() == {"status": "tracking_started", "username": "matyizom"}
        again = await http.post("/start-tracking", json={"username": "MATYIZOM"})
        assert again.json()["status"] == "already_tracking"
        assert (await http.get("/health")).json() == {"status": "ok", "active_trackers": 1}

        await until(lambda: _ended(container, game.id), timeout=30)
        moves = [p for _, p in await read_topic(container, topics.LIVE_MOVES)]
        assert all(isinstance(m, LiveMove) for m in moves)
        assert [m.ply for m in moves] == list(range(1, len(SANS) + 1))
        assert [m.san for m in moves] == SANS
        assert [m.uci for m in moves] == game.ucis
        assert moves[-1].fen == game.fens[-1]
        assert (moves[0].white, moves[0].black) == ("matyizom", "veloce")
        assert (moves[9].white_clock, moves[9].black_clock) == game.clocks[10]
        streams = [r for r in fake_lichess.requests if r["path"].startswith("/api/stream/game")]
        assert len(streams) >= 2  # the stream was cut at ply 20 and opened again

        sessions = [p for _, p in await read_topic(container, topics.LIVE_SESSIONS)]
        assert [(s.state, s.result) for s in sessions if isinstance(s, LiveSession)] == [
            ("started", None),
            ("ended", "1-0"),
        ]

        async def cleaned_up() -> bool:
            health = (await http.get("/health")).json()
            return bool(health["active_trackers"] == 0)

        await until(cleaned_up, timeout=30)
        row = await container.sql.read(lambda s: s.get(TrackedPlayer, "matyizom"))
        assert row is not None and row.status == "ended" and row.end_reason.startswith("no game")
        # Tracking again after the end starts a new task.
        assert (await http.post("/start-tracking", json={"username": "matyizom"})).json()[
            "status"
        ] == "tracking_started"
        bad = await http.post("/start-tracking", json={"username": "no spaces allowed"})
        assert bad.status_code == 422 and "not a valid Lichess username" in bad.json()["detail"]


async def test_tracking_requests_older_than_five_minutes_are_ignored(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url, **LIVE)
    async with running(settings, ["tracker"]) as container:
        stale = new_event(TrackingRequested(username="OldNews"), "oldnews")
        stale = stale.model_copy(
            update={"occurred_at": datetime.now(UTC) - timedelta(minutes=5, seconds=5)}
        )
        fresh = new_event(TrackingRequested(username="Fresh"), "fresh")
        await container.ctx.publisher.publish_envelope(topics.TRACKING_REQUESTED, stale)
        await container.ctx.publisher.publish_envelope(topics.TRACKING_REQUESTED, fresh)

        async def started(name: str) -> bool:
            row = await container.sql.read(lambda s: s.get(TrackedPlayer, name))
            return row is not None

        # One partition, in order: once the fresh request is handled, the stale one was too.
        await until(lambda: started("fresh"), timeout=20)
        assert not await started("oldnews")


async def test_every_move_gets_one_line_and_a_blunder_names_the_better_move(
    tmp_path: Path, fake_lichess: FakeLichess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kibitz")
    # The stream runs late, as Lichess's does for spectators of an ongoing game (3 to 60 s
    # there, scaled down here): every move still gets one line, and the end still arrives
    # (issue 17, item 18).
    game = fake_lichess.add_live_game("matyizom", SANS, opponent="veloce", pace=0.02, delay=0.6)
    settings = settings_for(
        tmp_path,
        f"sqlite:///{tmp_path / 'k.db'}",
        fake_lichess.url,
        engines=1,
        commentary_nodes=60_000,
        **LIVE,
    )
    async with running(settings, ["tracker", "commentary"]) as container:
        await container.component("tracker").start("matyizom", {"rating": 2000})

        async def all_commented() -> bool:
            return len(await _lines(container, game.id)) == len(SANS)

        async def all_published() -> bool:  # each line is stored, then published
            return len(await read_topic(container, topics.COMMENTARY)) >= len(SANS)

        await until(all_commented, timeout=90)
        await until(all_published, timeout=30)
        await until(lambda: _ended(container, game.id), timeout=30)
        lines = await _lines(container, game.id)
        published = [p for _, p in await read_topic(container, topics.COMMENTARY)]
    assert [c.ply for c in lines] == list(range(1, len(SANS) + 1))
    assert sorted(p.ply for p in published) == [c.ply for c in lines]  # one event per ply
    assert all(c.commentator == "engine" and c.text for c in lines)
    assert all(c.san in c.text for c in lines)
    blunders = [c for c in lines if c.judgment == "Blunder"]
    assert any(c.ply == 24 for c in blunders), [(c.ply, c.judgment) for c in lines]
    for c in blunders:
        assert "blunder" in c.text.lower() and c.best_san and c.best_san in c.text, c.text
    assert all("blunder" not in c.text.lower() for c in lines if c.judgment != "Blunder")
    assert lines[0].text != lines[1].text
    assert any("Scandinavian Defense" in c.text for c in lines[:4])
    # One info line per published move and per line of commentary (issue 17, item 19).
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    moves = [m for m in logged if m.startswith(f"move game={game.id} ")]
    said = [m for m in logged if m.startswith(f"commentary game={game.id} ")]
    assert len(moves) == len(said) == len(SANS)
    assert f"ply=1 san={SANS[0]}" in moves[0]


class FakeLlm:
    """An OpenAI-compatible chat endpoint that answers `answer_first` requests, then hangs."""

    def __init__(self, answer_first: int) -> None:
        self.answer_first = answer_first
        self.requests: list[dict[str, Any]] = []
        self.port = free_port()
        self._release = threading.Event()

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if len(self.requests) > self.answer_first:
            await asyncio.get_running_loop().run_in_executor(None, self._release.wait, 60)
        facts = json.loads(body["messages"][-1]["content"])
        content = f"What a moment: {facts['move']}!"
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": content}}]})

    def __enter__(self) -> FakeLlm:
        app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self._release.set()
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def hanging_llm() -> Iterator[FakeLlm]:
    with FakeLlm(answer_first=3) as llm:
        yield llm


async def test_an_llm_that_hangs_gives_way_to_the_default_commentator(
    tmp_path: Path, fake_lichess: FakeLichess, hanging_llm: FakeLlm
) -> None:
    plies = 10
    # The game starts 0.3 s after the tracker first asks and the tracker waits 3 s for it, as
    # in the disconnect test: a 0.2 s game that began with the first status request could be
    # over before a loaded machine followed it (this test once waited 180 s for its lines).
    game = fake_lichess.add_live_game("matyizom", SANS[:plies], pace=0.02, start_in=0.3)
    settings = settings_for(
        tmp_path,
        f"sqlite:///{tmp_path / 'k.db'}",
        fake_lichess.url,
        engines=1,
        commentary_nodes=20_000,
        llm_url=f"http://127.0.0.1:{hanging_llm.port}/v1",
        llm_timeout=0.5,
        **{**LIVE, "track_wait": 3.0},
    )
    async with running(settings, ["tracker", "commentary"]) as container:
        await container.component("tracker").start("matyizom")

        async def all_commented() -> bool:
            return len(await _lines(container, game.id)) == plies

        await until(all_commented, timeout=180)  # generous: a loaded machine
        lines = await _lines(container, game.id)
    assert [c.commentator for c in lines[:3]] == ["llm"] * 3
    assert lines[0].text == "What a moment: 1. e4!"
    assert all(c.commentator == "engine" for c in lines[3:])
    # Three timeouts open the circuit; the rest do not wait for the LLM at all.
    assert [c.fallback for c in lines[3:6]] == ["LLM timeout: ReadTimeout"] * 3
    assert all(c.fallback == "LLM circuit open" for c in lines[6:])
    assert len(hanging_llm.requests) == 6
    # The LLM hangs for 60 s: a line written well within that did not wait for it (how much
    # within depends on the machine's load, so the bound is generous: speed is for bench/).
    for c in lines:
        assert c.move_at is not None
        assert (c.created_at - c.move_at).total_seconds() < settings.llm_timeout + 20.0


async def test_the_api_reaches_the_tracker_over_http_and_falls_back_to_the_topic(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    from kibitz.services.tracker import request_tracking

    db = f"sqlite:///{tmp_path / 'k.db'}"
    port = free_port()
    tracker_side = settings_for(tmp_path, db, fake_lichess.url, **LIVE)
    api_side = tracker_side.model_copy(update={"tracker_url": f"http://127.0.0.1:{port}"})
    async with (
        running(tracker_side, ["tracker"]) as tracker_container,
        running(api_side, []) as api,
    ):
        tracker = tracker_container.component("tracker")
        server = uvicorn.Server(
            uvicorn.Config(
                create_tracker_app(tracker), host="127.0.0.1", port=port, log_level="critical"
            )
        )
        serving = asyncio.create_task(server.serve())
        await until(lambda: asyncio.sleep(0, server.started), timeout=30)
        answer = await request_tracking(api.ctx, api.component("tracker"), "ViaHttp", {})
        assert answer == {"status": "tracking_started", "username": "ViaHttp", "via": "tracker"}
        assert "viahttp" in tracker.tasks
        server.should_exit = True
        await serving

        # The tracker's HTTP interface is down: the request goes over the topic instead.
        answer = await request_tracking(api.ctx, None, "ViaTopic", {"speech": True})
        assert answer["status"] == "requested" and answer["via"] == "topic"

        async def tracked() -> bool:
            return "viatopic" in tracker.tasks

        await until(tracked, timeout=20)
        row = await api.sql.read(lambda s: s.get(TrackedPlayer, "viatopic"))
        assert row is not None and row.profile == {"speech": True}
