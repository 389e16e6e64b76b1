"""The event log and its dead-letter queues: `kibitz dlq`, `kibitz bus tail`, `kibitz replay`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from kibitz import topics
from kibitz.cli.common import (
    T,
    _fail,
    _run,
    _settings,
    bus_app,
    console,
    dlq_app,
    replay_app,
)
from kibitz.runtime.consumer import DLQ_SUFFIX
from kibitz.settings import Settings


async def _with_log(settings: Settings, fn: Callable[[Any], Awaitable[T]]) -> T:
    from kibitz.runtime.bootstrap import make_event_log

    log = make_event_log(settings)
    await log.start()
    try:
        return await fn(log)
    finally:
        await log.close()


@dlq_app.command("list")
def dlq_list(topic: Annotated[str, typer.Argument(help="The base topic, e.g. games.raw")]) -> None:
    """Messages parked on TOPIC.dlq and not yet replayed or discarded."""
    settings = _settings()

    async def main() -> list[Any]:
        from kibitz.runtime.dlq import parked

        return await _with_log(settings, lambda log: parked(log, topic))

    records = _run(main)
    table = Table("offset", "key", "attempts", "error", "from")
    for r in records:
        table.add_row(
            str(r.offset),
            r.key,
            (r.header("attempts") or b"").decode(),
            (r.header("error") or b"").decode(),
            (r.header("source") or b"").decode(),
        )
    console.print(table)
    console.print(f"{len(records)} parked on {topic}{DLQ_SUFFIX}")


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="The base topic, e.g. games.raw")],
    discard: Annotated[bool, typer.Option(help="Drop them instead of replaying.")] = False,
) -> None:
    """Put TOPIC.dlq's parked messages back on TOPIC (or discard them)."""
    from kibitz.runtime.dlq import settle

    settings = _settings()

    async def main() -> int:
        return await _with_log(settings, lambda log: settle(log, topic, discard=discard))

    count = _run(main)
    console.print(
        f"{'discarded' if discard else 'replayed'} {count} message(s) of {topic}{DLQ_SUFFIX}"
    )


@bus_app.command("tail")
def bus_tail(
    topic: Annotated[str, typer.Argument(help="Topic to follow.")],
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest message.")] = False,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
) -> None:
    """Print a topic's events as they arrive, one JSON object a line."""
    settings = _settings()

    async def main() -> None:
        async def tail(log: Any) -> None:
            positions = (
                {p: 0 for p in await log.end_offsets(topic)}
                if from_beginning
                else (await log.end_offsets(topic))
            )
            seen = 0
            while count is None or seen < count:
                got = False
                for partition, offset in positions.items():
                    for r in await log.read(topic, partition, offset, 100):
                        positions[partition] = r.offset + 1
                        try:
                            body: Any = json.loads(r.value)
                        except ValueError:
                            body = r.value.decode(errors="replace")
                        print(
                            json.dumps(
                                {
                                    "partition": r.partition,
                                    "offset": r.offset,
                                    "key": r.key,
                                    "event": body,
                                }
                            ),
                            flush=True,
                        )
                        seen += 1
                        got = True
                        if count is not None and seen >= count:
                            return
                if not got:
                    await asyncio.sleep(0.2)

        await _with_log(settings, tail)

    _run(main)


@replay_app.command("match")
def replay_match(match_id: Annotated[str, typer.Argument(help="The match's id.")]) -> None:
    """Fold the match's events from the log alone and compare with the stored state."""
    from kibitz.events import decode
    from kibitz.runtime.bootstrap import bootstrap
    from kibitz.services.matches import replay

    settings = _settings()
    settings.demo = False

    async def main() -> tuple[int, Any, Any]:
        container = bootstrap(settings)
        await container.start([])
        try:
            log = container.ctx.event_log
            events = []
            for partition, end in sorted((await log.end_offsets(topics.MATCH_EVENTS)).items()):
                offset = 0
                while offset < end:
                    records = await log.read(topics.MATCH_EVENTS, partition, offset, 500)
                    if not records:
                        break
                    for record in records:
                        if record.key == match_id:
                            _, payload = decode(record.value)
                            events.append(payload)
                    offset = records[-1].offset + 1
            stored = await container.reader.stored_match(match_id)
            return len(events), replay(events), stored
        finally:
            await container.close()

    count, rebuilt, stored = _run(main)
    if count == 0:
        raise _fail(f"no events of match {match_id!r} in the log")
    if rebuilt == stored:
        console.print(f"replayed {count} events of match {match_id}: equal to the stored state")
        return
    console.print(f"replayed {count} events of match {match_id}: DIFFERENT from the stored state")
    for key in sorted(set(rebuilt or {}) | set(stored or {})):
        if (rebuilt or {}).get(key) != (stored or {}).get(key):
            console.print(
                f"  {key}: log {(rebuilt or {}).get(key)!r} != store {(stored or {}).get(key)!r}"
            )
    raise typer.Exit(1)


@bus_app.command("fetch-kafka")
def fetch_kafka() -> None:
    """Fetch Apache Kafka's jars from Maven Central with Maven, once (`kibitz up
    --distributed` and the tests run them with Java 17 or newer)."""
    from kibitz.runtime.kafka import fetch, kafka_version

    try:
        libs = fetch()
    except RuntimeError as exc:
        raise _fail(str(exc)) from None
    console.print(f"Apache Kafka {kafka_version()} in {libs}")
