"""One contract for the EventLog port, run against the embedded SQLite log and against Kafka."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from kibitz.adapters.eventlog_sqlite import SqliteEventLog, _Db
from kibitz.events import Envelope, Payload, Probe, decode, new_event
from kibitz.ports import EventLog, Record, TopicSpec
from kibitz.runtime.consumer import ConsumerRunner, RetryPolicy
from kibitz.runtime.publisher import Publisher
from tests.conftest import make_sqlite_log


async def _consume(
    log: EventLog, group: str, topic: str, count: int, timeout: float = 30.0
) -> list[Record]:
    consumer = log.consumer(group, [topic])
    await consumer.start()
    got: list[Record] = []
    try:
        async with asyncio.timeout(timeout):
            while len(got) < count:
                got += await consumer.poll(timeout=0.5)
        await consumer.commit({r.tp: r.offset + 1 for r in got})
    finally:
        await consumer.close()
    return got


async def _eventually(predicate: object, timeout: float = 30.0, state: object = None) -> None:
    """Wait for `predicate()`; on timeout fail saying what was awaited and, when given, the
    `state()` of the parties at that moment."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():  # type: ignore[operator]
                await asyncio.sleep(0.05)
    except TimeoutError:
        where = state() if callable(state) else ""
        raise AssertionError(
            f"timed out after {timeout}s waiting for {predicate}: {where}"
        ) from None


async def test_same_key_same_partition_in_order_under_concurrent_producers(
    event_log: EventLog, topic: str
) -> None:
    await event_log.declare([TopicSpec(topic, partitions=4)])

    async def produce(producer: int) -> None:
        for seq in range(40):
            key = f"p{producer}-k{seq % 3}"
            await event_log.append(topic, key, f"{producer}:{seq}".encode())

    await asyncio.gather(*(produce(p) for p in range(4)))
    records = await _consume(event_log, f"g-{uuid.uuid4().hex[:6]}", topic, 160)
    assert len(records) == 160
    by_key: dict[str, list[Record]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[record.key].append(record)
    assert len(by_key) == 12
    for key, rs in by_key.items():
        assert len({r.partition for r in rs}) == 1, key
        seqs = [int(r.value.decode().split(":")[1]) for r in rs]
        assert seqs == sorted(seqs), key


async def test_committed_offset_survives_a_restart_and_replay_reads_everything(
    event_log: EventLog, topic: str
) -> None:
    await event_log.declare([TopicSpec(topic, partitions=2)])
    for i in range(10):
        await event_log.append(topic, f"k{i}", str(i).encode())
    group = f"g-{uuid.uuid4().hex[:6]}"
    first = await _consume(event_log, group, topic, 10)
    assert sorted(int(r.value) for r in first) == list(range(10))
    for i in range(10, 15):
        await event_log.append(topic, f"k{i}", str(i).encode())
    second = await _consume(event_log, group, topic, 5)
    assert sorted(int(r.value) for r in second) == list(range(10, 15))
    assert sum((await event_log.lag(group, topic)).values()) == 0

    await event_log.reset_group(group, topic)
    assert sum((await event_log.lag(group, topic)).values()) == 15
    replayed = await _consume(event_log, group, topic, 15)
    assert sorted(int(r.value) for r in replayed) == list(range(15))


async def test_lag_counts_appended_but_uncommitted(event_log: EventLog, topic: str) -> None:
    await event_log.declare([TopicSpec(topic, partitions=3)])
    group = f"g-{uuid.uuid4().hex[:6]}"
    for i in range(9):
        await event_log.append(topic, f"k{i}", b"x")
    assert sum((await event_log.lag(group, topic)).values()) == 9
    assert sum((await event_log.end_offsets(topic)).values()) == 9
    await _consume(event_log, group, topic, 9)
    assert sum((await event_log.lag(group, topic)).values()) == 0


async def test_end_offsets_and_reads_count_every_record_of_a_batched_append(
    event_log: EventLog, topic: str
) -> None:
    """`append_many` lets the producer pack many records into one batch; the end of the
    partition is past the last of them, and a read from 0 returns them all; a group that
    never ran lags by all of them (on a fresh broker, the first group request waits for the
    group coordinator)."""
    await event_log.declare([TopicSpec(topic, partitions=2)])
    await event_log.append_many(topic, [(f"k{i % 2}", str(i).encode(), ()) for i in range(40)])
    await event_log.append_many(topic, [(f"k{i % 2}", str(i).encode(), ()) for i in range(40, 50)])
    ends = await event_log.end_offsets(topic)
    assert sum(ends.values()) == 50, ends
    read = [r for p in ends for r in await event_log.read(topic, p, 0, limit=100)]
    assert sorted(int(r.value) for r in read) == list(range(50))
    group = f"g-{uuid.uuid4().hex[:6]}"
    assert sum((await event_log.lag(group, topic)).values()) == 50
    await _consume(event_log, group, topic, 50)
    assert sum((await event_log.lag(group, topic)).values()) == 0


async def test_a_consumer_killed_before_commit_gets_its_messages_again(
    event_log: EventLog, topic: str
) -> None:
    await event_log.declare([TopicSpec(topic, partitions=2)])
    for i in range(6):
        await event_log.append(topic, f"k{i}", str(i).encode())
    group = f"g-{uuid.uuid4().hex[:6]}"
    victim = event_log.consumer(group, [topic])
    await victim.start()
    seen: list[Record] = []
    async with asyncio.timeout(30):
        while len(seen) < 6:
            seen += await victim.poll(timeout=0.5)
    await victim.abandon()  # type: ignore[attr-defined]
    again = await _consume(event_log, group, topic, 6)
    assert sorted(int(r.value) for r in again) == list(range(6))


class _Recorder:
    def __init__(self) -> None:
        self.seen: Counter[int] = Counter()

    async def handle(self, envelope: Envelope, payload: Payload) -> None:
        assert isinstance(payload, Probe)
        if payload.note == "poison":
            raise ValueError("this one always fails")
        self.seen[payload.n] += 1


async def _publish(log: EventLog, topic: str, numbers: range, note: str = "") -> None:
    publisher = Publisher(log)
    for n in numbers:
        await publisher.publish(topic, Probe(n=n, note=note), key=f"k{n % 7}")


async def test_two_group_members_split_partitions_and_hand_over_without_loss_or_duplicates(
    event_log: EventLog, topic: str
) -> None:
    await event_log.declare([TopicSpec(topic, partitions=4)])
    group = f"g-{uuid.uuid4().hex[:6]}"
    recorder = _Recorder()
    first = ConsumerRunner(event_log, group, {topic: recorder.handle})
    second = ConsumerRunner(event_log, group, {topic: recorder.handle})
    tasks = [asyncio.create_task(first.run())]
    try:
        await _handover(event_log, topic, recorder, first, second, tasks)
    finally:
        for runner in (first, second):
            if tasks and not runner._stopped.is_set():
                runner._stopping.set()
        _, pending = await asyncio.wait(tasks, timeout=30)
        for task in pending:  # a runner that does not stop must not hide the first failure
            task.cancel()
    assert not pending, "a consumer runner did not stop within 30 s"
    assert set(recorder.seen) == set(range(300))
    assert max(recorder.seen.values()) == 1, "a committed message was processed twice"
    assert first.handled > 0 and second.handled > 0


async def _handover(
    event_log: EventLog,
    topic: str,
    recorder: _Recorder,
    first: ConsumerRunner,
    second: ConsumerRunner,
    tasks: list[asyncio.Task[None]],
) -> None:
    def state() -> str:
        return (
            f"first handled {first.handled} owns {sorted(first.assignment())}; "
            f"second handled {second.handled} owns {sorted(second.assignment())}; "
            f"seen {sum(recorder.seen.values())} ({len(recorder.seen)} distinct); "
            f"runners ended: {[_ended(t) for t in tasks if t.done()]}"
        )

    await _publish(event_log, topic, range(100))
    await _eventually(lambda: first.handled > 0, state=state)
    tasks.append(asyncio.create_task(second.run()))

    def split() -> bool:
        mine, theirs = first.assignment(), second.assignment()
        return bool(mine) and bool(theirs) and not (mine & theirs)

    await _eventually(split, state=state)
    assert {
        tp.partition for tp in first.assignment() | second.assignment() if tp.topic == topic
    } == {0, 1, 2, 3}
    await _publish(event_log, topic, range(100, 200))
    await _eventually(
        lambda: sum(recorder.seen.values()) >= 200 and second.handled > 0, state=state
    )
    await first.stop()  # leaves the group: its partitions move to the second member
    await _publish(event_log, topic, range(200, 300))
    await _eventually(lambda: sum(recorder.seen.values()) >= 300, state=state)
    await second.stop()


def _ended(task: asyncio.Task[None]) -> str:
    """How a runner's task ended: the traceback of what killed it, if anything did."""
    if task.cancelled() or task.exception() is None:
        return "stopped"
    return "".join(traceback.format_exception(task.exception()))


class _Unreachable:
    """The event log, but its first append to a retry topic fails as if the broker were down."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.refused = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._log, name)

    async def append(self, topic: str, *args: object, **kwargs: object) -> tuple[int, int]:
        if topic.endswith(".retry") and not self.refused:
            self.refused += 1
            raise ConnectionError("the broker is down")
        return await self._log.append(topic, *args, **kwargs)  # type: ignore[arg-type]


async def test_a_record_whose_retry_cannot_be_sent_is_handled_again_without_a_new_record(
    event_log: EventLog, topic: str
) -> None:
    """The handler fails and the log refuses the record's retry (the broker is down): the
    partition's drain resumes by itself, though no other record arrives to restart it."""
    await event_log.declare([TopicSpec(topic, 1), TopicSpec(topic + ".retry", 1)])
    calls: Counter[int] = Counter()

    async def flaky(envelope: Envelope, payload: Payload) -> None:
        assert isinstance(payload, Probe)
        calls[payload.n] += 1
        if calls[payload.n] == 1:
            raise ConnectionError("the broker is down")

    log = _Unreachable(event_log)
    runner = ConsumerRunner(log, f"g-{uuid.uuid4().hex[:6]}", {topic: flaky})  # type: ignore[arg-type]
    runner.resume_delay = 0.2
    task = asyncio.create_task(runner.run())
    try:
        await _publish(event_log, topic, range(1))
        await _eventually(lambda: runner.handled == 1, state=lambda: (calls, log.refused))
    finally:
        await runner.stop()
        await task
    assert log.refused == 1
    assert calls == {0: 2}


async def test_a_poison_message_lands_on_the_dlq_and_the_rest_flow_on(
    event_log: EventLog, topic: str
) -> None:
    await event_log.declare(
        [TopicSpec(topic, 2), TopicSpec(topic + ".retry", 2), TopicSpec(topic + ".dlq", 1)]
    )
    group = f"g-{uuid.uuid4().hex[:6]}"
    recorder = _Recorder()
    runner = ConsumerRunner(
        event_log,
        group,
        {topic: recorder.handle},
        retry=RetryPolicy(max_attempts=3, base_delay=0.05),
    )
    task = asyncio.create_task(runner.run())
    await _publish(event_log, topic, range(0, 10))
    await _publish(event_log, topic, range(10, 11), note="poison")
    await event_log.append(topic, "garbage", b"{not json")
    await _publish(event_log, topic, range(11, 20))
    dead: list[Record] = []

    async def dlq_has_two() -> bool:
        nonlocal dead
        dead = await event_log.read(topic + ".dlq", 0, 0, 10)
        return len(dead) >= 2

    async with asyncio.timeout(30):
        while not await dlq_has_two() or len(recorder.seen) < 19:
            await asyncio.sleep(0.1)
    await runner.stop()
    await task
    assert set(recorder.seen) == set(range(20)) - {10}
    reasons = {r.key: (r.header("error") or b"").decode() for r in dead}
    assert "this one always fails" in reasons["k3"]
    assert (dead[[r.key for r in dead].index("k3")].header("attempts")) == b"3"
    assert "not an event envelope" in reasons["garbage"]
    poisoned_env, poisoned = decode(dead[[r.key for r in dead].index("k3")].value)
    assert isinstance(poisoned, Probe) and poisoned.n == 10
    assert poisoned_env.type == "probe"


def test_new_event_carries_correlation_from_its_cause() -> None:
    cause = new_event(Probe(n=1), "k")
    child = new_event(Probe(n=2), "k", cause=cause)
    assert child.causation_id == cause.id
    assert child.correlation_id == cause.id
    grandchild = new_event(Probe(n=3), "k", cause=child)
    assert grandchild.correlation_id == cause.id


async def test_append_many_keeps_order_and_partitioning(event_log: EventLog, topic: str) -> None:
    await event_log.declare([TopicSpec(topic, partitions=3)])
    items = [(f"k{i % 5}", str(i).encode(), [("n", str(i).encode())]) for i in range(300)]
    placed = await event_log.append_many(topic, items)
    assert len(placed) == 300
    for key in {k for k, _, _ in items}:
        spots = [placed[i] for i, (k, _, _) in enumerate(items) if k == key]
        assert len({p for p, _ in spots}) == 1
        assert [o for _, o in spots] == sorted(o for _, o in spots)
    records = await _consume(event_log, f"g-{uuid.uuid4().hex[:6]}", topic, 300)
    assert sorted(int(r.value) for r in records) == list(range(300))
    assert all(r.header("n") == r.value for r in records)


async def test_retention_drops_old_records_and_consumers_skip_past_them(tmp_path: object) -> None:
    from pathlib import Path

    from kibitz.adapters.eventlog_sqlite import SqliteEventLog

    log = SqliteEventLog(Path(str(tmp_path)) / "r.db", session_timeout_ms=1500)
    await log.start()
    try:
        await log.declare(
            [
                TopicSpec("aged", 1, retention_ms=1000),
                TopicSpec("sized", 1, retention_ms=None, config={"max.records": "5"}),
            ]
        )
        for i in range(10):
            await log.append("aged", "k", str(i).encode())
            await log.append("sized", "k", str(i).encode())
        removed = await log.enforce_retention(now_ms=int(time.time() * 1000) + 5000)
        assert removed == 10 + 5
        assert await log.read("aged", 0, 0) == []
        assert [int(r.value) for r in await log.read("sized", 0, 0)] == [5, 6, 7, 8, 9]
        assert (await log.end_offsets("sized")) == {0: 10}
        got = await _consume(log, "g", "sized", 5)
        assert [r.offset for r in got] == [5, 6, 7, 8, 9]
    finally:
        await log.close()


async def test_sqlite_appends_queued_while_other_topics_are_declared_are_written(
    tmp_path: Path, topic: str
) -> None:
    """A consumer starting (it declares its retry topics) while a producer's records wait
    for the writer: every record is written (the writer once lost its topic's partition
    count to the declaration, and failed them with a KeyError)."""
    log = make_sqlite_log(tmp_path / "log.db")
    await log.start()
    try:
        await log.declare([TopicSpec(topic, partitions=4)])
        appends = [log.append(topic, f"k{i}", str(i).encode()) for i in range(200)]
        declares = [log.declare([TopicSpec(f"{topic}-{i}", 2)]) for i in range(20)]
        results = await asyncio.gather(*appends, *declares, return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert sum((await log.end_offsets(topic)).values()) == 200
    finally:
        await log.close()


async def test_a_stalled_sqlite_member_gives_up_the_partitions_taken_from_it(
    tmp_path: Path, topic: str
) -> None:
    """The embedded log's fencing: a member silent past the session timeout loses its
    partitions to a live one; when it polls again it drops them instead of reading on."""
    log = make_sqlite_log(tmp_path / "log.db")
    await log.start()
    try:
        await log.declare([TopicSpec(topic, partitions=2)])
        await _publish(log, topic, range(20))
        group = f"g-{uuid.uuid4().hex[:6]}"
        stalled, live = log.consumer(group, [topic]), log.consumer(group, [topic])
        await stalled.start()
        assert {tp.partition for tp in stalled.assignment()} == {0, 1}
        await live.start()
        # The stalled member neither polls nor heartbeats for longer than the session timeout.
        began = time.monotonic()
        read_by_live: list[Record] = []
        while time.monotonic() - began < log.session_timeout_ms / 1000 + 1.0:
            read_by_live += await live.poll(timeout=0.1)
        assert {tp.partition for tp in live.assignment()} == {0, 1}
        assert len(read_by_live) == 20
        after = await stalled.poll(timeout=0.2)
        assert after == [], "a fenced member read partitions another member owns"
        assert not (stalled.assignment() & live.assignment())
        await stalled.close()
        await live.close()
    finally:
        await log.close()


async def test_group_members_are_counted_while_they_run(event_log: EventLog, topic: str) -> None:
    await event_log.declare([TopicSpec(topic, partitions=2)])
    group = f"g-{uuid.uuid4().hex[:6]}"
    assert await event_log.members(group) == 0
    first, second = event_log.consumer(group, [topic]), event_log.consumer(group, [topic])
    await first.start()
    await second.start()
    try:
        async with asyncio.timeout(30):
            while await event_log.members(group) != 2:
                await asyncio.gather(first.poll(timeout=0.2), second.poll(timeout=0.2))
    finally:
        await first.close()
        await second.close()


async def test_a_full_disk_holds_the_partition_without_using_attempts_and_then_goes_on(
    event_log: EventLog, topic: str
) -> None:
    """A handler failing for a full disk is not the record's fault: no retry, no DLQ, however
    long it lasts; the partition resumes by itself once writes fit again (issue 16, item 7)."""
    from kibitz.errors import StorageFull

    await event_log.declare(
        [TopicSpec(topic, 1), TopicSpec(topic + ".retry", 1), TopicSpec(topic + ".dlq", 1)]
    )
    calls: Counter[int] = Counter()

    async def full_then_room(envelope: Envelope, payload: Payload) -> None:
        assert isinstance(payload, Probe)
        calls[payload.n] += 1
        if calls[payload.n] <= 4:
            raise StorageFull("the store's disk is full")

    runner = ConsumerRunner(
        event_log,
        f"g-{uuid.uuid4().hex[:6]}",
        {topic: full_then_room},
        retry=RetryPolicy(max_attempts=2, base_delay=0.05),
    )
    runner.resume_delay = 0.1
    task = asyncio.create_task(runner.run())
    try:
        await _publish(event_log, topic, range(2))
        await _eventually(lambda: runner.handled == 2, state=lambda: calls)
    finally:
        await runner.stop()
        await task
    assert calls == {0: 5, 1: 5}
    assert (await event_log.end_offsets(topic + ".dlq")).get(0, 0) == 0
    assert (await event_log.end_offsets(topic + ".retry")).get(0, 0) == 0


def _join_and_hang(path: str, group: str, topic: str, ready: object) -> None:
    """In a process of its own: join `group` on the embedded log at `path`, then hang."""

    async def main() -> None:
        log = SqliteEventLog(Path(path), session_timeout_ms=60_000, poll_interval=0.02)
        await log.start()
        consumer = log.consumer(group, [topic])
        await consumer.start()
        while len(consumer.assignment()) < 4:
            await consumer.poll(timeout=0.1)
        ready.set()  # type: ignore[attr-defined]
        while True:
            await consumer.poll(timeout=0.5)

    asyncio.run(main())


async def test_a_sqlite_member_whose_process_died_gives_up_its_partitions_at_once(
    tmp_path: Path,
) -> None:
    """A member of a process that has ended is not waited for (its session runs 60 s here):
    an embedded server killed and started again resumes at once. A member whose process still
    runs, even stopped, keeps its partitions."""
    import multiprocessing
    import os
    import signal

    path, group, topic = tmp_path / "log.db", "g-restart", "t-restart"
    log = SqliteEventLog(path, session_timeout_ms=60_000, poll_interval=0.02)
    await log.start()
    await log.declare([TopicSpec(topic, 4)])
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    other = spawn.Process(target=_join_and_hang, args=(str(path), group, topic, ready))
    other.start()
    consumer = None
    try:
        assert await asyncio.to_thread(ready.wait, 120), "the other process never joined"
        assert other.pid is not None
        os.kill(other.pid, signal.SIGSTOP)  # alive, silent: its partitions stay its own
        consumer = log.consumer(group, [topic])
        await consumer.start()
        for _ in range(20):
            await consumer.poll(timeout=0.1)
        assert consumer.assignment() == set()
        os.kill(other.pid, signal.SIGKILL)
        await asyncio.to_thread(other.join, 30)
        began = time.monotonic()
        async with asyncio.timeout(20):  # a third of the session: not its timeout
            while len(consumer.assignment()) < 4:
                await consumer.poll(timeout=0.1)
        assert time.monotonic() - began < 20
    finally:
        if other.is_alive():
            other.kill()
        if consumer is not None:
            await consumer.close()
        await log.close()


UPSERT = "INSERT INTO t VALUES (?,?,?) ON CONFLICT(a, b) DO UPDATE SET c=excluded.c"


async def test_the_embedded_log_s_statements_are_never_reset_from_another_thread(
    tmp_path: Path,
) -> None:
    """CPython's sqlite3 keeps a statement in the cursor that ran it and hands the same statement
    to the next call with that SQL on the connection; freeing the cursor resets the statement,
    on whatever thread frees it. The embedded log runs its SQL on threads and the event loop
    drops the results: a cursor that reached the loop reset a statement another call was
    running, which failed with "bad parameter or other API misuse" (a consumer runner died of
    it mid-suite). What the log's threads return holds no statement any more."""
    db = _Db(tmp_path / "log.db")
    await db.run(lambda c: c.execute("CREATE TABLE t (a, b, c, PRIMARY KEY (a, b))"))
    returned = await db.run(lambda c: c.executemany(UPSERT, [(0, 0, 0), (0, 1, 0)]))
    with pytest.raises(sqlite3.ProgrammingError, match="closed cursor"):
        returned.fetchone()

    def upsert(key: int, n: int) -> Callable[[sqlite3.Connection], sqlite3.Cursor]:
        return db.transaction(lambda c: c.executemany(UPSERT, [(key, i, n) for i in range(4)]))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # hand the GIL over often, as a loaded machine does
    try:
        running: set[asyncio.Future[sqlite3.Cursor]] = set()
        for n in range(1200):  # the loop drops each result while the others still run
            running.add(asyncio.ensure_future(db.run(upsert(n % 4, n))))
            if len(running) == 3:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for call in done:
                    call.result()
                del done, call
        await asyncio.gather(*running)
    finally:
        sys.setswitchinterval(interval)
    rows = await db.run(
        lambda c: c.execute("SELECT a, count(*), min(c), max(c) FROM t GROUP BY a").fetchall()
    )
    assert len(rows) == 4, rows  # each key's four rows written together by one of its last calls
    assert all(n == 4 and low == high and high % 4 == a for a, n, low, high in rows), rows
