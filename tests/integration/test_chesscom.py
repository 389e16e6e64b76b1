"""chess.com import end to end on the real stores: fake chess.com (its published API) →
ingest → games.raw → store. Players are per site; re-imports store nothing twice; a broken
game, an unknown user and a 429 mid-import get clear answers and lose nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from kibitz.adapters.store_models import Game, Player
from kibitz.clock import ManualClock
from kibitz.services.ingest import request_sync
from tests.fakes.chesscom import FakeChessCom
from tests.fakes.lichess import FakeLichess
from tests.support import running, settings_for, wait_for_sync


@pytest.fixture
def fake_chesscom() -> Iterator[FakeChessCom]:
    fake = FakeChessCom().start()
    try:
        yield fake
    finally:
        fake.stop()


async def _games(container: object) -> list[tuple[str, str | None, str | None, str]]:
    store = container.sql  # type: ignore[attr-defined]
    return list(
        await store.read(
            lambda s: [
                tuple(r)
                for r in s.execute(
                    select(Game.id, Game.white_id, Game.black_id, Game.source).order_by(Game.id)
                )
            ]
        )
    )


async def test_the_same_name_on_both_sites_is_two_players_and_reimports_store_nothing_twice(
    tmp_path: Path, database_url: str, fake_lichess: FakeLichess, fake_chesscom: FakeChessCom
) -> None:
    fake_lichess.add_user("Dana", 6)
    made = fake_chesscom.add_user("Dana", 9)  # nine games over about three months
    settings = settings_for(
        tmp_path, database_url, fake_lichess.url, chesscom_url=fake_chesscom.url
    )
    async with running(settings, ["ingest", "store"]) as container:
        ctx = container.ctx
        cc = await wait_for_sync(container, await request_sync(ctx, "Dana", source="chesscom"))
        li = await wait_for_sync(container, await request_sync(ctx, "dana"))
        assert (cc["status"], cc["games_stored"], cc["games_new"]) == ("done", 9, 9)
        assert (li["status"], li["games_stored"]) == ("done", 6)
        again = await wait_for_sync(container, await request_sync(ctx, "DANA@chess.com"))
        assert (again["games_stored"], again["games_new"]) == (9, 0)
        games = await _games(container)
        players = await container.sql.read(lambda s: sorted(s.scalars(select(Player.id)).all()))
        stored = {g[0]: g for g in games if g[3] == "chesscom"}
    assert len(games) == 15
    assert sorted(stored) == sorted(f"cc{g['url'].rsplit('/', 1)[1]}" for g in made)
    assert all("dana@chess.com" in (w, b) for _, w, b, _ in stored.values())
    assert all("dana" in (w, b) for _, w, b, s in games if s == "lichess")
    assert players == ["dana", "dana@chess.com"]
    # Archives are read month by month, oldest first, one request at a time.
    assert fake_chesscom.requests[0] == "/pub/player/dana/games/archives"
    assert fake_chesscom.max_active == 1


async def test_a_broken_game_an_unknown_user_and_a_429_mid_import_lose_nothing(
    tmp_path: Path, fake_chesscom: FakeChessCom
) -> None:
    made = fake_chesscom.add_user("Evan", 8)
    broken = dict(made[3], url="https://www.chess.com/game/live/123", pgn="1. e4 e5 2. Ke3 *")
    fake_chesscom.add_game("Evan", broken)
    fake_chesscom.add_game("Evan", "not a game")
    clock = ManualClock()
    settings = settings_for(
        tmp_path, f"sqlite:///{tmp_path / 'k.db'}", chesscom_url=fake_chesscom.url
    )
    async with running(settings, ["ingest", "store"], clock=clock) as container:
        ctx = container.ctx
        unknown = await wait_for_sync(
            container, await request_sync(ctx, "NoSuchUser", source="chesscom")
        )
        assert unknown["status"] == "failed" and "no user" in unknown["error"]

        # Evan's archive list, then his first month, answer; the second month gets a 429.
        fake_chesscom.rate_limit_at = len(fake_chesscom.requests) + 3
        start = clock.now()
        view = await wait_for_sync(container, await request_sync(ctx, "Evan", source="chesscom"))
        games = await _games(container)
    assert view["status"] == "done"
    assert view["games_stored"] == 8 and view["games_rejected"] == 2
    reasons = " ".join(r["reason"] for r in view["rejected"])
    assert "illegal" in reasons or "Ke3" in reasons
    assert {g[0] for g in games} == {f"cc{g['url'].rsplit('/', 1)[1]}" for g in made}
    assert clock.now() - start >= 60.0  # the 429 paused every request a minute
    assert fake_chesscom.rate_limit_at is None  # it was sent
    assert json.dumps(view)  # the view is plain JSON
