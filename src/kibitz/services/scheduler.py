"""scheduler: every minute, queue a sync of each followed player from their last stored game,
queue (batch lane) the analysed games that miss a result of an active plugin version, and ask
for puzzles where the pool of never-served ones runs low."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from kibitz import topics
from kibitz.adapters.store_models import Analysis, Player, PluginResult, Sync
from kibitz.events import AnalysisRequested, ProblemsGenerationRequested
from kibitz.runtime.service import Service
from kibitz.services import analysis, ingest, problems
from kibitz.services.context import Context
from kibitz.services.ingest import latest_game_ms, request_sync

log = logging.getLogger("kibitz.scheduler")

TICK_SECONDS = 60.0
# A PGN import queues its games in seconds; one still queueing after this was interrupted.
INTERRUPTED_IMPORT_SECONDS = 300.0


async def tick(ctx: Context) -> list[str]:
    """Queue a sync for every followed player due for one; returns the usernames queued."""
    now = datetime.fromtimestamp(ctx.clock.now(), UTC)
    due_before = now - timedelta(seconds=TICK_SECONDS)

    def due(session: Session) -> list[tuple[str, int | None]]:
        busy = set(
            session.scalars(select(Sync.username).where(Sync.status.in_(("queued", "running"))))
        )
        out = []
        for player in session.scalars(select(Player).where(Player.followed.is_(True))):
            last = player.last_synced_at
            if last is not None and last.tzinfo is None:
                last = last.replace(tzinfo=UTC)
            if player.id in busy or (last is not None and last > due_before):
                continue
            out.append((player.name, latest_game_ms(session, player.id)))
        return out

    queued = []
    for name, latest in await ctx.store.read(due):
        await request_sync(ctx, name, since_ms=latest + 1 if latest else None)
        queued.append(name)
    if queued:
        log.info("syncs_scheduled players=%s", ",".join(queued))
    return queued


async def missing_plugin_results(ctx: Context, limit: int = 500) -> list[str]:
    """Queue analysed games missing a result of an active plugin version (the analysis service
    then runs only those plugins, on the stored evaluations); returns the game ids."""
    plugins = list(analysis.PLUGINS)

    def find(session: Session) -> list[str]:
        found: list[str] = []
        for plugin in plugins:
            have = select(PluginResult.game_id).where(
                PluginResult.plugin == plugin.name, PluginResult.version == plugin.version
            )
            found += session.scalars(
                select(Analysis.game_id)
                .where(Analysis.status == "done", Analysis.game_id.not_in(have))
                .limit(limit)
            ).all()
        return list(dict.fromkeys(found))[:limit]

    ids = await ctx.store.read(find)
    if ids:
        await ctx.publisher.publish_many(
            topics.ANALYSIS_BATCH,
            [(AnalysisRequested(game_id=g, priority="batch"), g) for g in ids],
        )
        log.info("plugin_results_scheduled games=%d", len(ids))
    return ids


async def low_problem_pools(ctx: Context) -> list[str]:
    """Ask for puzzles (per followed player, and for all games) where fewer than
    `problems_min_unserved` never-served puzzles remain and analysed games wait to be searched;
    returns the keys asked for ("all" for every game)."""
    threshold = ctx.settings.problems_min_unserved

    def low(session: Session) -> list[str | None]:
        players: list[str | None] = [None]
        players += list(session.scalars(select(Player.id).where(Player.followed.is_(True))))
        return [
            p
            for p in players
            if problems.never_served(session, p) < threshold
            and problems.unsearched_games(session, p)
        ]

    keys = await ctx.store.read(low)
    if keys:
        await ctx.publisher.publish_many(
            topics.PROBLEMS_REQUESTED,
            [(ProblemsGenerationRequested(player=p, reason="pool_low"), p or "all") for p in keys],
        )
        log.info("problems_requested pools=%s", ",".join(p or "all" for p in keys))
    return [p or "all" for p in keys]


def build(ctx: Context) -> Service:
    async def every_minute() -> None:
        while True:
            await tick(ctx)
            await ingest.fail_interrupted_imports(ctx, INTERRUPTED_IMPORT_SECONDS)
            await missing_plugin_results(ctx)
            await low_problem_pools(ctx)
            await ctx.clock.sleep(TICK_SECONDS)

    return Service(
        name="scheduler",
        loops=[every_minute],
        description="queues syncs, missing plugin results and puzzle searches every minute",
    )
