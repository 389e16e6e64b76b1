"""The scheduler keeps followed players in sync from their last stored game, every minute."""

from __future__ import annotations

from pathlib import Path

from kibitz.clock import ManualClock
from kibitz.services import ingest, scheduler
from tests.fakes.lichess import FakeLichess
from tests.support import running, settings_for, wait_for_sync


async def test_followed_players_sync_every_minute_from_their_last_game(
    tmp_path: Path, database_url: str, fake_lichess: FakeLichess
) -> None:
    games = fake_lichess.add_user("Ann", 12)
    fake_lichess.add_user("NotFollowed", 3)
    clock = ManualClock(start=games[-1]["createdAt"] / 1000 + 3600)
    settings = settings_for(tmp_path, database_url, fake_lichess.url)
    async with running(settings, ["ingest", "store"], clock=clock) as container:
        ctx = container.ctx

        await ingest.set_followed(ctx, "Ann", True)
        assert await scheduler.tick(ctx) == ["Ann"]
        await _wait_idle(container)
        first = fake_lichess.requests[-1]["params"]
        assert "since" not in first  # nothing stored yet: the whole history

        assert await scheduler.tick(ctx) == []  # synced less than a minute ago
        clock.t += 61
        assert await scheduler.tick(ctx) == ["Ann"]
        await _wait_idle(container)
        resumed = fake_lichess.requests[-1]["params"]
        assert int(resumed["since"]) == games[-1]["createdAt"] + 1
    assert len(fake_lichess.requests) == 2
    assert all("notfollowed" not in r["path"].lower() for r in fake_lichess.requests)


async def _wait_idle(container: object) -> None:
    from sqlalchemy import select

    from kibitz.adapters.store_models import Sync

    store = container.sql  # type: ignore[attr-defined]
    ids = await store.read(lambda s: list(s.scalars(select(Sync.id))))
    for sync_id in ids:
        view = await wait_for_sync(container, sync_id)  # type: ignore[arg-type]
        assert view["status"] == "done"
