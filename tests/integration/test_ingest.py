"""Ingest end to end on the real stores: fake Lichess → ingest → games.raw → store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kibitz.adapters.lichess_http import LichessClient, RequestGate
from kibitz.adapters.store_models import Game
from kibitz.adapters.store_sql import SqlStore
from kibitz.clock import ManualClock, SystemClock
from kibitz.errors import GameNotFound
from kibitz.read.games import game_detail, get_game
from kibitz.services.ingest import request_sync
from tests.fakes.lichess import FakeLichess
from tests.support import running, settings_for, wait_for_sync


async def _count_games(container: object) -> int:
    store = container.sql  # type: ignore[attr-defined]
    return int(await store.read(lambda s: s.scalar(select(func.count()).select_from(Game))))


async def test_a_thousand_games_store_exactly_once_and_reimport_adds_nothing(
    tmp_path: Path, database_url: str, fake_lichess: FakeLichess
) -> None:
    fake_lichess.add_user("Alice", 1000)
    settings = settings_for(tmp_path, database_url, fake_lichess.url)
    async with running(settings, ["ingest", "store"]) as container:
        first = await wait_for_sync(container, await request_sync(container.ctx, "Alice"))
        assert first["status"] == "done"
        assert (first["games_received"], first["games_stored"], first["games_new"]) == (
            1000,
            1000,
            1000,
        )
        assert await _count_games(container) == 1000
        # A game's page reads the same whichever way the store takes (PostgreSQL: one
        # statement on its asyncio pool), and an unknown id is not found either way.
        assert (await container.sql.hot() is None) == container.sql.is_sqlite
        for game in fake_lichess.users["alice"][::97]:
            detail = await container.reader.game(game["id"])
            assert detail == await container.sql.read(
                lambda s, gid=game["id"]: game_detail(get_game(s, gid))
            )
            assert detail["moves_san"] == game["moves"].split()
            assert detail["clocks_cs"] == game["clocks"] and detail["played_at"]
        with pytest.raises(GameNotFound):
            await container.reader.game("nosuchgame")
        again = await wait_for_sync(container, await request_sync(container.ctx, "alice"))
        assert (again["games_stored"], again["games_new"]) == (1000, 0)
        assert await _count_games(container) == 1000
    request = fake_lichess.requests[0]
    assert request["params"]["clocks"] == "true" and request["params"]["evals"] == "true"
    assert request["params"]["opening"] == "true" and request["params"]["sort"] == "dateAsc"


async def test_a_dropped_stream_resumes_after_the_last_game_without_gaps_or_duplicates(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    fake_lichess.add_user("Bob", 120)
    fake_lichess.drop_after = 45
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url)
    async with running(settings, ["ingest", "store"]) as container:
        view = await wait_for_sync(container, await request_sync(container.ctx, "Bob"))
        assert view["status"] == "done"
        assert view["games_received"] == 120
        assert await _count_games(container) == 120
    assert len(fake_lichess.requests) == 2
    resumed_since = int(fake_lichess.requests[1]["params"]["since"])
    assert resumed_since == fake_lichess.users["bob"][44]["createdAt"] + 1


async def test_an_unknown_user_fails_the_sync_with_a_clear_reason(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url)
    async with running(settings, ["ingest", "store"]) as container:
        view = await wait_for_sync(container, await request_sync(container.ctx, "NoSuchPlayer"))
    assert view["status"] == "failed"
    assert "no user" in view["error"]


async def test_after_a_429_the_next_request_waits_a_full_minute(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    fake_lichess.add_user("Carol", 10)
    fake_lichess.queued_statuses = [429]
    clock = ManualClock()
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url)
    async with running(settings, ["ingest", "store"], clock=clock) as container:
        start = clock.now()
        view = await wait_for_sync(container, await request_sync(container.ctx, "Carol"))
        assert view["status"] == "done" and view["games_stored"] == 10
        assert clock.now() - start >= 60.0
        assert sum(clock.sleeps) >= 60.0
        assert await container.ctx.lichess.gate.paused_until() == start + 60.0
    assert len(fake_lichess.requests) == 2


async def test_two_ingest_processes_never_call_lichess_at_once(
    tmp_path: Path, database_url: str, fake_lichess: FakeLichess
) -> None:
    """Two gates over one store stand for two ingest processes; the lease serialises them."""
    for i, name in enumerate(["Dan", "Eve", "Fay", "Gus"]):
        fake_lichess.add_user(name, 15, seed=i + 1)
    fake_lichess.line_delay = 0.01
    store = SqlStore(database_url)
    store.upgrade()
    clients = [LichessClient(fake_lichess.url, RequestGate(store, SystemClock())) for _ in range(2)]

    async def sync(client: LichessClient, name: str) -> int:
        return len([line async for line, _ in client.stream_games(name)])

    try:
        counts = await asyncio.gather(
            *(sync(clients[i % 2], name) for i, name in enumerate(["Dan", "Eve", "Fay", "Gus"]))
        )
    finally:
        for client in clients:
            await client.close()
        store.dispose()
    assert counts == [15, 15, 15, 15]
    assert len(fake_lichess.requests) == 4
    assert fake_lichess.max_active == 1


async def test_an_unexpected_failure_shows_on_the_sync_and_is_retried(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    fake_lichess.add_user("Ivy", 5)
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url)
    async with running(settings, ["ingest"]) as container:
        attempts = 0

        async def broken_publish(*args: object, **kwargs: object) -> list[object]:
            nonlocal attempts
            attempts += 1
            raise RuntimeError("the log refused the batch")

        container.ctx.publisher.publish_many = broken_publish  # type: ignore[method-assign]
        view = await wait_for_sync(container, await request_sync(container.ctx, "Ivy"))
    assert view["status"] == "failed"
    assert "RuntimeError: the log refused the batch" in view["error"]
    assert attempts >= 1
