"""scheduler: every minute, queue a sync of each followed player from their last stored game,
queue (batch lane) the analysed games that miss a result of an active plugin version, and ask
for puzzles where the pool of never-served ones runs low."""

from __future__ import annotations

import logging

from kibitz import topics
from kibitz.errors import NotFound
from kibitz.events import AnalysisRequested, ProblemsGenerationRequested
from kibitz.runtime.service import Service
from kibitz.services import analysis, ingest
from kibitz.services.context import Context
from kibitz.services.ingest import request_sync

log = logging.getLogger("kibitz.scheduler")

# A PGN import queues its games in seconds; one still queueing after this was interrupted.
INTERRUPTED_IMPORT_SECONDS = 300.0


async def tick(ctx: Context) -> list[str]:
    """Queue a sync for every followed player due for one; returns the usernames queued."""
    queued = []
    tick_seconds = ctx.settings.scheduler_tick
    for name, latest in await ctx.store.players.due_for_sync(ctx.clock.now() - tick_seconds):
        await request_sync(ctx, name, since_ms=latest + 1 if latest else None)
        queued.append(name)
    if queued:
        log.info("syncs_scheduled players=%s", ",".join(queued))
    return queued


async def missing_plugin_results(ctx: Context, limit: int = 500) -> list[str]:
    """Queue analysed games missing a result of an active plugin version (the analysis service
    then runs only those plugins, on the stored evaluations); returns the game ids."""
    plugins = [(p.name, p.version) for p in analysis.PLUGINS]
    ids = await ctx.store.analyses.missing_results(plugins, limit)
    if ids:
        await ctx.publisher.publish_many(
            topics.ANALYSIS_BATCH,
            [(AnalysisRequested(game_id=g, priority="batch"), g) for g in ids],
        )
        log.info("plugin_results_scheduled games=%d", len(ids))
    return ids


async def analyse_followed(ctx: Context) -> int:
    """Queue (batch lane) every game of a followed player that has no analysis yet: their new
    games, as the syncs store them. Returns how many were queued."""
    queued = 0
    for player in await ctx.store.players.followed():
        try:
            queued += await analysis.request_player_analysis(ctx, player, "batch")
        except NotFound:
            continue  # followed, nothing synced yet
    if queued:
        log.info("followed_games_queued games=%d", queued)
    return queued


async def low_problem_pools(ctx: Context) -> list[str]:
    """Ask for puzzles (per followed player, and for all games) where fewer than
    `problems_min_unserved` never-served puzzles remain and analysed games wait to be searched;
    returns the keys asked for ("all" for every game)."""
    threshold = ctx.settings.problems_min_unserved

    players: list[str | None] = [None, *await ctx.store.players.followed()]
    keys = [p for p in players if await ctx.store.problems.low_pool(p, threshold)]
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
            await analyse_followed(ctx)
            await low_problem_pools(ctx)
            await ctx.clock.sleep(ctx.settings.scheduler_tick)

    return Service(
        name="scheduler",
        loops=[every_minute],
        description="queues syncs, missing plugin results and puzzle searches every minute",
    )
