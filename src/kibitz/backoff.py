"""The one backoff rule of kibitz: exponential from a first delay, capped."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Waits of `first`, twice `first`, four times `first` … never more than `cap` seconds."""

    first: float
    cap: float

    def delay(self, failures: int) -> float:
        """The wait after `failures` failures in a row (1 → `first`)."""
        # The exponent is bounded so that a long run of failures cannot overflow a float.
        return float(min(self.cap, self.first * 2 ** min(max(failures, 1) - 1, 60)))
