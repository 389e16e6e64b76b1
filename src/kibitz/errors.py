"""The error types (defined in `kibitz.domain.errors`), and how a full disk is recognised."""

from __future__ import annotations

import errno

from kibitz.domain.errors import (
    CLI_EXIT_USAGE,
    ConfigurationError,
    Conflict,
    EngineUnavailable,
    GameNotFound,
    InvalidInput,
    InvalidPgn,
    KibitzError,
    LichessRateLimited,
    LichessUserNotFound,
    MalformedEvent,
    NotFound,
    PayloadTooLarge,
    PlayerNotFound,
    RateLimited,
    StorageFull,
    Unauthorized,
    UpstreamUnavailable,
    UserNotFound,
)

__all__ = [
    "CLI_EXIT_USAGE",
    "ConfigurationError",
    "Conflict",
    "EngineUnavailable",
    "GameNotFound",
    "InvalidInput",
    "InvalidPgn",
    "KibitzError",
    "LichessRateLimited",
    "LichessUserNotFound",
    "MalformedEvent",
    "NotFound",
    "PayloadTooLarge",
    "PlayerNotFound",
    "RateLimited",
    "StorageFull",
    "Unauthorized",
    "UpstreamUnavailable",
    "UserNotFound",
    "is_storage_full",
]


def is_storage_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the disk is full: StorageFull, SQLite's
    SQLITE_FULL, PostgreSQL's disk_full (SQLSTATE 53100), or the OS's ENOSPC."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if (
            isinstance(current, StorageFull)
            or getattr(current, "sqlite_errorcode", None) == 13  # SQLITE_FULL
            or getattr(current, "sqlstate", None) == "53100"
            or (isinstance(current, OSError) and current.errno == errno.ENOSPC)
        ):
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "orig", None)]
    return False
