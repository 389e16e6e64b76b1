"""The Kafka adapter of the EventLog port: a thin layer over aiokafka.

Written for Apache Kafka (4.x, KRaft). The producer is idempotent with acks=all: a retried
send after a lost acknowledgement is not written twice, and a record is acknowledged once the
partition's in-sync replicas have it. Consumers commit manually per partition (the runtime
commits the last contiguous completed offset) and drain in-flight work in the rebalance
listener. docs/operations.md explains the settings.

aiokafka's idempotent producer does not recover its sequence numbers after batches failed (a
broker away for longer than the request timeout): every later send to those partitions is
refused as out of order. Such an error replaces the producer with a new one (a new producer
id, sequences from 0) and is raised, so the caller's retry sends again on the new producer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KafkaTP
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    InvalidProducerEpoch,
    KafkaError,
    NotCoordinatorForGroupError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from kibitz.ports import Record, RevokeListener, TopicPartition, TopicSpec

REBALANCE_TIMEOUT_MS = 10_000

# A group's coordinator not there yet (a fresh broker creates its offsets topic on the first
# group request) or moving: asked again, up to COORDINATOR_TRIES times (about 10 s in all).
COORDINATOR_ERRORS = (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)
COORDINATOR_TRIES = 14
T = TypeVar("T")

# The broker refuses the producer's idempotence state: only a new producer gets past them.
PRODUCER_STATE_ERRORS = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
)


class KafkaEventLog:
    def __init__(
        self,
        bootstrap: Sequence[str],
        *,
        client_id: str = "kibitz",
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_interval_ms: int = 300_000,
        request_timeout_ms: int = 30_000,
    ) -> None:
        self.bootstrap = ",".join(bootstrap)
        self.client_id = client_id
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.max_poll_interval_ms = max_poll_interval_ms
        self.request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None  # reused for end-offset queries
        self._offsets_lock = asyncio.Lock()
        self._producer_lock = asyncio.Lock()
        self._known_topics: set[str] = set()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,  # a few ms to fill a batch: appends come in bursts (imports, moves)
            request_timeout_ms=self.request_timeout_ms,
        )

    async def _replace_producer(self, broken: AIOKafkaProducer) -> None:
        """A new producer in place of `broken` (once, however many sends saw it fail)."""
        async with self._producer_lock:
            if id(self._producer) != id(broken):
                return  # another send replaced it already
            fresh = self._new_producer()
            await fresh.start()
            self._producer = fresh
        with contextlib.suppress(Exception):
            await broken.stop()

    async def start(self) -> None:
        if self._producer is not None:
            return
        self._producer = self._new_producer()
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id=self.client_id
        )
        try:
            await self._producer.start()
            await self._admin.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
        if self._offsets is not None:
            await self._offsets.stop()
            self._offsets = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("event log not started")
        return self._producer

    @property
    def admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise RuntimeError("event log not started")
        return self._admin

    async def ping(self) -> None:
        await self.admin.list_topics()

    async def declare(self, topics: Sequence[TopicSpec]) -> None:
        existing = set(await self.admin.list_topics())
        new = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=1,
                topic_configs={
                    # None: kept for ever (-1), as the match history is (it is replayed).
                    "retention.ms": str(spec.retention_ms if spec.retention_ms else -1),
                    **{k: v for k, v in spec.config.items() if "." in k and k != "max.records"},
                },
            )
            for spec in topics
            if spec.name not in existing
        ]
        if new:
            try:
                await self.admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        self._known_topics |= {spec.name for spec in topics}

    async def append(
        self, topic: str, key: str, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> tuple[int, int]:
        producer = self.producer
        try:
            meta = await producer.send_and_wait(
                topic, value, key=key.encode(), headers=list(headers)
            )
        except PRODUCER_STATE_ERRORS:
            await self._replace_producer(producer)
            raise
        return int(meta.partition), int(meta.offset)

    async def append_many(
        self, topic: str, items: Sequence[tuple[str, bytes, Sequence[tuple[str, bytes]]]]
    ) -> list[tuple[int, int]]:
        # Enqueue every message first (aiokafka batches them), then wait for the acks.
        producer = self.producer
        try:
            futures = [
                await producer.send(topic, value, key=key.encode(), headers=list(headers))
                for key, value, headers in items
            ]
            metas = await asyncio.gather(*futures)
        except PRODUCER_STATE_ERRORS:
            await self._replace_producer(producer)
            raise
        return [(int(m.partition), int(m.offset)) for m in metas]

    def consumer(
        self,
        group: str,
        topics: Sequence[str],
        *,
        on_revoke: RevokeListener | None = None,
    ) -> KafkaConsumer:
        return KafkaConsumer(self, group, list(topics), on_revoke)

    async def _partitions(self, topic: str) -> list[int]:
        for _ in range(50):
            parts = self.producer.client.cluster.partitions_for_topic(topic)
            if parts:
                return sorted(parts)
            await self.producer.client.force_metadata_update()
            await self.producer.client._wait_on_metadata(topic)
        return []

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """Each partition's end (the offset the next record gets), as ListOffsets states it."""
        # One group-less consumer, started on first use and kept: the ops page and the lag
        # gauges ask often, and a connection per question costs more than the question.
        tps = [KafkaTP(topic, p) for p in await self._partitions(topic)]
        async with self._offsets_lock:
            if self._offsets is None:
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap, enable_auto_commit=False
                )
                await consumer.start()
                self._offsets = consumer
            ends = await self._offsets.end_offsets(tps)
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    async def _coordinated(self, ask: Callable[[], Awaitable[T]]) -> T:
        """`ask()` (an admin request about a group), asked again while the broker has no
        coordinator for the group yet: a fresh broker creates its offsets topic on the first
        such request. Bounded: after COORDINATOR_TRIES the error is raised."""
        for attempt in range(1, COORDINATOR_TRIES + 1):
            try:
                return await ask()
            except COORDINATOR_ERRORS:
                if attempt == COORDINATOR_TRIES:
                    raise
                await asyncio.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        parts = await self._partitions(topic)
        offsets = await self._coordinated(
            lambda: self.admin.list_consumer_group_offsets(
                group, partitions=[KafkaTP(topic, p) for p in parts]
            )
        )
        out = {p: 0 for p in parts}
        for tp, meta in offsets.items():
            if tp.topic == topic and meta.offset >= 0:
                out[tp.partition] = int(meta.offset)
        return out

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        ends = await self.end_offsets(topic)
        done = await self.committed(group, topic)
        return {p: max(0, ends[p] - done.get(p, 0)) for p in ends}

    async def members(self, group: str) -> int:
        responses = await self._coordinated(lambda: self.admin.describe_consumer_groups([group]))
        # DescribeGroups: per group (error, id, state, protocol type, protocol, members, …)
        return sum(len(described[5]) for r in responses for described in r.groups)

    async def reset_group(self, group: str, topic: str) -> None:
        # Kafka commits only through a group member: join (alone, as an operator would after
        # stopping the service), take every partition, commit offset 0, leave.
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
        )
        await consumer.start()
        try:
            wanted = {KafkaTP(topic, p) for p in await self._partitions(topic)}
            async with asyncio.timeout(60):
                while set(consumer.assignment()) != wanted:
                    await consumer.getmany(timeout_ms=200, max_records=1)
            await consumer.commit({tp: 0 for tp in wanted})
        finally:
            await consumer.stop()

    async def read(self, topic: str, partition: int, offset: int, limit: int = 100) -> list[Record]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = KafkaTP(topic, partition)
            end = (await self.end_offsets(topic)).get(partition, 0)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            out: list[Record] = []
            while len(out) < limit and await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=limit - len(out))
                if not batch:
                    break
                out += [_record(m) for m in batch.get(tp, [])]
            return out
        finally:
            await consumer.stop()


def _record(message: object) -> Record:
    m = message
    return Record(
        topic=m.topic,  # type: ignore[attr-defined]
        partition=int(m.partition),  # type: ignore[attr-defined]
        offset=int(m.offset),  # type: ignore[attr-defined]
        key=(m.key or b"").decode(),  # type: ignore[attr-defined]
        value=bytes(m.value or b""),  # type: ignore[attr-defined]
        headers=tuple((k, bytes(v)) for k, v in (m.headers or ())),  # type: ignore[attr-defined]
        timestamp_ms=int(m.timestamp or 0),  # type: ignore[attr-defined]
    )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: list[KafkaTP]) -> None:
        gone = {TopicPartition(tp.topic, tp.partition) for tp in revoked}
        if gone and self.consumer.on_revoke is not None:
            await self.consumer.on_revoke(gone)

    async def on_partitions_assigned(self, assigned: list[KafkaTP]) -> None:
        return None


class KafkaConsumer:
    def __init__(
        self, log: KafkaEventLog, group: str, topics: list[str], on_revoke: RevokeListener | None
    ) -> None:
        self.log = log
        self.group = group
        self.topics = topics
        self.on_revoke = on_revoke
        self._consumer: AIOKafkaConsumer | None = None

    @property
    def raw(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("consumer not started")
        return self._consumer

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.log.bootstrap,
            group_id=self.group,
            client_id=f"{self.log.client_id}-{self.group}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.log.session_timeout_ms,
            heartbeat_interval_ms=self.log.heartbeat_interval_ms,
            max_poll_interval_ms=self.log.max_poll_interval_ms,
            # How long the coordinator waits for every member to rejoin in a rebalance: a
            # member draining its in-flight work on a busy machine needs seconds; with less,
            # it is expelled, rejoins, and the group rebalances again and again.
            rebalance_timeout_ms=max(self.log.session_timeout_ms, REBALANCE_TIMEOUT_MS),
            metadata_max_age_ms=5_000,
        )
        self._consumer.subscribe(self.topics, listener=_Listener(self))
        await self._consumer.start()

    def assignment(self) -> set[TopicPartition]:
        if self._consumer is None:
            return set()
        return {TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def pause(self, partitions: set[TopicPartition]) -> None:
        self.raw.pause(*[KafkaTP(*tp) for tp in partitions])

    def resume(self, partitions: set[TopicPartition]) -> None:
        self.raw.resume(*[KafkaTP(*tp) for tp in partitions])

    async def poll(self, max_records: int = 500, timeout: float = 0.5) -> list[Record]:
        batches = await self.raw.getmany(timeout_ms=int(timeout * 1000), max_records=max_records)
        return [_record(m) for messages in batches.values() for m in messages]

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        assigned = self.raw.assignment()
        mine = {KafkaTP(*tp): o for tp, o in offsets.items() if KafkaTP(*tp) in assigned}
        if mine:
            try:
                await self.raw.commit(mine)
            except KafkaError:
                # The group rebalanced under us: the new owner reads from the last commit.
                return

    async def seek_to_beginning(self, partitions: set[TopicPartition] | None = None) -> None:
        tps = [KafkaTP(*tp) for tp in partitions] if partitions else list(self.raw.assignment())
        if tps:
            await self.raw.seek_to_beginning(*tps)

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def abandon(self) -> None:
        """Stop without leaving cleanly or committing: what a killed process looks like."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            self.on_revoke = None  # no draining, no commit: the work is simply lost
            await consumer.stop()
