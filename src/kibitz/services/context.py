"""What a service handler gets to work with; built once by `bootstrap`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

from kibitz.clock import Clock
from kibitz.ports import Commentator, EventLog, GameSource, Speech
from kibitz.ports.store import Store
from kibitz.runtime.publisher import Publisher
from kibitz.services.evaluator import Evaluator
from kibitz.settings import Settings

T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    event_log: EventLog
    store: Store  # the repositories: every write a service makes
    publisher: Publisher
    lichess: GameSource
    chesscom: GameSource  # finished games only
    clock: Clock
    evaluator: Evaluator  # every search goes through it; its engine is attached at start
    commentator: Commentator
    speech: Speech
    cpu_pool: Executor | None = None  # worker processes for CPU-bound pure work
    # When each debounced request (by key, e.g. a player's puzzle refill) was last made: this
    # container's own, never shared with another in the process.
    debounced: dict[str, float] = field(default_factory=dict)

    def source(self, name: str) -> GameSource:
        """The game site a player's games come from."""
        return self.chesscom if name == "chesscom" else self.lichess

    async def run_cpu(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` off the event loop: in a worker process when this process has them,
        else in a thread. CPU-heavy work (PGN parsing, replaying moves) never runs on the loop,
        where it would stall every request and heartbeat."""
        if self.cpu_pool is not None:
            return await asyncio.get_running_loop().run_in_executor(self.cpu_pool, fn, *args)
        return await asyncio.to_thread(fn, *args)
