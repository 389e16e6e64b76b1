"""Service tests on the in-memory twins: the real services and runtime (consumer groups,
retries, DLQ) on the embedded event log, with the store, the engine, Lichess and speech
replaced by the twins of their ports. Fast: no database, no Stockfish, no HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kibitz.adapters.eventlog_sqlite import SqliteEventLog
from kibitz.clock import Clock, SystemClock
from kibitz.domain.commentary import TemplateCommentator
from kibitz.events import decode
from kibitz.ports import Commentator
from kibitz.runtime.bootstrap import SERVICES
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.publisher import Publisher
from kibitz.runtime.service import Service
from kibitz.runtime.supervisor import Supervisor
from kibitz.services.context import Context
from kibitz.services.evaluator import Evaluator
from kibitz.settings import Settings, load_settings
from kibitz.topics import all_topics
from tests.twins.engine import RecordedEngine, recording_mode
from tests.twins.lichess import ScriptedLichess
from tests.twins.speech import ScriptedSpeech
from tests.twins.store import MemoryProcessedEvents, MemoryStore

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, handler_timeout=30.0)


@dataclass
class Twin:
    """One kibitz on the twins; `start` runs the named services."""

    ctx: Context
    store: MemoryStore
    engine: RecordedEngine
    lichess: ScriptedLichess
    speech: ScriptedSpeech
    log: SqliteEventLog
    services: dict[str, Service] = field(default_factory=dict)
    supervisor: Supervisor | None = None

    async def start(self, *names: str, retry: RetryPolicy | None = None) -> None:
        self.services = {name: SERVICES[name](self.ctx) for name in names}
        if retry is not None:
            for service in self.services.values():
                service.retry = retry
        self.supervisor = Supervisor(
            self.log, MemoryProcessedEvents(), list(self.services.values())
        )
        await self.supervisor.start()

    def component(self, name: str) -> Any:
        return self.services[name].component

    async def events(self, topic: str) -> list[tuple[Any, Any]]:
        """Every (envelope, payload) of `topic`, partition by partition, in offset order."""
        out = []
        for partition, end in (await self.log.end_offsets(topic)).items():
            if end:
                out += [decode(r.value) for r in await self.log.read(topic, partition, 0, end)]
        return out


async def until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Wait for `predicate()` (sync or async) to give something truthy; return it."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.01)


def twin_settings(tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "home": tmp_path / "home",
        "database_url": "sqlite:///unused-by-the-twins",
        "demo": False,
        "cpu_workers": 0,
        "quick_nodes": 2_000,
        "deep_nodes": 8_000,
        "interactive_deep_nodes": 8_000,
        "commentary_nodes": 2_000,
        "problem_nodes": 20_000,
        "match_nodes": 2_000,
    }
    values = {**values, **extra}
    if "deep_nodes" in extra and "interactive_deep_nodes" not in extra:
        values["interactive_deep_nodes"] = extra["deep_nodes"]  # one budget unless told
    values.setdefault("interactive_quick_nodes", values["quick_nodes"])  # recorded at it
    return load_settings(**values)


@pytest.fixture
async def twin_factory(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Any]]:
    """Build twins: `await make(clock=…, commentator=…, **settings)`."""
    made: list[Twin] = []
    live = None
    if recording_mode():
        from kibitz.adapters.engine_uci import EnginePool

        path = load_settings(home=tmp_path, demo=False).stockfish_path()
        assert path is not None, "recording needs Stockfish"
        live = EnginePool(path, 1)
        await live.start()

    async def make(
        clock: Clock | None = None, commentator: Commentator | None = None, **extra: Any
    ) -> Twin:
        settings = twin_settings(tmp_path / f"twin{len(made)}", **extra)
        store = MemoryStore()
        engine = RecordedEngine(live)
        log = SqliteEventLog(
            tmp_path / f"log{len(made)}.db", session_timeout_ms=1500, poll_interval=0.01
        )
        await log.start()
        await log.declare(all_topics())
        lichess, speech = ScriptedLichess(), ScriptedSpeech()
        ctx = Context(
            settings=settings,
            event_log=log,
            store=store,
            publisher=Publisher(log),
            lichess=lichess,
            chesscom=ScriptedLichess(),  # a second site (its games are scripted the same way)
            clock=clock or SystemClock(),
            evaluator=Evaluator(store.eval_cache, engine=engine),
            commentator=commentator or TemplateCommentator(),
            speech=speech,
        )
        twin = Twin(ctx, store, engine, lichess, speech, log)
        made.append(twin)
        return twin

    try:
        yield make
    finally:
        for twin in made:
            if twin.supervisor is not None:
                await twin.supervisor.stop()
            await twin.log.close()
            twin.engine.save()
        if live is not None:
            await live.close()
