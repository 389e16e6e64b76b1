"""The composition root: reads settings once and wires every port to its adapter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from kibitz.adapters.chesscom_http import GATE_NAME, ChessComClient
from kibitz.adapters.commentator_llm import LlmCommentator
from kibitz.adapters.engine_uci import EnginePool
from kibitz.adapters.eval_cache_sql import SqlEvalCache
from kibitz.adapters.eventlog_kafka import KafkaEventLog
from kibitz.adapters.eventlog_sqlite import SqliteEventLog
from kibitz.adapters.lichess_http import LichessClient, RequestGate
from kibitz.adapters.repo_live import SqlWorkers
from kibitz.adapters.repositories_sql import SqlRepositories
from kibitz.adapters.speech_espeak import EspeakSpeech
from kibitz.adapters.store_sql import SqlStore
from kibitz.backoff import Backoff
from kibitz.clock import Clock, OffsetClock, SystemClock
from kibitz.domain.commentary import TemplateCommentator
from kibitz.errors import ConfigurationError, UpstreamUnavailable
from kibitz.ports import Commentator, EventLog
from kibitz.read.reader import Reader
from kibitz.runtime.cpu_worker import exit_with_parent
from kibitz.runtime.publisher import Publisher
from kibitz.runtime.service import Service
from kibitz.runtime.supervisor import Supervisor
from kibitz.services import (
    analysis,
    commentary,
    ingest,
    matches,
    problems,
    robot_worker,
    robots,
    scheduler,
    store,
    tracker,
    training,
)
from kibitz.services.context import Context
from kibitz.services.evaluator import Evaluator
from kibitz.settings import Settings
from kibitz.topics import all_topics

log = logging.getLogger("kibitz")

SERVICES: dict[str, Callable[[Context], Service]] = {
    "ingest": ingest.build,
    "store": store.build,
    "scheduler": scheduler.build,
    "analysis": analysis.build,
    "tracker": tracker.build,
    "commentary": commentary.build,
    "problems": problems.build,
    "training": training.build,
    "matches": matches.build,
    "robots": robots.build,
    "robot-worker": robot_worker.build,
}
NEEDS_ENGINES = frozenset({"analysis", "commentary", "problems", "matches", "robot-worker"})
NEEDS_CPU_POOL = frozenset({"ingest", "store"})  # they parse PGN and replay moves (run_cpu)


def make_event_log(settings: Settings) -> EventLog:
    if settings.bus_is_kafka:
        return KafkaEventLog(settings.kafka_bootstrap)
    path = settings.bus_url.removeprefix("sqlite:///")
    if not path:
        raise ConfigurationError("KIBITZ_BUS_URL: sqlite:/// needs a file path")
    return SqliteEventLog(Path(path))


def make_commentator(settings: Settings) -> Commentator:
    """The LLM when one is configured (it falls back to the templates by itself), else the
    engine-grounded templates."""
    if settings.llm_url:
        return LlmCommentator(
            settings.llm_url, settings.llm_model, key=settings.llm_key, timeout=settings.llm_timeout
        )
    return TemplateCommentator()


@dataclass
class Container:
    settings: Settings
    ctx: Context
    sql: SqlStore  # the store itself: migrations, health
    reader: Reader  # the read side: every view
    services: dict[str, Service] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    engines: EnginePool | None = None  # started only in processes that search positions
    waiting: str | None = None  # while a patient start waits: for what (the store or the log)
    started: bool = False  # the store and the log are reached and the services run

    async def _start_cpu_pool(self, names: list[str]) -> None:
        """Start the worker processes now, not on the first game; a process whose services
        never parse (every `kibitz run` but ingest and store) gets none: two interpreters
        fewer per process."""
        pool = self.ctx.cpu_pool
        if pool is None:
            return
        if not NEEDS_CPU_POOL & set(names):
            self.ctx.cpu_pool = None
            pool.shutdown(wait=False)  # never used: no process was started
            return
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(pool, int) for _ in range(self.settings.cpu_workers))
        )

    async def start(self, service_names: list[str] | None = None, *, patient: bool = False) -> None:
        """Migrate the store, connect the log, declare topics, start `service_names` (None: all).

        Raises UpstreamUnavailable naming the store or the log when it cannot be reached; when
        `patient`, waits for them first (`waiting` says for what), retrying with a capped
        backoff for up to `upstream_wait` seconds.
        """
        await self._connect(patient)
        names = list(SERVICES) if service_names is None else service_names
        await self._start_cpu_pool(names)
        if NEEDS_ENGINES & set(names):
            try:
                await self.start_engines()
            except UpstreamUnavailable as exc:
                if service_names is not None:
                    raise  # `kibitz run analysis` without an engine: say so and stop
                # `kibitz serve` runs on without analysis; /api/health reports the engine down.
                log.error("analysis disabled: %s", exc.detail)
                names = [n for n in names if n not in NEEDS_ENGINES]
        self.services = {name: SERVICES[name](self.ctx) for name in names}
        self.supervisor = Supervisor(
            self.ctx.event_log,
            self.sql,
            list(self.services.values()),
            workers=SqlWorkers(self.sql),
            heartbeat=self.settings.heartbeat_seconds,
        )
        await self.supervisor.start()
        self.started = True

    def component(self, name: str) -> Any:
        """The object of service `name` when it runs in this process, else None."""
        service = self.services.get(name)
        return service.component if service is not None else None

    async def _connect(self, patient: bool) -> None:
        backoff = Backoff(first=0.5, cap=5.0)
        began = time.monotonic()
        failures = 0
        while True:
            try:
                await self._connect_once()
                self.waiting = None
                return
            except UpstreamUnavailable as exc:
                failures += 1
                waited = time.monotonic() - began
                if not patient or waited >= self.settings.upstream_wait:
                    self.waiting = None
                    raise
                if self.waiting != exc.detail:
                    log.warning("waiting for upstream: %s", exc.detail)
                self.waiting = exc.detail
                await asyncio.sleep(backoff.delay(failures))

    async def _connect_once(self) -> None:
        try:
            await asyncio.to_thread(self.sql.upgrade)
        except Exception as exc:
            raise UpstreamUnavailable(
                f"cannot reach the store at {_safe_url(self.settings.database_url)}: {_why(exc)}"
            ) from None
        try:
            await self.ctx.event_log.start()
            await self.ctx.event_log.declare(all_topics())
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self.ctx.event_log.close()  # half-started: the next try starts afresh
            raise UpstreamUnavailable(
                f"cannot reach the event log at {self.settings.bus_url}: {_why(exc)}"
            ) from None

    async def start_engines(self) -> EnginePool:
        """Start the Stockfish pool (once); UpstreamUnavailable when there is no Stockfish."""
        if self.engines is not None:
            return self.engines
        path = self.settings.stockfish_path()
        if path is None:
            raise UpstreamUnavailable(
                "no Stockfish found: install Debian's `stockfish` package or set KIBITZ_STOCKFISH"
            )
        pool = EnginePool(
            path,
            self.settings.engines,
            threads=self.settings.engine_threads,
            hash_mb=self.settings.engine_hash_mb,
        )
        try:
            await pool.start()
        except Exception as exc:
            await pool.close()
            raise UpstreamUnavailable(f"cannot start Stockfish at {path}: {_why(exc)}") from None
        self.engines = pool
        self.ctx.evaluator.attach(pool)
        return pool

    async def close(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop()
        if self.engines is not None:
            self.ctx.evaluator.attach(None)
            await self.engines.close()
            self.engines = None
        await self.ctx.lichess.close()
        await self.ctx.chesscom.close()
        if isinstance(self.ctx.commentator, LlmCommentator):
            await self.ctx.commentator.close()
        if self.ctx.cpu_pool is not None:
            self.ctx.cpu_pool.shutdown(wait=True, cancel_futures=True)
        await self.ctx.event_log.close()
        await self.sql.aclose()


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _why(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return (text if text.startswith(name) else f"{name}: {text}")[:300]


def bootstrap(settings: Settings, *, clock: Clock | None = None) -> Container:
    """Build every adapter from `settings`; nothing is connected until `Container.start`."""
    settings.home.mkdir(parents=True, exist_ok=True)
    clock = clock or (
        OffsetClock(settings.clock_file) if settings.clock_file is not None else SystemClock()
    )
    sql = SqlStore(settings.database_url)
    event_log = make_event_log(settings)
    lichess = LichessClient(
        settings.lichess_url, RequestGate(sql, clock), token=settings.lichess_token
    )
    chesscom = ChessComClient(settings.chesscom_url, RequestGate(sql, clock, name=GATE_NAME))
    ctx = Context(
        settings=settings,
        event_log=event_log,
        store=SqlRepositories(sql),
        publisher=Publisher(event_log),
        lichess=lichess,
        chesscom=chesscom,
        clock=clock,
        evaluator=Evaluator(SqlEvalCache(sql) if settings.eval_cache else None),
        commentator=make_commentator(settings),
        speech=EspeakSpeech(),
        cpu_pool=(
            ProcessPoolExecutor(
                settings.cpu_workers,
                mp_context=get_context("spawn"),
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )
            if settings.cpu_workers
            else None
        ),
    )
    return Container(settings=settings, ctx=ctx, sql=sql, reader=Reader(sql))
