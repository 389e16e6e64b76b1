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
from kibitz.ports import EventLog, Record
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


async def _records(log: EventLog, topic: str, key: str | None = None) -> list[Record]:
    """Every record of `topic` (of `key` only, when given), partition by partition."""
    found: list[Record] = []
    for partition, end in sorted((await log.end_offsets(topic)).items()):
        offset = 0
        while offset < end:
            records = await log.read(topic, partition, offset, 500)
            if not records:
                break
            found += [r for r in records if key is None or r.key == key]
            offset = records[-1].offset + 1
    return found


def _compare(what: str, rebuilt: dict[str, Any] | None, stored: dict[str, Any] | None) -> None:
    """Say whether `rebuilt` (from the log) equals `stored`; exit 1 with the differences if not."""
    if rebuilt == stored:
        console.print(f"{what}: equal to the stored state")
        return
    console.print(f"{what}: DIFFERENT from the stored state")
    for key in sorted(set(rebuilt or {}) | set(stored or {})):
        if (rebuilt or {}).get(key) != (stored or {}).get(key):
            console.print(
                f"  {key}: log {(rebuilt or {}).get(key)!r} != store {(stored or {}).get(key)!r}"
            )
    raise typer.Exit(1)


def _from_log(read: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `read(container)` on a container started without services (the demo off)."""
    from kibitz.runtime.bootstrap import bootstrap

    settings = _settings()
    settings.demo = False

    async def main() -> Any:
        container = bootstrap(settings)
        await container.start([])
        try:
            return await read(container)
        finally:
            await container.close()

    return _run(main)


@replay_app.command("match")
def replay_match(
    match_id: Annotated[str, typer.Argument(help="The match's id.")],
    from_state: Annotated[
        bool,
        typer.Option(
            "--from-state",
            help="Read the compacted match-state topic (the latest state) instead of folding "
            "every event of match-events.",
        ),
    ] = False,
) -> None:
    """Rebuild a match from the log alone and compare it with the stored state: by folding
    its events (match-events), or from its latest state (match-state, compacted)."""
    from kibitz.events import MatchStateChanged, decode
    from kibitz.services.matches import replay

    topic = topics.MATCH_STATE if from_state else topics.MATCH_EVENTS

    async def read(container: Any) -> tuple[int, Any, Any]:
        records = await _records(container.ctx.event_log, topic, match_id)
        payloads = [decode(r.value)[1] for r in records]
        if from_state:  # the last record of the key is its latest state
            states = [p for p in payloads if isinstance(p, MatchStateChanged)]
            rebuilt = states[-1].state if states else None
        else:
            rebuilt = replay(payloads)
        return len(payloads), rebuilt, await container.reader.stored_match(match_id)

    count, rebuilt, stored = _from_log(read)
    if count == 0:
        raise _fail(f"no records of match {match_id!r} on {topic}")
    what = "its latest state" if from_state else f"{count} events"
    _compare(f"replayed {what} of match {match_id} from {topic}", rebuilt, stored)


@replay_app.command("robots")
def replay_robots() -> None:
    """Rebuild the robot pool from the compacted robot-pool-state topic alone (the latest
    state of each instance) and compare it with the store."""
    from kibitz.events import RobotStateChanged, decode

    async def read(container: Any) -> tuple[int, Any, Any]:
        rebuilt: dict[str, dict[str, Any]] = {}
        records = await _records(container.ctx.event_log, topics.ROBOT_POOL_STATE)
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            payload = decode(record.value)[1]
            if isinstance(payload, RobotStateChanged):
                rebuilt[payload.robot_id] = {
                    "personality": payload.personality,
                    "state": payload.state,
                    "match_id": payload.match_id,
                    "round": payload.round,
                }
        return len(records), rebuilt, await container.reader.robot_instances()

    count, rebuilt, stored = _from_log(read)
    if count == 0:
        raise _fail(f"no records on {topics.ROBOT_POOL_STATE}")
    _compare(f"rebuilt {len(rebuilt)} robots from {topics.ROBOT_POOL_STATE}", rebuilt, stored)


@bus_app.command("fetch-kafka")
def fetch_kafka() -> None:
    """Fetch Apache Kafka's jars from Maven Central with Maven, once (`kibitz up
    --distributed` and the tests run them with Java 17 or newer), and archive the classes a
    broker loads (class-data sharing) so that brokers start faster."""
    from kibitz.runtime.kafka import build_class_archive, fetch, kafka_version

    try:
        libs = fetch()
    except RuntimeError as exc:
        raise _fail(str(exc)) from None
    console.print(f"Apache Kafka {kafka_version()} in {libs}")
    archive = build_class_archive()  # once: brokers then start in half the time
    if archive is not None:
        console.print(f"its classes archived for this Java in {archive.name}")
