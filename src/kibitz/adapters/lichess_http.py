"""The Lichess adapter: httpx against KIBITZ_LICHESS_URL, NDJSON parsed line by line as it streams.

Every request goes through a RequestGate: one request at a time across the whole deployment,
and none for a full 60 s after an HTTP 429 (Lichess's documented rule for API clients).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kibitz.adapters import lease_sql
from kibitz.adapters.store_models import Lock
from kibitz.adapters.store_sql import SqlStore
from kibitz.clock import Clock
from kibitz.errors import LichessRateLimited, LichessUserNotFound, UpstreamUnavailable
from kibitz.runtime.identity import process_owner
from kibitz.tls import tls_context

log = logging.getLogger("kibitz.lichess")

RATE_LIMIT_PAUSE = 60.0
LOCK_NAME = "lichess"
LEASE_SECONDS = 30.0

LICHESS_REQUESTS = Counter(
    "kibitz_lichess_requests_total", "Requests sent to Lichess", ["endpoint"]
)
LICHESS_429 = Counter("kibitz_lichess_rate_limited_total", "HTTP 429 answers from Lichess")


class RequestGate:
    """One request at a time to a site (Lichess; chess.com has its own gate): an asyncio lock
    in the process and a lease row in the store shared by every process; the lease also
    carries the 429 pause (`not_before`)."""

    def __init__(self, store: SqlStore, clock: Clock, name: str = LOCK_NAME) -> None:
        self.store = store
        self.clock = clock
        self.name = name
        self.holder = process_owner()
        self._local = asyncio.Lock()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        async with self._local:
            await self._acquire()
            renew = asyncio.create_task(self._renew())
            try:
                yield
            finally:
                renew.cancel()
                await asyncio.gather(renew, return_exceptions=True)
                await self.store.run(self._release)

    async def _acquire(self) -> None:
        while True:
            wait = await self.store.run(self._try_acquire)
            if wait <= 0:
                return
            await self.clock.sleep(wait)

    def _lock_row(self, session: Session) -> Lock:
        """The lease row, created by whoever needs it first (concurrent creators are fine),
        then locked for this transaction."""
        session.execute(
            self.store.insert(Lock)
            .values(name=self.name, holder=None, expires_at=0.0, not_before=0.0)
            .on_conflict_do_nothing()
        )
        lock = session.get(
            Lock, self.name, with_for_update=not self.store.is_sqlite, populate_existing=True
        )
        assert lock is not None
        return lock

    def _try_acquire(self, session: Session) -> float:
        now = self.clock.now()
        lock = self._lock_row(session)
        if lock.not_before > now:
            return lock.not_before - now
        if lease_sql.holder(lock, self.holder, now) is not None:
            return min(0.2, lock.expires_at - now)
        lease_sql.take(lock, self.holder, now, LEASE_SECONDS)
        return 0.0

    async def _renew(self) -> None:
        holder = self.holder
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            await self.store.run(self._extend_lease(holder, self.clock.now() + LEASE_SECONDS))

    def _extend_lease(self, holder: str, expires: float) -> Callable[[Session], None]:
        def extend(session: Session) -> None:
            session.execute(
                update(Lock)
                .where(Lock.name == self.name, Lock.holder == holder)
                .values(expires_at=expires)
            )

        return extend

    def _release(self, session: Session) -> None:
        lock = session.get(Lock, self.name)
        if lock is not None and lock.holder == self.holder:
            lease_sql.give_back(lock)

    async def rate_limited(self) -> float:
        """Record a 429: nobody in the deployment calls Lichess for the next 60 s; returns
        when requests resume."""
        if self.name == LOCK_NAME:
            LICHESS_429.inc()
        until = self.clock.now() + RATE_LIMIT_PAUSE

        def pause(session: Session) -> None:
            lock = self._lock_row(session)
            lock.not_before = max(lock.not_before, until)

        await self.store.run(pause)
        log.warning("%s_rate_limited pause_seconds=%.0f", self.name, RATE_LIMIT_PAUSE)
        return until

    async def paused_until(self) -> float:
        row = await self.store.read(
            lambda s: s.scalar(select(Lock.not_before).where(Lock.name == self.name))
        )
        return float(row or 0.0)


class LichessClient:
    def __init__(
        self,
        base_url: str,
        gate: RequestGate,
        *,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        headers = {"User-Agent": "kibitz/0.1 (+https://github.com/kibitz)"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.gate = gate
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, read=timeout * 2),
            verify=tls_context(),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def stream_games(
        self,
        username: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        max_games: int | None = None,
        perf_type: str | None = None,
    ) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
        """Yield a player's games oldest first, each the moment its NDJSON line arrives, as
        (the line as received, the parsed game, or None when the line is not a JSON object:
        the store rejects such a line by its index, and the stream goes on).

        Raises LichessUserNotFound (404), LichessRateLimited (429, after recording the pause),
        UpstreamUnavailable (5xx, unreachable, or a stream dropped mid-way).
        """
        params: dict[str, str | int] = {
            "moves": "true",
            "clocks": "true",
            "evals": "true",
            "opening": "true",
            "accuracy": "true",
            "pgnInJson": "false",
            "sort": "dateAsc",
        }
        if since_ms is not None:
            params["since"] = since_ms
        if until_ms is not None:
            params["until"] = until_ms
        if max_games is not None:
            params["max"] = max_games
        if perf_type:
            params["perfType"] = perf_type
        path = f"/api/games/user/{username}"
        async with self.gate.turn():
            LICHESS_REQUESTS.labels("games_user").inc()
            started = time.monotonic()
            try:
                async with self.http.stream(
                    "GET", path, params=params, headers={"Accept": "application/x-ndjson"}
                ) as response:
                    await self._check(response, username)
                    async for line in response.aiter_lines():
                        if line.strip():
                            yield line, _json_object(line)
            except httpx.TransportError as exc:
                raise UpstreamUnavailable(
                    f"Lichess stream for {username} broke after "
                    f"{time.monotonic() - started:.1f}s: {type(exc).__name__}"
                ) from None

    async def playing_game(self, username: str) -> str | None:
        """The id of the game `username` is playing now, or None (Lichess's
        `GET /api/users/status?ids=…&withGameIds=true`: `playingId` while they play).

        Raises LichessRateLimited (429, after recording the pause) or UpstreamUnavailable."""
        async with self.gate.turn():
            LICHESS_REQUESTS.labels("users_status").inc()
            try:
                response = await self.http.get(
                    "/api/users/status", params={"ids": username, "withGameIds": "true"}
                )
            except httpx.TransportError as exc:
                raise UpstreamUnavailable(f"Lichess unreachable: {type(exc).__name__}") from None
            await self._check(response, username)
        try:
            statuses = response.json()
        except ValueError:
            raise UpstreamUnavailable("Lichess sent a user status that is not JSON") from None
        for status in statuses if isinstance(statuses, list) else []:
            if str(status.get("id", "")).lower() == username.lower():
                game_id = status.get("playingId")
                return str(game_id) if game_id else None
        return None

    async def stream_game(self, game_id: str) -> AsyncIterator[dict[str, Any]]:
        """Follow a game with Lichess's `GET /api/stream/game/{id}` (NDJSON): the game's JSON
        first, then one line per position from the start (`fen`, `lm`, `wc`, `bc`) as moves
        are played, then the game's JSON again when it ends.

        Opening the stream takes the deployment-wide turn like every request; the stream is
        then read outside it (it lasts the whole game, and holding the turn that long would
        stop every import while a tracked game runs). Raises LichessUserNotFound (no such
        game), LichessRateLimited (429) or UpstreamUnavailable (a dropped stream included)."""
        started = time.monotonic()
        async with self.gate.turn():
            LICHESS_REQUESTS.labels("stream_game").inc()
            request = self.http.build_request(
                "GET", f"/api/stream/game/{game_id}", headers={"Accept": "application/x-ndjson"}
            )
            try:
                response = await self.http.send(request, stream=True)
            except httpx.TransportError as exc:
                raise UpstreamUnavailable(f"Lichess unreachable: {type(exc).__name__}") from None
            try:
                await self._check(response, f"game {game_id}")
            except BaseException:
                await response.aclose()
                raise
        try:
            async for line in response.aiter_lines():
                if line.strip():
                    yield json.loads(line)
        except (httpx.TransportError, json.JSONDecodeError) as exc:
            raise UpstreamUnavailable(
                f"Lichess stream of game {game_id} broke after "
                f"{time.monotonic() - started:.1f}s: {type(exc).__name__}"
            ) from None
        finally:
            await response.aclose()

    async def _check(self, response: httpx.Response, username: str) -> None:
        if response.status_code == 200:
            return
        await response.aread()
        if response.status_code == 404:
            what = username if username.startswith("game ") else f"user {username!r}"
            raise LichessUserNotFound(f"Lichess has no {what}")
        if response.status_code == 429:
            until = await self.gate.rate_limited()
            raise LichessRateLimited(
                "Lichess answered 429: pausing all requests for 60 s", resumes_at=until
            )
        raise UpstreamUnavailable(f"Lichess answered HTTP {response.status_code}")


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
