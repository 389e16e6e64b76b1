"""What a service is to the runtime: handlers for its topics and background loops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kibitz.runtime.consumer import BatchHandler, DeadLetterHook, Handler, RetryPolicy

Loop = Callable[[], Awaitable[None]]


@dataclass
class Service:
    name: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    batch_handlers: dict[str, BatchHandler] = field(default_factory=dict)
    loops: list[Loop] = field(default_factory=list)
    retry: RetryPolicy | None = None
    description: str = ""
    # Handlers idempotent by natural keys need no per-event bookkeeping (ARCHITECTURE:
    # "natural keys, or the event id recorded per consumer group").
    record_event_ids: bool = True
    # The service's own object, for callers in the same process (the API calls the tracker).
    component: Any = None
    on_dead_letter: DeadLetterHook | None = None

    @property
    def topics(self) -> list[str]:
        return [*self.handlers, *self.batch_handlers]

    @property
    def group(self) -> str:
        return f"kibitz.{self.name}"
