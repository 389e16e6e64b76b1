"""The store adapter: SQLAlchemy 2 on SQLite or PostgreSQL, one unit of work per call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import JSON, Engine, create_engine, event, make_url, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from kibitz.adapters.store_models import ProcessedEvent, Sync
from kibitz.errors import StorageFull, UpstreamUnavailable, is_storage_full

HEALTH_PROBE = "health-probe"  # the row `ping` tries (and rolls back) while the disk is full
PROBE_BYTES = 256 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Compiled:
    """A statement compiled for PostgreSQL (psycopg), to run on the asyncio pool (`hot`): its
    SQL text and the values of the parameters SQLAlchemy made of its constants (the named ones
    are given at each execution)."""

    sql: str
    constants: dict[str, Any]

    @staticmethod
    def of(compiled: Any) -> Compiled:
        return Compiled(str(compiled), {k: v for k, v in compiled.params.items() if v is not None})

    def params(self, given: dict[str, Any]) -> dict[str, Any]:
        return {**self.constants, **given}


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class SqlStore:
    """Runs units of work off the event loop; on SQLite, writes are serialised (one writer)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.is_sqlite = url.startswith("sqlite")
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self.full_since: float | None = None  # when a write last failed for a full disk
        self._health_thread = ThreadPoolExecutor(1, thread_name_prefix="store-health")
        self._hot: AsyncConnectionPool | None = None
        self._hot_loop: asyncio.AbstractEventLoop | None = None

    async def hot(self) -> AsyncConnectionPool | None:
        """PostgreSQL: a pool of asyncio connections (autocommit) for the statements asked for
        most, such as serving a puzzle: one statement a request, on the event loop, with no
        thread to hand over to and no session around it. None on SQLite (one writer: its path
        through the store's threads is the one to take), and in an event loop other than the
        first one that asked (a pool belongs to one loop)."""
        if self.is_sqlite:
            return None
        loop = asyncio.get_running_loop()
        if self._hot is None:
            conninfo = make_url(self.url).set(drivername="postgresql")
            self._hot = AsyncConnectionPool(
                conninfo.render_as_string(hide_password=False),
                min_size=1,
                max_size=10,
                kwargs={"autocommit": True},
                open=False,
                timeout=5,  # a connection within 5 s, else 503
                name="kibitz-hot",
            )
            self._hot_loop = loop
            await self._hot.open(wait=False)
        return self._hot if self._hot_loop is loop else None

    async def hot_one(self, statement: Compiled, params: dict[str, Any]) -> dict[str, Any] | None:
        """PostgreSQL: the first row of `statement` on the asyncio pool (`hot`, which must have
        given one), by column label; None when there is none."""
        rows = await self._hot_rows(statement, params, one=True)
        return rows[0] if rows else None

    async def hot_all(self, statement: Compiled, params: dict[str, Any]) -> list[dict[str, Any]]:
        """PostgreSQL: every row of `statement` on the asyncio pool, by column label."""
        return await self._hot_rows(statement, params, one=False)

    async def _hot_rows(
        self, statement: Compiled, params: dict[str, Any], *, one: bool
    ) -> list[dict[str, Any]]:
        """A pooled connection the server ended is replaced and the statement run once more;
        UpstreamUnavailable when the store cannot be reached."""
        pool = await self.hot()
        assert pool is not None, "the asyncio pool is PostgreSQL's, asked for after hot()"
        for attempt in (1, 2):
            try:
                async with pool.connection() as conn:
                    cursor = conn.cursor(row_factory=dict_row)
                    await cursor.execute(statement.sql, statement.params(params))
                    if one:
                        row = await cursor.fetchone()
                        return [row] if row is not None else []
                    return await cursor.fetchall()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if attempt == 2 or isinstance(exc, PoolTimeout):
                    raise UpstreamUnavailable(f"the store cannot be reached: {exc}") from exc
                await pool.check()  # the other idle connections: the broken ones are replaced
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the asyncio pool (if one was opened), then everything else."""
        if self._hot is not None and self._hot_loop is asyncio.get_running_loop():
            await self._hot.close()
        self._hot = None
        self.dispose()

    def upgrade(self) -> None:
        """Apply the Alembic migrations up to head."""
        from kibitz.migrations import upgrade

        upgrade(self.engine)

    def unit_of_work(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in one transaction (committed on return, rolled back on error).

        Raises StorageFull when the disk is full (and remembers it for `ping`)."""
        try:
            if self._write_lock is not None:
                with self._write_lock, self.sessions.begin() as session:
                    result = fn(session)
            else:
                with self.sessions.begin() as session:
                    result = fn(session)
        except Exception as exc:
            if is_storage_full(exc):
                self.full_since = self.full_since or time.time()
                raise StorageFull(
                    "the store's disk is full; writes resume when there is space"
                ) from exc
            raise
        self.full_since = None
        return result

    async def run(self, fn: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self.unit_of_work, fn)

    def insert(self, model: Any) -> Any:
        """An INSERT … ON CONFLICT-capable statement for this dialect."""
        return (sqlite_insert if self.is_sqlite else pg_insert)(model)

    def bulk_insert(self, session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
        """Insert many new rows in the session's transaction: COPY on PostgreSQL (far less work
        per row than a parameterised INSERT), executemany on SQLite. Every row needs every
        column it sets, defaults included (COPY applies no Python-side defaults)."""
        if not rows:
            return
        table = model.__table__
        columns = list(rows[0])
        if self.is_sqlite:
            # The driver's executemany with SQLAlchemy's own bind processors: the stored
            # formats (JSON text, datetime strings) are exactly the ORM's, without its per-row
            # statement machinery.
            dialect = session.get_bind().dialect
            processors = [table.columns[c].type.bind_processor(dialect) for c in columns]
            raw = session.connection().connection.driver_connection
            if raw is None:
                raise RuntimeError("no database connection for the bulk insert")
            raw.executemany(
                f"INSERT INTO {table.name} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [
                    tuple(
                        p(row[c]) if p is not None else row[c]
                        for p, c in zip(processors, columns, strict=True)
                    )
                    for row in rows
                ],
            )
            return
        json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
        driver = session.connection().connection.driver_connection
        if driver is None:
            raise RuntimeError("no database connection for COPY")
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(
                    [
                        Json(row[c]) if c in json_columns and row[c] is not None else row[c]
                        for c in columns
                    ]
                )

    async def ping(self) -> None:
        # A thread of its own: a health check never queues behind the requests it reports on.
        await asyncio.get_running_loop().run_in_executor(self._health_thread, self._ping)

    def _ping(self) -> None:
        """Reach the store. After a write failed for a full disk, try a write the size of a
        large game (rolled back, so it keeps nothing): the store is reported down until such
        a write fits again."""
        if self.full_since is None:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        try:
            with self.sessions() as session:
                session.add(Sync(id=HEALTH_PROBE, kind="probe", error="x" * PROBE_BYTES))
                session.flush()
                session.rollback()
        except Exception as exc:
            if is_storage_full(exc):
                raise StorageFull(
                    "the store's disk is full; writes resume when there is space"
                ) from exc
            raise
        self.full_since = None

    def dispose(self) -> None:
        self._health_thread.shutdown(wait=False)
        self.engine.dispose()

    # --- idempotency per consumer group (the ProcessedEvents port) ---

    async def seen(self, group: str, event_id: str) -> bool:
        def check(session: Session) -> bool:
            found = session.scalar(
                select(ProcessedEvent.event_id).where(
                    ProcessedEvent.consumer_group == group, ProcessedEvent.event_id == event_id
                )
            )
            return found is not None

        return await asyncio.to_thread(lambda: self._read(check))

    async def mark(self, group: str, event_id: str) -> None:
        stmt = self.insert(ProcessedEvent).values(consumer_group=group, event_id=event_id)
        stmt = stmt.on_conflict_do_nothing()
        await self.run(lambda s: s.execute(stmt))

    async def seen_many(self, group: str, event_ids: list[str]) -> set[str]:
        def check(session: Session) -> set[str]:
            return set(
                session.scalars(
                    select(ProcessedEvent.event_id).where(
                        ProcessedEvent.consumer_group == group,
                        ProcessedEvent.event_id.in_(event_ids),
                    )
                )
            )

        return await asyncio.to_thread(lambda: self._read(check))

    async def mark_many(self, group: str, event_ids: list[str]) -> None:
        if not event_ids:
            return
        stmt = self.insert(ProcessedEvent).on_conflict_do_nothing()
        rows = [{"consumer_group": group, "event_id": e} for e in event_ids]
        await self.run(lambda s: s.execute(stmt, rows))

    def _read(self, fn: Callable[[Session], T]) -> T:
        with self.sessions() as session:
            return fn(session)

    async def read(self, fn: Callable[[Session], T]) -> T:
        """Run a read-only `fn` (no write lock)."""
        return await asyncio.to_thread(self._read, fn)
