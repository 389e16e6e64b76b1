"""A circuit breaker: after repeated failures, stop calling a dependency for a while, then let
one probe through; its success closes the circuit again."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Gauge

BREAKER_OPEN = Gauge("kibitz_circuit_open", "1 while a circuit breaker is open", ["name"])


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures_to_open: int = 3,
        reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failures_to_open = failures_to_open
        self.reset_after = reset_after
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.reset_after:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a call go through now? In half-open state, one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._probing = False
        BREAKER_OPEN.labels(self.name).set(0)

    def failure(self) -> None:
        self.failures += 1
        self._probing = False
        if self.opened_at is not None or self.failures >= self.failures_to_open:
            self.opened_at = self.clock()
            BREAKER_OPEN.labels(self.name).set(1)
