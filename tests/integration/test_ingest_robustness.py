"""Every game that arrives ends stored or rejected by index with its reason, and every import
ends: broken Lichess lines, values no store can keep, writes that keep failing, imports a
crash interrupted, broadcast exports (issue 16, items 4, 5, 8, 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from kibitz.adapters.store_models import Game, Sync
from kibitz.clock import ManualClock
from kibitz.services import ingest
from kibitz.services.ingest import import_pgn, request_sync
from tests.fakes.lichess import FakeLichess
from tests.support import running, settings_for, wait_for_sync

FIXTURES = Path(__file__).parent.parent / "fixtures"


async def game_ids(container: Any) -> set[str]:
    return set(await container.sql.read(lambda s: s.scalars(select(Game.id)).all()))


async def test_broken_lichess_lines_are_rejected_by_index_and_the_games_after_them_imported(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    games = fake_lichess.add_user("Alice", 20)
    fake_lichess.extra_lines["alice"] = {
        3: "[1,2,3]",
        5: json.dumps({**games[5], "id": "../../etc/passwd"}),
        7: json.dumps({**games[7], "id": "nopeNOPE", "players": "nope"}),
        9: json.dumps({**games[9], "id": "lateLATE", "createdAt": "yesterday"}),
        12: '{"id": "truncat',
    }
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", fake_lichess.url)
    async with running(settings, ["ingest", "store"]) as container:
        view = await wait_for_sync(container, await request_sync(container.ctx, "Alice"))
        stored = await game_ids(container)
    assert view["status"] == "done"
    assert (view["games_received"], view["games_stored"], view["games_rejected"]) == (25, 20, 5)
    assert view["accounted"] == view["games_received"]
    assert stored == {g["id"] for g in games}
    reasons = {r["index"]: r["reason"] for r in view["rejected"]}
    # Lines are counted from 1 in the order Lichess sent them: each extra line comes first.
    assert "not a game object" in reasons[4]
    assert "not a valid id" in reasons[7]
    assert "players" in reasons[10]
    assert "createdAt" in reasons[13]
    assert "not JSON" in reasons[17]


def unstorable_pgn() -> str:
    base = (FIXTURES / "lichess_exports.pgn").read_text().split("\n\n[Event")[0]
    changes = [
        ('[WhiteElo "2100"]', '[WhiteElo "99999999999999999999"]'),
        ('[TimeControl "300+0"]', '[TimeControl "99999999999999999999+0"]'),
        ('[Black "Costello"]', f'[Black "{"C" * 65}"]'),
        ('[Black "Costello"]', '[Black "Cost\x00ello"]'),
    ]
    games = [base.replace("PpwPOZMq", f"Good{i:04d}") for i in range(3)]
    games += [base.replace("PpwPOZMq", f"Bad{i:05d}").replace(*c) for i, c in enumerate(changes)]
    return "\n\n".join(games) + "\n"


async def test_values_no_store_can_keep_are_rejected_by_index_and_the_import_ends(
    tmp_path: Path, database_url: str
) -> None:
    async with running(settings_for(tmp_path, database_url), ["store"]) as container:
        view = await wait_for_sync(container, await import_pgn(container.ctx, unstorable_pgn()))
        stored = await game_ids(container)
    assert view["status"] == "done" and view["finished_at"] is not None  # (issue 17, item 6)
    assert (view["games_received"], view["games_stored"], view["games_rejected"]) == (7, 3, 4)
    assert stored == {"Good0000", "Good0001", "Good0002"}
    reasons = {r["index"]: r["reason"] for r in view["rejected"]}
    assert "WhiteElo" in reasons[4] and "time control" in reasons[5]
    assert "Black name" in reasons[6] and "NUL" in reasons[7]


async def test_a_game_whose_write_keeps_failing_is_rejected_and_its_import_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kibitz.adapters import repo_games

    real = repo_games.upsert_games

    def failing(session: Any, store_: Any, records: list[Any], now: Any) -> dict[str, bool]:
        if any(r.id == "vLMnoCct" for r in records):
            raise RuntimeError("the disk said no")
        return real(session, store_, records, now)

    monkeypatch.setattr(repo_games, "upsert_games", failing)
    text = (FIXTURES / "lichess_broadcast_round.pgn").read_text()
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}")
    async with running(settings, ["store"]) as container:
        view = await wait_for_sync(container, await import_pgn(container.ctx, text))
    assert view["status"] == "done"
    assert (view["games_stored"], view["games_rejected"]) == (2, 1)
    (rejected,) = view["rejected"]
    assert rejected["index"] == 2
    assert "could not be stored" in rejected["reason"] and "the disk said no" in rejected["reason"]


async def test_a_broadcast_round_imports_every_game_and_a_taken_id_never_merges_two_games(
    tmp_path: Path,
) -> None:
    round_pgn = (FIXTURES / "lichess_broadcast_round.pgn").read_text()
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}")
    async with running(settings, ["store"]) as container:
        view = await wait_for_sync(container, await import_pgn(container.ctx, round_pgn))
        assert (view["status"], view["games_stored"], view["games_new"]) == ("done", 3, 3)
        assert await game_ids(container) == {"pjFW7Z3B", "vLMnoCct", "b0eP7FAA"}
        # Another game claiming the first one's URL (other players): kept apart, under an id
        # of its own, and importing it again changes nothing.
        impostor = round_pgn.split("\n\n[Event")[0].replace("Abugenda, Nagi", "Someone, Else")
        for _ in range(2):
            again = await wait_for_sync(container, await import_pgn(container.ctx, impostor))
            assert (again["status"], again["games_stored"]) == ("done", 1)
        ids = await game_ids(container)
        count = await container.sql.read(lambda s: s.scalar(select(func.count()).select_from(Game)))
    assert count == 4 and {"pjFW7Z3B", "vLMnoCct", "b0eP7FAA"} < ids
    (own,) = ids - {"pjFW7Z3B", "vLMnoCct", "b0eP7FAA"}
    assert own.startswith("p")


async def test_an_import_a_crash_interrupted_is_failed_with_a_reason_and_can_be_run_again(
    tmp_path: Path,
) -> None:
    text = (FIXTURES / "lichess_broadcast_round.pgn").read_text()
    clock = ManualClock()
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}")
    async with running(settings, ["store"], clock=clock) as container:
        real_publish = container.ctx.publisher.publish_many

        async def crash(*args: object, **kwargs: object) -> list[object]:
            raise SystemExit("killed while queueing the games")

        container.ctx.publisher.publish_many = crash  # type: ignore[method-assign]
        with pytest.raises(SystemExit):
            await import_pgn(container.ctx, text)
        container.ctx.publisher.publish_many = real_publish  # type: ignore[method-assign]
        assert await ingest.fail_interrupted_imports(container.ctx, 300) == 0  # not yet
        await clock.sleep(301)
        assert await ingest.fail_interrupted_imports(container.ctx, 300) == 1
        (failed,) = await container.sql.read(
            lambda s: [
                store_view
                for store_view in s.scalars(select(Sync)).all()
                if store_view.status == "failed"
            ]
        )
        assert failed.error == ingest.INTERRUPTED and failed.finished_at is not None
        view = await wait_for_sync(container, await import_pgn(container.ctx, text))
    assert (view["status"], view["games_stored"]) == ("done", 3)


async def test_a_file_holding_the_same_game_twice_ends_with_both_counted(
    tmp_path: Path, database_url: str
) -> None:
    """A game twice in one file has one id: it is stored once and counted for both its
    places, so the import ends (it once waited for a second game that could never come)."""
    chapter = (FIXTURES / "lichess_study_chapter.pgn").read_text()
    text = chapter + "\n" + chapter + "\n" + (FIXTURES / "lichess_broadcast_round.pgn").read_text()
    async with running(settings_for(tmp_path, database_url), ["store"]) as container:
        view = await wait_for_sync(container, await import_pgn(container.ctx, text))
        again = await wait_for_sync(container, await import_pgn(container.ctx, text))
        stored = await game_ids(container)
    assert (view["status"], view["games_received"], view["games_stored"]) == ("done", 5, 5)
    assert view["finished_at"] is not None and again["finished_at"] is not None
    assert view["games_new"] == 4
    assert (again["status"], again["games_stored"], again["games_new"]) == ("done", 5, 0)
    assert len(stored) == 4
