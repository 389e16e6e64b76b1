"""`kibitz track`: follow a player's live game in the terminal."""

from __future__ import annotations

import asyncio
import time
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

COMMENTARY_GROUP = "kibitz.commentary"  # the commentary service's consumer group
DRAIN_SECONDS = 20.0  # after the game ends, how long its last lines are waited for


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

            async def print_new() -> None:
                for partition, offset in positions.items():
                    for record in await log_.read(topics.COMMENTARY, partition, offset, 200):
                        positions[partition] = record.offset + 1
                        _, line = decode(record.value)
                        if not isinstance(line, CommentaryPublished):
                            continue
                        if key in {(line.white or "").lower(), (line.black or "").lower()}:
                            style = colours.get(line.judgment or "")
                            console.print(line.text, style=style, highlight=False)

            async def commentary_behind() -> bool:
                return sum((await log_.lag(COMMENTARY_GROUP, topics.LIVE_MOVES)).values()) > 0

            reason: str | None = None
            drain_until = 0.0
            while True:
                await print_new()
                if reason is None:
                    ended_at, why = await container.reader.tracking_ended(key)
                    if ended_at is not None and ended_at.replace(tzinfo=UTC) >= asked_at:
                        # The game's last moves may still be with the commentary: their lines
                        # are printed too (at most DRAIN_SECONDS more).
                        reason = why or "ended"
                        drain_until = time.monotonic() + DRAIN_SECONDS
                elif time.monotonic() >= drain_until or not await commentary_behind():
                    await print_new()  # what was published before it caught up
                    return reason
                await asyncio.sleep(0.3)
        finally:
            await container.close()

    reason = _run(main)
    err.print(f"tracking {name} ended: {reason}")
