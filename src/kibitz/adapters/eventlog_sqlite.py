"""The embedded event log: Kafka's model (topics, partitions, groups, offsets) in one SQLite file.

Durability: WAL journal; an append is acknowledged only after its transaction commits, so a
process crash between append and commit of a consumer loses nothing (the consumer reads the
message again from its committed offset). `synchronous=NORMAL` trades the last transactions on
power loss for throughput, as Kafka does by default with its page-cache writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from kibitz.ports import Record, RevokeListener, TopicPartition, TopicSpec

T = TypeVar("T")

DEFAULT_PARTITIONS = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY, partitions INTEGER NOT NULL, retention_ms INTEGER,
    max_records INTEGER
);
CREATE TABLE IF NOT EXISTS partition_heads (
    topic TEXT NOT NULL, partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL DEFAULT 0, start_offset INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    key TEXT NOT NULL, value BLOB NOT NULL, headers TEXT, ts_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_offsets (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
    committed INTEGER NOT NULL, PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_members (
    grp TEXT NOT NULL, member_id TEXT NOT NULL, heartbeat_ms INTEGER NOT NULL,
    PRIMARY KEY (grp, member_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partition_owners (
    grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, member_id TEXT NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
"""


def partition_for(key: str, partitions: int) -> int:
    """Same key → same partition, stable across processes and restarts."""
    return zlib.crc32(key.encode()) % partitions


def _process_tag(pid: int | str = "self") -> str | None:
    """A process as another process on the same machine can check it: the kernel's boot id,
    the pid namespace, the pid and the process's start time (pids are reused); None where
    /proc does not say (another system): then only the heartbeat tells."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        space = os.readlink(f"/proc/{pid}/ns/pid").strip("pid:[]")
        stat = Path(f"/proc/{pid}/stat").read_text()
        started = stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command's name
        real_pid = os.getpid() if pid == "self" else int(pid)
    except (OSError, ValueError, IndexError):
        return None
    return f"{boot}.{space}.{real_pid}.{started}"


_tags: dict[int, str | None] = {}


def _this_process() -> str | None:
    """This process's tag (asked again in a forked child: it is another process)."""
    pid = os.getpid()
    if pid not in _tags:
        _tags[pid] = _process_tag()
    return _tags[pid]


def _gone(member_id: str) -> bool:
    """Whether a member's process has certainly ended: it ran on this machine, in this pid
    namespace, and its pid is free or another process's. A crashed member's partitions are
    then taken at once, not after its session times out (an embedded server killed and
    started again resumes at once)."""
    tag = member_id.rpartition("@")[2] if "@" in member_id else ""
    this = _this_process()
    if this is None or not tag or tag == this:
        return False
    boot, space, pid, _started = [*tag.split("."), "", "", "", ""][:4]
    this_boot, this_space, *_ = this.split(".")
    if (boot, space) != (this_boot, this_space) or not pid.isdigit():
        return False  # another machine or container: its heartbeat tells
    now = _process_tag(pid)
    return now is None or now != tag


REBALANCE_EVERY = 0.25  # seconds between a member's looks at its group while it changes


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Db:
    """One SQLite connection per thread, each call run off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self.conn()
        conn.executescript(SCHEMA)

    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        result = fn(self.conn())
        if isinstance(result, sqlite3.Cursor):
            # A cursor keeps its statement, which the connection's cache hands to the next
            # call on this thread. Freed on another thread (the event loop's, when the result
            # is dropped), it would reset that statement under the next call's feet: SQLite
            # then fails it with "bad parameter or other API misuse". Closed here, it lets go.
            result.close()
        return result

    def transaction(
        self, fn: Callable[[sqlite3.Connection], T]
    ) -> Callable[[sqlite3.Connection], T]:
        def wrapped(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return wrapped


_Pending = tuple[str, str, bytes, Sequence[tuple[str, bytes]], "asyncio.Future[tuple[int, int]]"]


class SqliteEventLog:
    """The embedded adapter of the EventLog port."""

    def __init__(
        self,
        path: Path | str,
        *,
        session_timeout_ms: int = 10_000,
        poll_interval: float = 0.05,
        retention_interval: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.session_timeout_ms = session_timeout_ms
        self.poll_interval = poll_interval
        self.retention_interval = retention_interval
        self._db: _Db | None = None
        self._partitions: dict[str, int] = {}
        self._pending: list[_Pending] = []
        self._wake_writer = asyncio.Event()
        # Appends made by this process wake the consumers of their topics at once: a count of
        # committed batches, the count at each topic's last one, and who waits for which topic.
        self._batches = 0
        self._topic_batch: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._health_thread = ThreadPoolExecutor(1, thread_name_prefix="eventlog-health")

    @property
    def db(self) -> _Db:
        if self._db is None:
            raise RuntimeError("event log not started")
        return self._db

    async def start(self) -> None:
        if self._db is not None:
            return
        self._db = await asyncio.to_thread(_Db, self.path)
        self._closed = False
        self._tasks = [
            asyncio.create_task(self._writer(), name="eventlog-writer"),
            asyncio.create_task(self._retention_loop(), name="eventlog-retention"),
        ]

    async def close(self) -> None:
        self._closed = True
        self._wake_writer.set()
        for task in self._tasks:
            if task.get_name() == "eventlog-writer":
                await task
            else:
                task.cancel()
        self._tasks = []

    async def ping(self) -> None:
        # A thread (and connection) of its own: health never queues behind the log's work.
        await asyncio.get_running_loop().run_in_executor(
            self._health_thread, lambda: self.db.conn().execute("SELECT 1").fetchone()
        )

    # --- topics ----------------------------------------------------------------

    async def declare(self, topics: Sequence[TopicSpec]) -> None:
        declared: dict[str, int] = {}

        def write(conn: sqlite3.Connection) -> None:
            for spec in topics:
                conn.execute(
                    "INSERT OR IGNORE INTO topics(name, partitions, retention_ms) VALUES (?,?,?)",
                    (spec.name, spec.partitions, spec.retention_ms),
                )
                max_records = spec.config.get("max.records")
                if max_records is not None:
                    conn.execute(
                        "UPDATE topics SET max_records=? WHERE name=?",
                        (int(max_records), spec.name),
                    )
                (count,) = conn.execute(
                    "SELECT partitions FROM topics WHERE name=?", (spec.name,)
                ).fetchone()
                conn.executemany(
                    "INSERT OR IGNORE INTO partition_heads(topic, partition) VALUES (?,?)",
                    [(spec.name, p) for p in range(count)],
                )
                declared[spec.name] = int(count)

        await self.db.run(self.db.transaction(write))
        # A topic's partition count never changes once created: add to what is known (an
        # append queued meanwhile relies on its topic's count staying known).
        self._partitions.update(declared)

    async def _partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            row = await self.db.run(
                lambda c: c.execute(
                    "SELECT partitions FROM topics WHERE name=?", (topic,)
                ).fetchone()
            )
            if row is None:
                await self.declare([TopicSpec(topic, DEFAULT_PARTITIONS)])
                return await self._partition_count(topic)
            count = int(row[0])
            self._partitions[topic] = count
        return count

    # --- producing: group commit ----------------------------------------------

    async def append(
        self, topic: str, key: str, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> tuple[int, int]:
        if self._closed:
            raise RuntimeError("event log closed")
        await self._partition_count(topic)
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._pending.append((topic, key, value, headers, future))
        self._wake_writer.set()
        return await future

    async def append_many(
        self, topic: str, items: Sequence[tuple[str, bytes, Sequence[tuple[str, bytes]]]]
    ) -> list[tuple[int, int]]:
        if self._closed:
            raise RuntimeError("event log closed")
        await self._partition_count(topic)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[tuple[int, int]]] = []
        for key, value, headers in items:
            future: asyncio.Future[tuple[int, int]] = loop.create_future()
            self._pending.append((topic, key, value, headers, future))
            futures.append(future)
        self._wake_writer.set()
        return list(await asyncio.gather(*futures))

    async def _writer(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            while self._pending:
                batch, self._pending = self._pending[:5000], self._pending[5000:]
                try:
                    results = await self.db.run(self.db.transaction(self._write_batch(batch)))
                except Exception as exc:  # the callers see the failure; the writer goes on
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (*_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                self._batches += 1
                for topic in {topic for topic, *_ in batch}:
                    self._topic_batch[topic] = self._batches
                    for waiter in self._waiters.pop(topic, ()):
                        if not waiter.done():
                            waiter.set_result(None)
            if self._closed:
                return

    def _write_batch(
        self, batch: list[_Pending]
    ) -> Callable[[sqlite3.Connection], list[tuple[int, int]]]:
        counts = dict(self._partitions)

        def write(conn: sqlite3.Connection) -> list[tuple[int, int]]:
            heads: dict[tuple[str, int], int] = {}
            rows = []
            results = []
            now = _now_ms()
            for topic, key, value, headers, _ in batch:
                if topic not in counts:  # known when appended; read it again to be sure
                    (counts[topic],) = conn.execute(
                        "SELECT partitions FROM topics WHERE name=?", (topic,)
                    ).fetchone()
                partition = partition_for(key, counts[topic])
                head = heads.get((topic, partition))
                if head is None:
                    row = conn.execute(
                        "SELECT next_offset FROM partition_heads WHERE topic=? AND partition=?",
                        (topic, partition),
                    ).fetchone()
                    head = int(row[0])
                heads[(topic, partition)] = head + 1
                encoded = json.dumps([[k, v.hex()] for k, v in headers]) if headers else None
                rows.append((topic, partition, head, key, value, encoded, now))
                results.append((partition, head))
            conn.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?)", rows)
            conn.executemany(
                "UPDATE partition_heads SET next_offset=? WHERE topic=? AND partition=?",
                [(nxt, t, p) for (t, p), nxt in heads.items()],
            )
            return results

        return write

    def appended_since(self, topics: Sequence[str]) -> int:
        """A mark that grows when this process appends to one of `topics`."""
        return max((self._topic_batch.get(t, 0) for t in topics), default=0)

    async def wait_for_appends(self, topics: Sequence[str], since: int, timeout: float) -> None:
        """Return when this process has appended to one of `topics` after the mark `since`
        (at once if it already has), or after `timeout` (other processes may have)."""
        if timeout <= 0 or self.appended_since(topics) > since:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for topic in topics:
            self._waiters.setdefault(topic, set()).add(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            for topic in topics:
                self._waiters.get(topic, set()).discard(waiter)

    # --- reading and offsets -------------------------------------------------------

    async def read(self, topic: str, partition: int, offset: int, limit: int = 100) -> list[Record]:
        rows = await self.db.run(
            lambda c: c.execute(
                "SELECT partition, offset, key, value, headers, ts_ms FROM records "
                "WHERE topic=? AND partition=? AND offset>=? ORDER BY offset LIMIT ?",
                (topic, partition, offset, limit),
            ).fetchall()
        )
        return [_record(topic, row) for row in rows]

    async def end_offsets(self, topic: str) -> dict[int, int]:
        await self._partition_count(topic)
        rows = await self.db.run(
            lambda c: c.execute(
                "SELECT partition, next_offset FROM partition_heads WHERE topic=?", (topic,)
            ).fetchall()
        )
        return {int(p): int(o) for p, o in rows}

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        ends = await self.end_offsets(topic)
        rows = await self.db.run(
            lambda c: c.execute(
                "SELECT partition, committed FROM group_offsets WHERE grp=? AND topic=?",
                (group, topic),
            ).fetchall()
        )
        done = {int(p): int(o) for p, o in rows}
        return {p: done.get(p, 0) for p in ends}

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        ends = await self.end_offsets(topic)
        done = await self.committed(group, topic)
        return {p: max(0, ends[p] - done.get(p, 0)) for p in ends}

    async def members(self, group: str) -> int:
        cutoff = _now_ms() - self.session_timeout_ms
        row = await self.db.run(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM group_members WHERE grp=? AND heartbeat_ms>=?",
                (group, cutoff),
            ).fetchone()
        )
        return int(row[0])

    async def reset_group(self, group: str, topic: str) -> None:
        await self.db.run(
            self.db.transaction(
                lambda c: c.execute(
                    "UPDATE group_offsets SET committed=0 WHERE grp=? AND topic=?", (group, topic)
                )
            )
        )

    # --- retention -----------------------------------------------------------------

    async def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete records past their topic's age or size limit; returns how many went."""
        at = now_ms if now_ms is not None else _now_ms()

        def prune(conn: sqlite3.Connection) -> int:
            removed = 0
            for name, retention_ms, max_records in conn.execute(
                "SELECT name, retention_ms, max_records FROM topics"
            ).fetchall():
                if retention_ms is not None:
                    removed += conn.execute(
                        "DELETE FROM records WHERE topic=? AND ts_ms<?", (name, at - retention_ms)
                    ).rowcount
                if max_records is not None:
                    for partition, nxt in conn.execute(
                        "SELECT partition, next_offset FROM partition_heads WHERE topic=?",
                        (name,),
                    ).fetchall():
                        removed += conn.execute(
                            "DELETE FROM records WHERE topic=? AND partition=? AND offset<?",
                            (name, partition, nxt - max_records),
                        ).rowcount
                conn.execute(
                    "UPDATE partition_heads SET start_offset=COALESCE((SELECT MIN(offset) FROM "
                    "records r WHERE r.topic=partition_heads.topic AND "
                    "r.partition=partition_heads.partition), next_offset) WHERE topic=?",
                    (name,),
                )
            return removed

        return await self.db.run(self.db.transaction(prune))

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retention_interval)
            await self.enforce_retention()

    # --- consumers -----------------------------------------------------------------

    def consumer(
        self,
        group: str,
        topics: Sequence[str],
        *,
        on_revoke: RevokeListener | None = None,
    ) -> SqliteConsumer:
        return SqliteConsumer(self, group, list(topics), on_revoke)


def _record(topic: str, row: tuple[int, int, str, bytes, str | None, int]) -> Record:
    partition, offset, key, value, headers, ts = row
    decoded = tuple((k, bytes.fromhex(v)) for k, v in json.loads(headers)) if headers else ()
    return Record(topic, int(partition), int(offset), key, bytes(value), decoded, int(ts))


class SqliteConsumer:
    """A group member: partitions are spread over live members; a partition changes hands only
    after its owner has drained and released it, or after the owner stopped heart-beating."""

    def __init__(
        self, log: SqliteEventLog, group: str, topics: list[str], on_revoke: RevokeListener | None
    ) -> None:
        self.log = log
        self.group = group
        self.topics = topics
        self.on_revoke = on_revoke
        this = _this_process()
        tag = f"@{this}" if this else ""
        self.member_id = f"{group}-{uuid.uuid4().hex[:12]}{tag}"
        self._owned: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._last_rebalance = 0.0
        # Idle, a member reads and re-balances less and less often (up to about once a second:
        # another process's appends wait that long; this process's wake it at once).
        self._rebalance_every = REBALANCE_EVERY
        self._last_live: tuple[str, ...] = ()
        self._idle_wait = log.poll_interval * 4
        self._last_fetch = 0.0
        self._fetched_mark = -1  # appended_since() at the last fetch; -1: fetch now
        self._started = False

    async def start(self) -> None:
        for topic in self.topics:
            await self.log._partition_count(topic)
        await self._heartbeat()
        self._started = True
        await self._rebalance()

    def assignment(self) -> set[TopicPartition]:
        return set(self._owned)

    def pause(self, partitions: set[TopicPartition]) -> None:
        self._paused |= partitions

    def resume(self, partitions: set[TopicPartition]) -> None:
        self._paused -= partitions
        self._fetched_mark = -1  # what waited behind the pause is read at once

    async def _heartbeat(self) -> None:
        await self.log.db.run(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO group_members VALUES (?,?,?)",
                (self.group, self.member_id, _now_ms()),
            )
        )

    def _idle_cap(self) -> float:
        """The longest pause between reads or re-balances of an idle member: a second, or a
        quarter of the session timeout if that is shorter (a member heart-beats as it
        re-balances)."""
        return min(1.0, self.log.session_timeout_ms / 4000)

    async def _rebalance(self) -> None:
        self._last_rebalance = time.monotonic()
        before = (set(self._owned), self._last_live)
        await self._rebalance_once()
        if (set(self._owned), self._last_live) == before:
            self._rebalance_every = min(self._rebalance_every * 2, self._idle_cap())
        else:  # the group is moving: look again soon
            self._rebalance_every = REBALANCE_EVERY
            self._fetched_mark = -1

    async def _rebalance_once(self) -> None:
        await self._heartbeat()
        all_partitions = []
        for topic in self.topics:
            count = await self.log._partition_count(topic)
            all_partitions += [TopicPartition(topic, p) for p in range(count)]
        cutoff = _now_ms() - self.log.session_timeout_ms
        group = self.group

        def read_state(conn: sqlite3.Connection) -> tuple[list[str], dict[TopicPartition, str]]:
            live = [
                m
                for (m,) in conn.execute(
                    "SELECT member_id FROM group_members WHERE grp=? AND heartbeat_ms>=? "
                    "ORDER BY member_id",
                    (group, cutoff),
                )
            ]
            owners = {
                TopicPartition(t, int(p)): m
                for t, p, m in conn.execute(
                    "SELECT topic, partition, member_id FROM partition_owners WHERE grp=?",
                    (group,),
                )
            }
            return [m for m in live if not _gone(m)], owners

        live, owners = await self.log.db.run(read_state)
        self._last_live = tuple(live)
        if self.member_id not in live:
            live = sorted([*live, self.member_id])
        # Fencing: a member that stalled past the session timeout may find that another took
        # some of its partitions meanwhile. It drops them at once, without committing (Kafka
        # fences such a member by its generation), so the two never read one partition.
        taken = {tp for tp in self._owned if owners.get(tp) not in (None, self.member_id)}
        if taken:
            self._owned -= taken
            for tp in taken:
                self._positions.pop(tp, None)
                self._paused.discard(tp)
            if self.on_revoke is not None:
                await self.on_revoke(set(taken))
        unrecorded = {tp for tp in self._owned if owners.get(tp) is None}
        if unrecorded:  # released by the member that took them while we stalled: ours again
            await self._record_ownership(unrecorded)
        desired = {
            tp
            for i, tp in enumerate(sorted(all_partitions))
            if live[i % len(live)] == self.member_id
        }
        to_release = self._owned - desired
        if to_release:
            if self.on_revoke is not None:
                await self.on_revoke(set(to_release))
            await self._release(to_release)
        claimable = {
            tp
            for tp in desired - self._owned
            if owners.get(tp) is None or owners[tp] not in live or owners[tp] == self.member_id
        }
        if claimable:
            await self._claim(claimable)

    async def _record_ownership(self, partitions: set[TopicPartition]) -> None:
        """Write this member back as the owner of partitions it holds but no row names."""
        group, member = self.group, self.member_id
        await self.log.db.run(
            self.log.db.transaction(
                lambda c: c.executemany(
                    "INSERT OR IGNORE INTO partition_owners VALUES (?,?,?,?)",
                    [(group, tp.topic, tp.partition, member) for tp in partitions],
                )
            )
        )

    async def _release(self, partitions: set[TopicPartition]) -> None:
        group, member = self.group, self.member_id
        await self.log.db.run(
            self.log.db.transaction(
                lambda c: c.executemany(
                    "DELETE FROM partition_owners WHERE grp=? AND topic=? AND partition=? "
                    "AND member_id=?",
                    [(group, tp.topic, tp.partition, member) for tp in partitions],
                )
            )
        )
        self._owned -= partitions
        for tp in partitions:
            self._positions.pop(tp, None)
            self._paused.discard(tp)

    async def _claim(self, partitions: set[TopicPartition]) -> None:
        group, member = self.group, self.member_id
        cutoff = _now_ms() - self.log.session_timeout_ms

        def claim(conn: sqlite3.Connection) -> dict[TopicPartition, int]:
            won: dict[TopicPartition, int] = {}
            for tp in partitions:
                row = conn.execute(
                    "SELECT o.member_id, m.heartbeat_ms FROM partition_owners o LEFT JOIN "
                    "group_members m ON m.grp=o.grp AND m.member_id=o.member_id "
                    "WHERE o.grp=? AND o.topic=? AND o.partition=?",
                    (group, tp.topic, tp.partition),
                ).fetchone()
                if (
                    row is not None
                    and row[0] != member
                    and (row[1] or 0) >= cutoff
                    and not _gone(row[0])
                ):
                    continue  # still held by a live member: it hands over when it has drained
                conn.execute(
                    "INSERT OR REPLACE INTO partition_owners VALUES (?,?,?,?)",
                    (group, tp.topic, tp.partition, member),
                )
                committed = conn.execute(
                    "SELECT committed FROM group_offsets WHERE grp=? AND topic=? AND partition=?",
                    (group, tp.topic, tp.partition),
                ).fetchone()
                start = conn.execute(
                    "SELECT start_offset FROM partition_heads WHERE topic=? AND partition=?",
                    (tp.topic, tp.partition),
                ).fetchone()
                won[tp] = max(int(committed[0]) if committed else 0, int(start[0]) if start else 0)
            return won

        won = await self.log.db.run(self.log.db.transaction(claim))
        self._owned |= set(won)
        self._positions.update(won)

    async def poll(self, max_records: int = 500, timeout: float = 0.5) -> list[Record]:
        if not self._started:
            raise RuntimeError("consumer not started")
        deadline = time.monotonic() + timeout
        base = self.log.poll_interval * 4
        while True:
            now = time.monotonic()
            if now - self._last_rebalance > self._rebalance_every or not self._owned:
                await self._rebalance()
            mark = self.log.appended_since(self.topics)
            if mark != self._fetched_mark or now - self._last_fetch >= self._idle_wait:
                self._last_fetch = time.monotonic()
                records = await self._fetch(max_records)
                if records:  # there may be more: the next poll reads again at once
                    self._idle_wait, self._fetched_mark = base, -1
                    return records
                self._fetched_mark = mark
                self._idle_wait = min(self._idle_wait * 2, max(base, self._idle_cap()))
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return []
            pause = min(
                remaining,
                max(0.0, self._last_fetch + self._idle_wait - now),
                max(0.0, self._last_rebalance + self._rebalance_every - now),
            )
            await self.log.wait_for_appends(self.topics, self._fetched_mark, pause)

    async def _fetch(self, max_records: int) -> list[Record]:
        readable = sorted(tp for tp in self._owned if tp not in self._paused)
        if not readable:
            return []
        positions = dict(self._positions)

        def fetch(conn: sqlite3.Connection) -> list[Record]:
            out: list[Record] = []
            for tp in readable:
                budget = max_records - len(out)
                if budget <= 0:
                    break
                rows = conn.execute(
                    "SELECT partition, offset, key, value, headers, ts_ms FROM records "
                    "WHERE topic=? AND partition=? AND offset>=? ORDER BY offset LIMIT ?",
                    (tp.topic, tp.partition, positions[tp], budget),
                ).fetchall()
                out += [_record(tp.topic, row) for row in rows]
            return out

        records = await self.log.db.run(fetch)
        for record in records:
            if record.tp in self._owned:
                self._positions[record.tp] = record.offset + 1
        return [r for r in records if r.tp in self._owned]

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        group = self.group
        mine = {tp: o for tp, o in offsets.items() if tp in self._owned}
        if not mine:
            return
        await self.log.db.run(
            self.log.db.transaction(
                lambda c: c.executemany(
                    "INSERT INTO group_offsets VALUES (?,?,?,?) ON CONFLICT(grp, topic, partition)"
                    " DO UPDATE SET committed=excluded.committed",
                    [(group, tp.topic, tp.partition, o) for tp, o in mine.items()],
                )
            )
        )

    async def seek_to_beginning(self, partitions: set[TopicPartition] | None = None) -> None:
        for tp in partitions or set(self._owned):
            if tp in self._owned:
                self._positions[tp] = 0
        self._fetched_mark = -1

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._owned:
            if self.on_revoke is not None:
                await self.on_revoke(set(self._owned))
            await self._release(set(self._owned))
        group, member = self.group, self.member_id
        await self.log.db.run(
            lambda c: c.execute(
                "DELETE FROM group_members WHERE grp=? AND member_id=?", (group, member)
            )
        )

    async def abandon(self) -> None:
        """Stop without leaving the group or committing: what a killed process looks like."""
        self._started = False
