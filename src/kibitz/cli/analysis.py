"""`kibitz analyze` and `kibitz report`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kibitz.cli.common import (
    _fail,
    _run,
    _settings,
    _with_container,
    app,
    console,
    err,
)
from kibitz.errors import NotFound


@app.command()
def analyze(
    game_ids: Annotated[list[str] | None, typer.Argument(help="Game ids.")] = None,
    player: Annotated[
        str | None, typer.Option("--player", help="Every not yet analysed game of this player.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the results, with a progress bar.")] = False,
    batch: Annotated[
        bool, typer.Option("--batch", help="Queue in the batch lane (default: interactive).")
    ] = False,
    force: Annotated[bool, typer.Option(help="Analyse again games already analysed.")] = False,
    cancel: Annotated[
        bool, typer.Option("--cancel", help="Cancel the games' queued or running analyses.")
    ] = False,
) -> None:
    """Analyse games with Stockfish: a quick pass, then a deep pass, then the plugins."""
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.analysis import request_analysis, request_player_analysis

    if bool(game_ids) == bool(player):
        raise _fail("give game ids or --player USERNAME (one of the two)")
    if cancel:
        _cancel(game_ids or [], player)
        return
    if force and player:
        raise _fail("--force applies to game ids; --player queues games not analysed yet")
    settings = _settings()
    settings.demo = False
    lane = "batch" if batch or player else "interactive"

    async def main() -> tuple[int, dict[str, str]]:
        container = bootstrap(settings)
        # Embedded and waiting: this process analyses (alongside a running `serve`, if any).
        local = ["analysis"] if wait and not settings.bus_is_kafka else []
        await container.start(local)
        try:
            if player:
                queued = await request_player_analysis(container.ctx, player, lane)
                # Waits for every game of theirs still queued or running, these and earlier.
                ids = await _analysis_ids(container, player) if wait else []
            else:
                ids = list(dict.fromkeys(game_ids or []))
                for game_id in ids:
                    await request_analysis(container.ctx, game_id, lane, force=force)
                queued = len(ids)
            if not wait:
                return queued, {}
            return queued, await _follow_analyses(container, ids)
        finally:
            await container.close()

    queued, outcome = _run(main)
    if not wait:
        console.print(f"{queued} game{'s' if queued != 1 else ''} queued in the {lane} lane")
        return
    failed = {g: s for g, s in outcome.items() if s != "done"}
    console.print(f"{len(outcome) - len(failed)} analysed, {len(failed)} failed")
    for game_id, why in failed.items():
        console.print(f"  {game_id}: {why}", highlight=False)
    if failed:
        raise typer.Exit(1)


def _cancel(game_ids: list[str], player: str | None) -> None:
    """`kibitz analyze GAME… --cancel`: each game's queued or running analysis is cancelled."""
    from kibitz.services.analysis import cancel_analysis

    if player:
        raise _fail("--cancel takes game ids")

    async def cancel(container: Any) -> list[dict[str, Any]]:
        return [await cancel_analysis(container.ctx, g) for g in dict.fromkeys(game_ids)]

    for done in _with_container(cancel):
        console.print(f"{done['game_id']}: cancelled (it was {done['was']})", highlight=False)


async def _analysis_ids(container: Any, player: str) -> list[str]:
    return list(await container.reader.analyses_pending(player))


async def _follow_analyses(container: Any, ids: list[str]) -> dict[str, str]:
    """Poll the games' analyses until each is done or failed; returns status or error by id."""
    outcome: dict[str, str] = {}
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[done]}/{task.fields[games]} games · {task.fields[now]}"),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        task = progress.add_task(
            "analysis",
            total=2 * len(ids),
            done=0,
            games=len(ids),
            now="",
        )
        while len(outcome) < len(ids):
            completed, now = 0.0, "queued"
            for game_id in ids:
                view = await container.reader.analysis(game_id, with_evals=False)
                status, phase = view["status"], view["phase"]
                if status == "done":
                    outcome[game_id] = "done"
                    completed += 2
                elif status == "failed":
                    outcome[game_id] = view["error"] or "failed"
                    completed += 2
                elif status == "running":
                    completed += (1 if phase == "deep" else 0) + view["progress"]
                    now = f"{game_id} {phase} {view['positions_done']}/{view['positions_total']}"
            progress.update(task, completed=completed, done=len(outcome), now=now)
            if len(outcome) < len(ids):
                await asyncio.sleep(0.3)
    return outcome


@app.command()
def report(username: Annotated[str, typer.Argument(help="A player's username.")]) -> None:
    """A player's summary over their analysed games: accuracy, errors, weakest openings."""

    async def read(container: Any) -> dict[str, Any]:
        from kibitz.services.training import player_id

        data = dict(await container.reader.player_report(username))
        data["training"] = await container.reader.dashboard(
            player_id(username), 90, container.ctx.clock.now()
        )
        try:
            data["insights"] = await container.reader.insights(player_id(username))
        except NotFound:
            data["insights"] = None
        return data

    data = _with_container(read)
    table = Table(title=f"{username}: {data['analysed']} of {data['games']} games analysed")
    table.add_column("games")
    table.add_column("accuracy")
    table.add_column("ACPL")
    table.add_column("inaccuracies / game")
    table.add_column("mistakes / game")
    table.add_column("blunders / game")
    per = data["per_game"]

    def cell(v: Any) -> str:
        return "-" if v is None else str(v)

    table.add_row(
        str(data["analysed"]),
        cell(data["accuracy"]),
        cell(data["acpl"]),
        cell(per["inaccuracy"]),
        cell(per["mistake"]),
        cell(per["blunder"]),
    )
    console.print(table)
    if data["worst_openings"]:
        worst = Table(title="weakest openings (lowest accuracy)")
        worst.add_column("opening")
        worst.add_column("games")
        worst.add_column("accuracy")
        for o in data["worst_openings"]:
            worst.add_row(o["opening"], str(o["games"]), cell(o["accuracy"]))
        console.print(worst)
    elif not data["analysed"]:
        console.print(
            f"no game of {username} is analysed yet: `kibitz analyze --player {username}`"
        )
    if data["insights"]:
        _insights_summary(data["insights"])
    _training_summary(data["training"])


def _insights_summary(found: dict[str, Any]) -> None:
    """Accuracy and ACPL by colour, result, phase, clock and opening; the blunders' themes."""
    table = Table(title="insights across analysed games (accuracy % / ACPL / games)")
    table.add_column("by")
    table.add_column("group")
    table.add_column("accuracy")
    table.add_column("ACPL")
    table.add_column("games")
    for dimension in ("colour", "result", "phase", "clock", "opening"):
        groups = sorted(found[dimension].items(), key=lambda kv: -kv[1]["games"])[:6]
        for name, g in groups:
            table.add_row(dimension, name, str(g["accuracy"]), str(g["acpl"]), str(g["games"]))
    console.print(table)
    if found["blunder_themes"]:
        themes = ", ".join(f"{t} {v['blunders']}" for t, v in found["blunder_themes"].items())
        console.print(f"blunders: {themes}")


def _training_summary(dash: dict[str, Any]) -> None:
    """The puzzle side of the report: rating, weak themes, cards due."""
    console.print(
        f"puzzle rating {dash['rating']} ± {dash['rd']} after {dash['rated_attempts']} rated "
        f"attempts · cards due {dash['cards_due']} of {dash['cards_total']} · review streak "
        f"{dash['review_streak']} days"
    )
    if dash["weak_themes"]:
        weak = Table(title="weak puzzle themes (last 90 days)")
        weak.add_column("theme")
        weak.add_column("attempts")
        weak.add_column("first-try wins")
        weak.add_column("performance")
        for theme in dash["weak_themes"]:
            r = dash["themes"][theme]
            weak.add_row(theme, str(r["attempts"]), str(r["first_wins"]), str(r["performance"]))
        console.print(weak)
