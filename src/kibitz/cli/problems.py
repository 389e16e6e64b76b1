"""`kibitz problems generate|pool`."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kibitz import topics
from kibitz.cli.common import (
    _fail,
    _run,
    _settings,
    _with_container,
    console,
    err,
    problems_app,
)


@problems_app.command("generate")
def problems_generate(
    player: Annotated[
        str | None, typer.Option("--player", help="This player's games (default: every game).")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Analyse and search here and now, with a progress bar.")
    ] = False,
) -> None:
    """Search games for puzzles; games not analysed yet are analysed first."""
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.problems import request_generation

    settings = _settings()
    settings.demo = False

    async def main() -> tuple[dict[str, Any], dict[str, Any] | None]:
        container = bootstrap(settings)
        local = ["analysis", "problems"] if wait and not settings.bus_is_kafka else []
        await container.start(local)
        try:
            accepted = await request_generation(container.ctx, player)
            if not wait:
                return accepted, None
            await _follow_generation(container, player)
            return accepted, await container.reader.problem_pool(player)
        finally:
            await container.close()

    accepted, pool = _run(main)
    who = player or "every player"
    if pool is None:
        console.print(
            f"puzzle search requested for {who}: {accepted['games_to_search']} analysed games "
            f"to search, {accepted['games_queued_for_analysis']} queued for analysis first"
        )
        return
    console.print(f"{pool['total']} puzzles for {who}, {pool['never_served']} never served")


# What a search waits on: when one of these parks a message meanwhile, it will not finish.
SEARCH_TOPICS = (
    topics.ANALYSIS_INTERACTIVE,
    topics.ANALYSIS_BATCH,
    topics.ANALYSIS_COMPLETED,
    topics.PROBLEMS_REQUESTED,
)
STALLED_AFTER = 300.0  # seconds without a game searched: give up waiting


async def _parked(container: Any) -> dict[str, int]:
    from kibitz.runtime import dlq

    log = container.ctx.event_log
    return {t: await dlq.parked_count(log, t) for t in SEARCH_TOPICS}


async def _follow_generation(container: Any, player: str | None) -> None:
    """Until every game of the player is analysed and searched: a progress bar. It ends with
    an error when work it waits for is parked on a DLQ, or when no game was searched for
    STALLED_AFTER seconds."""
    parked_before = await _parked(container)
    last_change, last = time.monotonic(), (-1, -1)
    with Progress(
        TextColumn("[bold]puzzle search"),
        BarColumn(),
        TextColumn(
            "{task.fields[searched]}/{task.fields[games]} games · {task.fields[found]} puzzles"
        ),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        task = progress.add_task("search", total=None, searched=0, games="?", found=0)
        for tick in itertools.count():
            searched, waiting = await container.reader.search_progress(player)
            pool = await container.reader.problem_pool(player)
            progress.update(
                task,
                total=searched + waiting,
                completed=searched,
                searched=searched,
                games=searched + waiting,
                found=pool["total"],
            )
            if waiting == 0:
                return
            if (searched, waiting) != last:
                last_change, last = time.monotonic(), (searched, waiting)
            elif time.monotonic() - last_change > STALLED_AFTER:
                raise _fail(
                    f"no game was searched for {STALLED_AFTER:.0f} s; {waiting} still waiting "
                    "(`kibitz dlq list TOPIC` shows parked work)"
                )
            if tick % 10 == 9:  # every 5 s: was work this search waits for parked?
                now = await _parked(container)
                grown = [t for t in SEARCH_TOPICS if now[t] > parked_before[t]]
                if grown:
                    raise _fail(
                        f"{waiting} games cannot be searched: work was parked on "
                        f"{', '.join(t + '.dlq' for t in grown)} (`kibitz dlq list {grown[0]}`)"
                    )
            await asyncio.sleep(0.5)


@problems_app.command("pool")
def problems_pool(
    player: Annotated[str | None, typer.Option("--player", help="This player's games.")] = None,
) -> None:
    """The puzzle pool: totals, never served, by theme."""

    async def read(container: Any) -> dict[str, Any]:
        return dict(await container.reader.problem_pool(player))

    pool = _with_container(read)
    console.print(
        f"{pool['total']} puzzles, {pool['never_served']} never served "
        f"({pool['games_searched']} games searched, {pool['games_to_search']} waiting)"
    )
    table = Table()
    table.add_column("theme")
    table.add_column("puzzles", justify="right")
    table.add_column("never served", justify="right")
    for theme, counts in pool["by_theme"].items():
        table.add_row(theme, str(counts["total"]), str(counts["never_served"]))
    console.print(table)
