"""What a service is to the runtime: handlers for its topics and background loops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kibitz.runtime.consumer import Handler, RetryPolicy

Loop = Callable[[], Awaitable[None]]


@dataclass
class Service:
    name: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    loops: list[Loop] = field(default_factory=list)
    retry: RetryPolicy | None = None
    description: str = ""

    @property
    def group(self) -> str:
        return f"kibitz.{self.name}"
