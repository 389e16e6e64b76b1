"""Event-log throughput: append + consume of N events, end to end, per adapter.

Baseline: bare aiokafka (producer.send + group consumer getmany + commit) on the same broker in
the same run. Targets (issue 2): Kafka adapter >= 0.8x bare aiokafka; embedded log >= 20,000
events/s on a 2-core machine.

    .venv/bin/python bench/bus.py [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from kibitz.adapters.eventlog_kafka import KafkaEventLog
from kibitz.adapters.eventlog_sqlite import SqliteEventLog
from kibitz.ports import EventLog, TopicSpec
from kibitz.runtime.kafka import fetch, start_kafka

PAYLOAD = (
    b'{"id":"00000000-0000-0000-0000-000000000000","type":"probe","key":"k","payload":{"n":1}}'
)
PARTITIONS = 4
WINDOW = 1000  # appends in flight at once
ROUNDS = 5


async def run_adapter(log: EventLog, events: int) -> float:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await log.declare([TopicSpec(topic, partitions=PARTITIONS)])
    consumer = log.consumer(f"bench-{uuid.uuid4().hex[:8]}", [topic])
    await consumer.start()
    started = time.perf_counter()

    async def produce() -> None:
        for base in range(0, events, WINDOW):
            await log.append_many(
                topic,
                [(f"k{i % 64}", PAYLOAD, ()) for i in range(base, min(events, base + WINDOW))],
            )

    async def consume() -> None:
        seen = 0
        while seen < events:
            records = await consumer.poll(max_records=2000, timeout=1.0)
            if records:
                seen += len(records)
                last = {}
                for r in records:
                    last[r.tp] = r.offset + 1
                await consumer.commit(last)

    await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - started
    await consumer.close()
    return events / elapsed


async def run_bare_aiokafka(bootstrap: str, events: int) -> float:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    # The producer settings the adapter uses (acks=all, idempotent, linger 5 ms): the ratio
    # is the adapter's own cost, not a difference of settings.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await producer.start()
    await consumer.start()
    started = time.perf_counter()

    async def produce() -> None:
        for base in range(0, events, WINDOW):
            futures = [
                await producer.send(topic, PAYLOAD, key=f"k{i % 64}".encode())
                for i in range(base, min(events, base + WINDOW))
            ]
            await asyncio.gather(*futures)

    async def consume() -> None:
        seen = 0
        while seen < events:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for messages in batches.values():
                seen += len(messages)
            if batches:
                await consumer.commit()

    await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await producer.stop()
    return events / elapsed


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        embedded = SqliteEventLog(Path(tmp) / "bench.db")
        await embedded.start()
        embedded_rate = await run_adapter(embedded, events)
        await embedded.close()
        fetch()
        broker = start_kafka(Path(tmp) / "broker")
        try:
            # Interleaved, so a broker that slows as it fills weighs on both alike.
            kafka = KafkaEventLog(
                [broker.bootstrap], session_timeout_ms=6000, heartbeat_interval_ms=500
            )
            await kafka.start()
            bare_runs, kafka_runs = [], []
            for _ in range(ROUNDS):
                bare_runs.append(await run_bare_aiokafka(broker.bootstrap, events))
                kafka_runs.append(await run_adapter(kafka, events))
            await kafka.close()
        finally:
            broker.stop()
    baseline = statistics.median(bare_runs)
    kafka_rate = statistics.median(kafka_runs)
    print(f"events per run: {events}, partitions: {PARTITIONS}")
    print(f"embedded SQLite log : {embedded_rate:10.0f} events/s (target >= 20000)")
    print(f"bare aiokafka       : {baseline:10.0f} events/s (median of {ROUNDS} runs, interleaved)")
    print(
        f"Kafka adapter       : {kafka_rate:10.0f} events/s = "
        f"{kafka_rate / baseline:.2f}x bare (target >= 0.8x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().events))
