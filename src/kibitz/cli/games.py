"""`kibitz import lichess|pgn`: bring games in and watch them stored."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from kibitz.cli.common import (
    _fail,
    _run,
    _settings,
    console,
    err,
    import_app,
)
from kibitz.errors import InvalidInput
from kibitz.settings import Settings


def _parse_since(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--since {value!r} is not a date (YYYY-MM-DD)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def _follow_sync(container: Any, sync_id: str, label: str) -> dict[str, Any]:
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[stored]} stored · {task.fields[rate]:.1f} games/s"),
        TextColumn("[yellow]{task.fields[notice]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task(label, total=None, stored=0, rate=0.0, notice="")
        while True:
            view = await container.reader.sync(sync_id)
            elapsed = max(0.001, time.monotonic() - started)
            total = view["games_received"] if view["status"] in ("done", "storing") else None
            progress.update(
                task,
                total=total,
                completed=view["accounted"],
                stored=view["games_stored"],
                rate=view["games_stored"] / elapsed,
                notice=view.get("notice") or "",
            )
            if view["status"] in ("done", "failed"):
                return dict(view)
            await asyncio.sleep(0.2)


def _local_services(settings: Settings) -> list[str]:
    # Embedded: this process runs the ingest and store services itself. Distributed: they run
    # as their own processes and this command only asks and watches.
    return [] if settings.bus_is_kafka else ["ingest", "store"]


def _import_site(username: str, max_games: int | None, since: str | None, source: str) -> Any:
    """Sync a player's games from their site here and now, with a progress bar; the sync's
    view, or exit 2 when it failed."""
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.ingest import SITE_NAMES, request_sync

    settings = _settings()
    settings.demo = False
    if max_games is not None and max_games < 1:
        raise _fail("--max must be at least 1")

    async def main() -> dict[str, Any]:
        since_ms = _parse_since(since)
        container = bootstrap(settings)
        await container.start(_local_services(settings))
        try:
            sync_id = await request_sync(
                container.ctx, username, max_games=max_games, since_ms=since_ms, source=source
            )
            return await _follow_sync(container, sync_id, f"{username} from {SITE_NAMES[source]}")
        finally:
            await container.close()

    view = _run(main)
    if view["status"] == "failed":
        raise _fail(view["error"] or "the sync failed")
    console.print(
        f"{view['games_stored']} games stored ({view['games_new']} new, "
        f"{view['games_rejected']} rejected) for {username}"
        + (" on chess.com" if source == "chesscom" else "")
    )
    for rejection in view["rejected"]:
        console.print(f"  game {rejection['index']}: {rejection['reason']}", highlight=False)
    return view


MAX_OPTION = typer.Option("--max", help="At most this many games.")
SINCE_OPTION = typer.Option(help="Only games since this date (YYYY-MM-DD).")


@import_app.command("lichess")
def import_lichess(
    username: Annotated[str, typer.Argument(help="Lichess username.")],
    max_games: Annotated[int | None, MAX_OPTION] = None,
    since: Annotated[str | None, SINCE_OPTION] = None,
) -> None:
    """Import a player's games from Lichess, with a progress bar."""
    _import_site(username, max_games, since, "lichess")


@import_app.command("chesscom")
def import_chesscom(
    username: Annotated[str, typer.Argument(help="chess.com username.")],
    max_games: Annotated[int | None, MAX_OPTION] = None,
    since: Annotated[str | None, SINCE_OPTION] = None,
) -> None:
    """Import a player's finished games from chess.com (its monthly archives), with a progress
    bar. They are another player than the same name on Lichess."""
    _import_site(username, max_games, since, "chesscom")


@import_app.command("pgn")
def import_pgn_cmd(
    files: Annotated[list[Path], typer.Argument(help="PGN files.", exists=False)],
) -> None:
    """Import PGN files of one or many games; broken games are reported by index and reason."""
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.ingest import import_pgn

    settings = _settings()
    settings.demo = False
    for path in files:
        if not path.is_file():
            raise _fail(f"no such file: {path}")

    async def main() -> list[dict[str, Any]]:
        container = bootstrap(settings)
        await container.start(_local_services(settings))
        views = []
        try:
            for path in files:
                text = path.read_text(encoding="utf-8-sig", errors="replace")
                import_id = await import_pgn(container.ctx, text, filename=path.name)
                views.append(await _follow_sync(container, import_id, path.name))
        finally:
            await container.close()
        return views

    views = _run(main)
    for path, view in zip(files, views, strict=True):
        console.print(
            f"{path.name}: {view['games_stored']} stored ({view['games_new']} new), "
            f"{view['games_rejected']} rejected"
        )
        for rejection in view["rejected"]:
            console.print(f"  game {rejection['index']}: {rejection['reason']}", highlight=False)
