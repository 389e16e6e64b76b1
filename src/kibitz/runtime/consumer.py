"""The consumer runner: drives one consumer group's handlers over the event log.

Per partition, records are handled one at a time in offset order (so per-key order holds);
partitions run concurrently. A partition with too much fetched-but-unhandled work is paused so
the poll loop keeps the group membership alive however long a handler takes. Offsets are
committed only after a record's handler and its publishes are done. A failing handler's record
goes to `<topic>.retry` with exponential backoff, then to `<topic>.dlq` with the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from kibitz.backoff import Backoff
from kibitz.errors import MalformedEvent, is_storage_full
from kibitz.events import Envelope, Payload, decode
from kibitz.ports import Consumer, EventLog, ProcessedEvents, Record, TopicPartition
from kibitz.runtime import metrics

log = logging.getLogger("kibitz.consumer")

Handler = Callable[[Envelope, Payload], Awaitable[None]]
BatchHandler = Callable[[list[tuple[Envelope, Payload]]], Awaitable[None]]
# Told of each record parked on the DLQ (with the reason), so the service can end what waits
# on it: a game that cannot be stored is then counted as rejected on its import.
DeadLetterHook = Callable[[Envelope, Payload, str], Awaitable[None]]

RETRY_SUFFIX = ".retry"
DLQ_SUFFIX = ".dlq"


def base_topic(topic: str) -> str:
    return topic.removesuffix(RETRY_SUFFIX)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 60.0
    handler_timeout: float = 120.0

    def delay(self, attempt: int) -> float:
        """Backoff before attempt `attempt + 1` (attempt 1 failed → base_delay)."""
        return Backoff(self.base_delay, self.max_delay).delay(attempt)


@dataclass
class _PartitionWork:
    queue: deque[Record] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    discard: bool = False
    completed: int | None = None  # next offset to commit
    committed: int | None = None
    resume_at: float | None = None  # the drain failed (the log unreachable): start it again then


class ConsumerRunner:
    """Runs `handlers` (topic → handler) as consumer group `group` until `stop()`."""

    def __init__(
        self,
        log_: EventLog,
        group: str,
        handlers: Mapping[str, Handler],
        *,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        batch_size: int = 500,
        processed: ProcessedEvents | None = None,
        retry: RetryPolicy | None = None,
        max_buffered_per_partition: int = 200,
        clock: Callable[[], float] = time.time,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        self.log = log_
        self.group = group
        self.batch_handlers = dict(batch_handlers or {})
        # A batch handler also serves single records (retries, and a failed batch's records).
        self.handlers: dict[str, Handler] = {
            **{t: _single(h) for t, h in self.batch_handlers.items()},
            **handlers,
        }
        self.batch_size = batch_size
        self.processed = processed
        self.retry = retry or RetryPolicy()
        self.max_buffered = max_buffered_per_partition
        self.clock = clock
        self.on_dead_letter = on_dead_letter
        self.resume_delay = 1.0
        self._work: dict[TopicPartition, _PartitionWork] = {}
        self._paused: set[TopicPartition] = set()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._consumer: Consumer | None = None
        self.handled = 0

    def assignment(self) -> set[TopicPartition]:
        return self._consumer.assignment() if self._consumer is not None else set()

    @property
    def topics(self) -> list[str]:
        return [t for base in self.handlers for t in (base, base + RETRY_SUFFIX)]

    async def run(self) -> None:
        """Consume until `stop()`; raises if the log cannot be reached (the supervisor retries)."""
        self._stopping.clear()
        self._stopped.clear()
        consumer = self._consumer = self.log.consumer(
            self.group, self.topics, on_revoke=self._on_revoke
        )
        try:
            await consumer.start()
        except BaseException:
            self._stopped.set()
            raise
        active = metrics.ACTIVE_TASKS.labels(self.group)
        lag_task = asyncio.create_task(self._report_lag())
        try:
            while not self._stopping.is_set():
                records = await consumer.poll(max_records=500, timeout=0.2)
                for record in records:
                    work = self._work.setdefault(record.tp, _PartitionWork())
                    work.discard = False
                    work.queue.append(record)
                for tp, work in self._work.items():
                    self._keep_draining(tp, work)
                busy = {
                    tp for tp, w in self._work.items() if len(w.queue) >= self.max_buffered
                } - self._paused
                if busy:
                    consumer.pause(busy)
                    self._paused |= busy
                idle = {
                    tp for tp in self._paused if len(self._work[tp].queue) < self.max_buffered // 2
                }
                if idle:
                    consumer.resume(idle)
                    self._paused -= idle
                active.set(sum(1 for w in self._work.values() if w.task and not w.task.done()))
                await self._commit_completed()
        finally:
            lag_task.cancel()
            try:
                await self._finish(set(self._work))
                await consumer.close()
            finally:
                self._stopped.set()

    def _keep_draining(self, tp: TopicPartition, work: _PartitionWork) -> None:
        """Start the partition's drain when it has work and none runs. A drain that died (a
        handler's record could not even be sent to retry: the log was unreachable) starts
        again a second later, from the record it stopped at: nothing waits for a new record."""
        task = work.task
        if not work.queue or work.discard or (task is not None and not task.done()):
            return
        now = time.monotonic()
        if task is not None and work.resume_at is None:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                log.warning(
                    "partition_stalled group=%s partition=%s/%d error=%s; resuming in %.0f s",
                    self.group,
                    tp.topic,
                    tp.partition,
                    error,
                    self.resume_delay,
                )
                work.resume_at = now + self.resume_delay
                return
        if work.resume_at is not None and now < work.resume_at:
            return
        work.resume_at = None
        work.task = asyncio.create_task(self._drain_partition(tp, work))

    async def _report_lag(self, every: float = 10.0) -> None:
        """Publish the group's lag per partition as a gauge (appended minus committed)."""
        while True:
            for topic in self.topics:
                try:
                    lag = await self.log.lag(self.group, topic)
                except Exception as exc:  # the log may be briefly unreachable; try again later
                    log.debug("lag_unavailable group=%s topic=%s error=%s", self.group, topic, exc)
                    continue
                for partition, behind in lag.items():
                    metrics.CONSUMER_LAG.labels(self.group, topic, str(partition)).set(behind)
            await asyncio.sleep(every)

    async def stop(self) -> None:
        """Finish the records being handled, hand back the rest, commit, leave the group."""
        self._stopping.set()
        if self._consumer is not None:
            await self._stopped.wait()

    async def _on_revoke(self, partitions: set[TopicPartition]) -> None:
        await self._finish(partitions)

    async def _finish(self, partitions: set[TopicPartition]) -> None:
        """Let in-flight handlers of `partitions` finish, drop their queued records, commit."""
        for tp in partitions:
            work = self._work.get(tp)
            if work is None:
                continue
            work.discard = True
            if work.task is not None:
                await asyncio.gather(work.task, return_exceptions=True)
        await self._commit_completed(partitions)
        for tp in partitions:
            self._work.pop(tp, None)
            self._paused.discard(tp)

    async def _commit_completed(self, only: set[TopicPartition] | None = None) -> None:
        offsets = {
            tp: w.completed
            for tp, w in self._work.items()
            if w.completed is not None
            and w.completed != w.committed
            and (only is None or tp in only)
        }
        if not offsets:
            return
        if self._consumer is None:
            return
        await self._consumer.commit(offsets)
        for tp, offset in offsets.items():
            self._work[tp].committed = offset

    async def _drain_partition(self, tp: TopicPartition, work: _PartitionWork) -> None:
        while work.queue and not work.discard:
            record = work.queue[0]
            if record.topic in self.batch_handlers:
                batch = [work.queue[i] for i in range(min(self.batch_size, len(work.queue)))]
                await self._handle_batch(record.topic, batch)
                for _ in batch:
                    work.queue.popleft()
                work.completed = batch[-1].offset + 1
                continue
            await self._handle(record)
            work.queue.popleft()
            work.completed = record.offset + 1
        if work.discard:
            work.queue.clear()

    async def _handle_batch(self, topic: str, records: list[Record]) -> None:
        """One handler call for many records of one partition; on failure each record is
        handled alone, so retries and the DLQ work per record as usual."""
        decoded: list[tuple[Record, Envelope, Payload]] = []
        for record in records:
            try:
                envelope, payload = decode(record.value)
            except MalformedEvent as exc:
                await self._dead_letter(record, topic, exc.detail, attempts=0)
                continue
            decoded.append((record, envelope, payload))
        if self.processed is not None and decoded:
            seen = await self.processed.seen_many(self.group, [e.id for _, e, _ in decoded])
            if seen:
                metrics.MESSAGES_DUPLICATE.labels(self.group, topic).inc(len(seen))
                decoded = [d for d in decoded if d[1].id not in seen]
        if not decoded:
            return
        started = time.perf_counter()
        try:
            await asyncio.wait_for(
                self.batch_handlers[topic]([(e, p) for _, e, p in decoded]),
                self.retry.handler_timeout,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "batch_failed group=%s topic=%s size=%d error=%s; handling one by one",
                self.group,
                topic,
                len(decoded),
                exc,
            )
            for record, _, _ in decoded:
                await self._handle(record)
            return
        finally:
            metrics.HANDLER_SECONDS.labels(self.group, topic).observe(time.perf_counter() - started)
        if self.processed is not None:
            await self.processed.mark_many(self.group, [e.id for _, e, _ in decoded])
        metrics.MESSAGES_PROCESSED.labels(self.group, topic).inc(len(decoded))
        self.handled += len(decoded)

    async def _handle(self, record: Record) -> None:
        topic = base_topic(record.topic)
        handler = self.handlers[topic]
        try:
            envelope, payload = decode(record.value)
        except MalformedEvent as exc:
            await self._dead_letter(record, topic, exc.detail, attempts=0)
            return
        if record.topic.endswith(RETRY_SUFFIX):
            due = float((record.header("not_before") or b"0").decode())
            wait = due - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
        if self.processed is not None and await self.processed.seen(self.group, envelope.id):
            metrics.MESSAGES_DUPLICATE.labels(self.group, topic).inc()
            return
        attempt = int((record.header("attempt") or b"1").decode())
        started = time.perf_counter()
        try:
            await asyncio.wait_for(handler(envelope, payload), self.retry.handler_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            metrics.MESSAGES_FAILED.labels(self.group, topic).inc()
            if is_storage_full(exc):
                # Not the record's fault, and no attempt used: the partition waits (its drain
                # resumes from this record) until the disk has room, then goes on.
                raise
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning(
                "handler_failed group=%s topic=%s key=%s attempt=%d error=%s",
                self.group,
                topic,
                record.key,
                attempt,
                reason,
            )
            if isinstance(exc, MalformedEvent) or attempt >= self.retry.max_attempts:
                await self._dead_letter(record, topic, reason, attempts=attempt)
            else:
                await self.log.append(
                    topic + RETRY_SUFFIX,
                    record.key,
                    record.value,
                    [
                        ("attempt", str(attempt + 1).encode()),
                        ("not_before", str(self.clock() + self.retry.delay(attempt)).encode()),
                        ("error", reason.encode()),
                        ("group", self.group.encode()),
                    ],
                )
            return
        finally:
            metrics.HANDLER_SECONDS.labels(self.group, topic).observe(time.perf_counter() - started)
        if self.processed is not None:
            await self.processed.mark(self.group, envelope.id)
        metrics.MESSAGES_PROCESSED.labels(self.group, topic).inc()
        self.handled += 1

    async def _dead_letter(self, record: Record, topic: str, reason: str, attempts: int) -> None:
        metrics.MESSAGES_DEAD.labels(self.group, topic).inc()
        log.error(
            "dead_lettered group=%s topic=%s key=%s error=%s", self.group, topic, record.key, reason
        )
        await self.log.append(
            topic + DLQ_SUFFIX,
            record.key,
            record.value,
            [
                ("error", reason.encode()),
                ("attempts", str(attempts).encode()),
                ("group", self.group.encode()),
                ("source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ],
        )
        if self.on_dead_letter is None:
            return
        try:
            envelope, payload = decode(record.value)
        except MalformedEvent:
            return
        await self.on_dead_letter(envelope, payload, reason)


def _single(batch_handler: BatchHandler) -> Handler:
    async def handle(envelope: Envelope, payload: Payload) -> None:
        await batch_handler([(envelope, payload)])

    return handle
