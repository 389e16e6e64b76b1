"""The game source's twin (`kibitz.ports.GameSource`): players' exports and live games kept in
memory, in Lichess's NDJSON shapes; a stream can be told to drop after some lines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from kibitz.errors import LichessRateLimited, LichessUserNotFound, UpstreamUnavailable


class ScriptedLichess:
    def __init__(self) -> None:
        self.exports: dict[str, list[str]] = {}  # username (lower) → NDJSON lines, oldest first
        self.drop_after: int | None = None  # the next export stream breaks after this many lines
        self.requests: list[dict[str, Any]] = []
        self.rate_limit_until: float | None = None  # the next export answers 429 (once)
        self.hold: asyncio.Event | None = None  # exports wait for it after a 429
        self.playing: dict[str, str] = {}
        self.live: dict[str, list[dict[str, Any]]] = {}

    def add_games(self, username: str, games: list[dict[str, Any]]) -> None:
        self.exports.setdefault(username.lower(), []).extend(json.dumps(g) for g in games)

    def add_line(self, username: str, line: str) -> None:
        self.exports.setdefault(username.lower(), []).append(line)

    async def stream_games(
        self,
        username: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        max_games: int | None = None,
    ) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        self.requests.append({"username": username, "since": since_ms, "max": max_games})
        if self.rate_limit_until is not None:
            until, self.rate_limit_until = self.rate_limit_until, None
            raise LichessRateLimited("Lichess answered 429", resumes_at=until)
        if self.hold is not None:
            await self.hold.wait()
        lines = self.exports.get(username.lower())
        if lines is None:
            raise LichessUserNotFound(f"Lichess has no user {username!r}")
        sent = 0
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                obj = None
            created = obj.get("createdAt") if obj else None
            if since_ms is not None and isinstance(created, int) and created < since_ms:
                continue
            if max_games is not None and sent >= max_games:
                return
            if self.drop_after is not None and sent >= self.drop_after:
                self.drop_after = None
                raise UpstreamUnavailable("the export stream broke off")
            sent += 1
            yield line, obj

    async def playing_game(self, username: str) -> str | None:
        return self.playing.get(username.lower())

    async def stream_game(self, game_id: str) -> AsyncIterator[dict[str, Any]]:
        for line in self.live.get(game_id, []):
            yield line

    async def close(self) -> None:
        return None
