"""Time as a port: the real clock, or one a test moves by hand."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class OffsetClock(SystemClock):
    """The system clock plus the seconds a file holds (re-read at most every 0.2 s; a missing
    or unreadable file counts as 0): time a test moves forward in a running server."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        self.read_at = float("-inf")

    def now(self) -> float:
        real = time.time()
        if real - self.read_at > 0.2:
            self.read_at = real
            try:
                self.offset = float(self.path.read_text().strip() or 0)
            except (OSError, ValueError):
                self.offset = 0.0
        return real + self.offset


class ManualClock:
    """A clock whose sleeps advance time at once and are recorded (for tests of waits)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)
