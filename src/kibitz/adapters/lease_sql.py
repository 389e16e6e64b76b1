"""The one lease mechanism: a row is held by `owner` until `until` (seconds since the epoch,
from the services' clock). Analysis jobs and tracked players keep their lease in their own
row, so taking it and changing the row's state are one transaction."""

from __future__ import annotations

from typing import Any


def holder(row: Any, owner: str, now: float) -> str | None:
    """The live holder of the row's lease when it is someone other than `owner`."""
    held_by = row.lease_owner
    if held_by and held_by != owner and (row.lease_until or 0.0) > now:
        return str(held_by)
    return None


def take(row: Any, owner: str, now: float, seconds: float) -> None:
    row.lease_owner, row.lease_until = owner, now + seconds


def give_back(row: Any) -> None:
    row.lease_owner, row.lease_until = None, 0.0
