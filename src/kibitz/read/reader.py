"""The read side's one entry point: every view the API, the web pages and the CLI show, each
a read-only query on the store (no write lock, never on the event loop)."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import Commentary, Sync, SyncGame, TrackedPlayer, Worker
from kibitz.adapters.store_sql import SqlStore
from kibitz.errors import GameNotFound, NotFound
from kibitz.read import analysis, games, insights, live, matches, problems, robots, training


class Reader:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # --- games and syncs ---

    async def sync(self, sync_id: str) -> dict[str, Any]:
        """A sync or import as users see it; NotFound."""
        return await self.store.read(lambda s: games.get_sync(s, sync_id))

    async def sync_games(self, sync_id: str) -> list[str]:
        """The ids of the games a sync or import stored."""
        return await self.store.read(
            lambda s: list(s.scalars(select(SyncGame.game_id).where(SyncGame.sync_id == sync_id)))
        )

    async def import_named(self, filename: str) -> str | None:
        """The id of an import of a file of that name, if one was made."""
        return await self.store.read(
            lambda s: s.scalar(select(Sync.id).where(Sync.filename == filename).limit(1))
        )

    async def game(self, game_id: str) -> dict[str, Any]:
        """A game with its moves; GameNotFound. On PostgreSQL one statement on the asyncio
        pool (no thread, no session: the page of a game is read more than anything)."""
        if await self.store.hot() is not None:
            row = await self.store.hot_one(games.GAME_BY_ID, {"id": game_id})
            if row is None:
                raise GameNotFound(f"no game {game_id!r}")
            return games.game_detail(SimpleNamespace(**row))  # type: ignore[arg-type]
        return await self.store.read(lambda s: games.game_detail(games.get_game(s, game_id)))

    async def player_games(
        self, username: str, limit: int, offset: int, *, detail: bool = False
    ) -> list[dict[str, Any]]:
        """The player's games, newest first: summaries, or with their moves (`detail`)."""
        view = games.game_detail if detail else games.game_summary
        return await self.store.read(
            lambda s: [view(g) for g in games.player_games(s, username, limit, offset)]
        )

    async def recent_games(self, limit: int) -> list[dict[str, Any]]:
        return await self.store.read(
            lambda s: [games.game_detail(g) for g in games.recent_games(s, limit)]
        )

    # --- analysis ---

    async def analysis(self, game_id: str, *, with_evals: bool = True) -> dict[str, Any]:
        """A game's analysis; GameNotFound. On PostgreSQL on the asyncio pool."""
        if await self.store.hot() is not None:
            return await analysis.analysis_view_hot(self.store, game_id, with_evals=with_evals)
        return await self.store.read(
            lambda s: analysis.analysis_view(s, game_id, with_evals=with_evals)
        )

    async def analyses_pending(self, player: str) -> list[str]:
        """The player's games whose analysis is queued or running."""
        return await self.store.read(lambda s: analysis.pending(s, player))

    async def player_report(self, username: str) -> dict[str, Any]:
        return await self.store.read(lambda s: analysis.player_report(s, username))

    # --- live ---

    async def live(self, game_id: str) -> dict[str, Any]:
        return await self.store.read(lambda s: live.live_view(s, game_id))

    async def tracking(self) -> list[dict[str, Any]]:
        return await self.store.read(live.tracking_view)

    async def tracking_ended(self, key: str) -> tuple[datetime | None, str | None]:
        """When (and why) the latest tracking of the player ended; (None, None) while on."""

        def read(session: Session) -> tuple[datetime | None, str | None]:
            row = session.get(TrackedPlayer, key)
            return (row.ended_at, row.end_reason) if row is not None else (None, None)

        return await self.store.read(read)

    async def audio(self, game_id: str, ply: int) -> bytes | None:
        return await self.store.read(
            lambda s: s.scalar(
                select(Commentary.audio).where(Commentary.game_id == game_id, Commentary.ply == ply)
            )
        )

    # --- operations ---

    async def workers_alive(self, since: float) -> dict[str, tuple[int, bool]]:
        """Per consumer group that ever had a worker: (workers seen since `since`, whether
        any ever beat)."""

        def read(session: Session) -> dict[str, tuple[int, bool]]:
            out: dict[str, tuple[int, bool]] = {}
            for group, last_seen in session.execute(
                select(Worker.consumer_group, Worker.last_seen)
            ):
                alive, _ = out.get(group, (0, True))
                out[group] = (alive + (1 if last_seen >= since else 0), True)
            return out

        return await self.store.read(read)

    # --- problems ---

    async def problem_pool(self, player: str | None = None) -> dict[str, Any]:
        return await self.store.read(lambda s: problems.pool_view(s, player))

    async def problem(self, problem_id: str) -> dict[str, Any]:
        """A puzzle as served (without its solution); NotFound. On PostgreSQL one statement
        on the asyncio pool."""
        if await self.store.hot() is not None:
            row = await self.store.hot_one(problems.PROBLEM_BY_ID, {"id": problem_id})
            if row is None:
                raise NotFound(f"no puzzle {problem_id!r}")
            view = problems.puzzle_view(
                SimpleNamespace(**row), row["white_name"], row["black_name"]
            )
            return problems.public(view)
        return await self.store.read(lambda s: problems.problem_by_id(s, problem_id))

    async def search_progress(self, player: str | None) -> tuple[int, int]:
        return await self.store.read(lambda s: problems.search_progress(s, player))

    # --- matches and robots ---

    async def match(self, match_id: str) -> dict[str, Any]:
        return await self.store.read(lambda s: matches.match_view(s, match_id))

    async def stored_match(self, match_id: str) -> dict[str, Any] | None:
        return await self.store.read(lambda s: matches.stored_state(s, match_id))

    async def robot_pool(self) -> dict[str, Any]:
        return await self.store.read(robots.pool_view)

    async def robot_instances(self) -> dict[str, dict[str, Any]]:
        return await self.store.read(robots.instances)

    # --- training ---

    async def dashboard(self, player: str, days: int, now: float) -> dict[str, Any]:
        """The player's puzzle dashboard over `days` days, due cards and streaks."""
        return await self.store.read(lambda s: training.dashboard(s, player, days, now))

    async def insights(self, player: str) -> dict[str, Any]:
        """The player's insights across their analysed games; NotFound when none is."""
        return await self.store.read(lambda s: insights.insights(s, player))
