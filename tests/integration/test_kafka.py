"""What only Apache Kafka does: compaction of the state topics, idempotent appends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kibitz import topics
from kibitz.ports import Record, TopicSpec
from tests.conftest import make_kafka_log

pytestmark = pytest.mark.kafka


async def _everything(log: object, topic: str) -> list[Record]:
    ends = await log.end_offsets(topic)  # type: ignore[attr-defined]
    found: list[Record] = []
    for partition, end in ends.items():
        offset = 0
        while offset < end:
            records = await log.read(topic, partition, offset, 500)  # type: ignore[attr-defined]
            if not records:
                break
            found += records
            offset = records[-1].offset + 1
    return found


async def test_a_compacted_topic_keeps_only_the_latest_record_of_each_key(
    broker: str, topic: str
) -> None:
    """Ten keys written five times each, in a segment that then closes: Kafka's cleaner keeps
    the last record of each key (the state topics' guarantee), in order, offsets unchanged."""
    log = make_kafka_log(broker)
    await log.start()
    try:
        small = {"segment.ms": "100", "min.cleanable.dirty.ratio": "0.01"}
        await log.declare(
            [TopicSpec(topic, partitions=1, retention_ms=None, config=topics.COMPACT | small)]
        )
        for version in range(5):
            await log.append_many(
                topic, [(f"match-{k}", f"{k}:{version}".encode(), ()) for k in range(10)]
            )
        written = await log.end_offsets(topic)
        assert written == {0: 50}

        async def cleaned() -> list[Record]:
            async with asyncio.timeout(90):
                while True:
                    # A record on another key now and then closes the segment (segment.ms),
                    # so that the cleaner may take it.
                    await log.append(topic, "tick", b"")
                    records = [r for r in await _everything(log, topic) if r.key != "tick"]
                    if len(records) == 10:
                        return records
                    await asyncio.sleep(0.2)

        records = await cleaned()
        assert {r.key: r.value for r in records} == {
            f"match-{k}": f"{k}:4".encode() for k in range(10)
        }
        assert [r.offset for r in records] == list(range(40, 50))  # the last ones, kept
    finally:
        await log.close()


async def test_the_state_topics_are_declared_compacted(broker: str) -> None:
    log = make_kafka_log(broker)
    await log.start()
    try:
        wanted = [s for s in topics.all_topics() if s.name in topics.STATE_TOPICS]
        assert {s.name for s in wanted} == {topics.MATCH_STATE, topics.ROBOT_POOL_STATE}
        await log.declare(wanted)
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        # A topic just created may not be described yet (its resource comes back with an
        # error and no entries): asked again until both are, within a generous deadline.
        policies: dict[str, str] = {}
        deadline = asyncio.get_running_loop().time() + 30
        while len(policies) < len(wanted):
            assert asyncio.get_running_loop().time() < deadline, policies
            described = await log.admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in wanted]
            )
            for response in described:
                for error, _, _, name, entries, *_ in response.resources:
                    config = {entry[0]: entry[1] for entry in entries}
                    if error == 0 and "cleanup.policy" in config:
                        policies[name] = config["cleanup.policy"]
            if len(policies) < len(wanted):
                await asyncio.sleep(0.2)
        assert policies == {topics.MATCH_STATE: "compact", topics.ROBOT_POOL_STATE: "compact"}
    finally:
        await log.close()


async def test_appends_made_while_the_broker_is_away_are_written_once_in_order_when_it_is_back(
    tmp_path: Path,
) -> None:
    """The idempotent producer holds what it could not send while the broker is away (past
    its request timeout) and writes it, once each and in order, when the broker is back."""
    from kibitz.adapters.eventlog_kafka import KafkaEventLog
    from kibitz.runtime.kafka import start_kafka

    broker = start_kafka(tmp_path / "broker")
    log = KafkaEventLog([broker.bootstrap], client_id="away", request_timeout_ms=2000)
    topic = "away"
    try:
        await log.start()
        await log.declare([TopicSpec(topic, partitions=1)])
        assert await log.append(topic, "k", b"before") == (0, 0)
        broker.process.terminate()
        broker.process.wait(30)
        waiting = [
            asyncio.create_task(log.append(topic, "k", f"while away {i}".encode()))
            for i in range(5)
        ]
        await asyncio.sleep(3)  # longer than the request timeout: the sends are retried
        assert not any(task.done() for task in waiting)
        broker = start_kafka(tmp_path / "broker")  # the same log, the same port
        async with asyncio.timeout(60):
            written = await asyncio.gather(*waiting)
            after = await log.append(topic, "k", b"after")
        assert [offset for _, offset in written] == [1, 2, 3, 4, 5] and after == (0, 6)
        values = [r.value for r in await _everything(log, topic)]
        assert values == [b"before", *(f"while away {i}".encode() for i in range(5)), b"after"]
    finally:
        await log.close()
        broker.process.kill()


def test_the_brokers_of_this_run_map_the_class_archive_fetch_kafka_wrote(broker: str) -> None:
    """`kibitz bus fetch-kafka` (./dev.sh) archives Kafka's classes once; every broker, this
    run's shared one too, is started with it."""
    import json
    import os

    from kibitz.runtime.kafka import build_class_archive, class_archive, jvm_options
    from tests.conftest import RUN_DIR

    archive = build_class_archive()  # already there: returned at once
    assert archive is not None and archive == class_archive() and archive.stat().st_size > 0
    assert f"-XX:SharedArchiveFile={archive}" in jvm_options()
    state = Path(os.environ[RUN_DIR]) / "broker.json"  # absent when KIBITZ_TEST_KAFKA is given
    if state.exists():
        pid = json.loads(state.read_text())["pid"]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert f"-XX:SharedArchiveFile={archive}" in argv
