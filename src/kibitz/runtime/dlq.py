"""The dead-letter queues: what is parked on `<topic>.dlq`, and putting it back or dropping
it. A DLQ's messages stay in the log; a consumer group of its own marks how far they have been
dealt with, so listing shows only what is still parked."""

from __future__ import annotations

from kibitz.ports import EventLog, Record, TopicPartition
from kibitz.runtime.consumer import DLQ_SUFFIX

DLQ_REPLAY_GROUP = "kibitz.dlq-replay"


async def parked(log: EventLog, topic: str, limit: int = 10_000) -> list[Record]:
    """Messages parked on `topic`'s DLQ and not yet replayed or discarded, oldest first."""
    dlq = topic + DLQ_SUFFIX
    start = (await log.committed(DLQ_REPLAY_GROUP, dlq)).get(0, 0)
    return await log.read(dlq, 0, start, limit)


async def parked_count(log: EventLog, topic: str) -> int:
    """How many messages are parked on `topic`'s DLQ, without reading them."""
    dlq = topic + DLQ_SUFFIX
    end = (await log.end_offsets(dlq)).get(0, 0)
    start = (await log.committed(DLQ_REPLAY_GROUP, dlq)).get(0, 0)
    return max(0, end - start)


async def settle(log: EventLog, topic: str, *, discard: bool) -> int:
    """Put every parked message back on `topic` (or drop them); returns how many."""
    records = await parked(log, topic)
    if not records:
        return 0
    if not discard:
        for record in records:
            await log.append(topic, record.key, record.value, [("replayed_from", b"dlq")])
    consumer = log.consumer(DLQ_REPLAY_GROUP, [topic + DLQ_SUFFIX])
    await consumer.start()
    try:
        await consumer.commit({TopicPartition(topic + DLQ_SUFFIX, 0): records[-1].offset + 1})
    finally:
        await consumer.close()
    return len(records)


def describe(record: Record) -> dict[str, object]:
    """A parked message as people read it."""
    return {
        "offset": record.offset,
        "key": record.key,
        "attempts": (record.header("attempts") or b"").decode(),
        "error": (record.header("error") or b"").decode(),
        "group": (record.header("group") or b"").decode(),
        "source": (record.header("source") or b"").decode(),
        "at_ms": record.timestamp_ms,
    }
