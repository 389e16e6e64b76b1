"""`kibitz track`: follow a player's live game in the terminal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer

from kibitz import topics
from kibitz.cli.common import (
    _fail,
    _run,
    _settings,
    app,
    console,
    err,
)
from kibitz.errors import InvalidInput


@app.command()
def track(
    username: Annotated[str, typer.Argument(help="A Lichess player (who is playing now).")],
    speech: Annotated[bool, typer.Option(help="Ask for spoken commentary too.")] = False,
) -> None:
    """Follow a player's ongoing Lichess game and print its commentary, line by line."""
    from kibitz.domain.players import check_username
    from kibitz.events import CommentaryPublished, decode
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.tracker import request_tracking

    settings = _settings()
    settings.demo = False
    try:
        name = check_username(username)
    except InvalidInput as exc:
        raise _fail(exc.detail) from None
    colours = {"Inaccuracy": "cyan", "Mistake": "yellow", "Blunder": "bold red"}

    async def main() -> str:
        container = bootstrap(settings.model_copy(update={"cpu_workers": 0}))
        # Embedded: this process runs the tracker and the commentary itself.
        await container.start([] if settings.bus_is_kafka else ["tracker", "commentary"])
        try:
            log_ = container.ctx.event_log
            positions = await log_.end_offsets(topics.COMMENTARY)  # from now on
            asked_at = datetime.now(UTC)
            started = await request_tracking(
                container.ctx, container.component("tracker"), name, {"speech": speech}
            )
            err.print(f"{name}: {started['status'].replace('_', ' ')} (Ctrl-C stops)")
            key = name.lower()
            while True:
                for partition, offset in positions.items():
                    for record in await log_.read(topics.COMMENTARY, partition, offset, 200):
                        positions[partition] = record.offset + 1
                        _, line = decode(record.value)
                        if not isinstance(line, CommentaryPublished):
                            continue
                        if key in {(line.white or "").lower(), (line.black or "").lower()}:
                            style = colours.get(line.judgment or "")
                            console.print(line.text, style=style, highlight=False)
                ended_at, why = await container.reader.tracking_ended(key)
                if ended_at is not None and ended_at.replace(tzinfo=UTC) >= asked_at:
                    return why or "ended"
                await asyncio.sleep(0.3)
        finally:
            await container.close()

    reason = _run(main)
    err.print(f"tracking {name} ended: {reason}")
