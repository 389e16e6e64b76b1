"""ingest: a player's games from Lichess into `games.raw`, one message per game as it arrives;
PGN files enter the same topic."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kibitz import topics
from kibitz.backoff import Backoff
from kibitz.domain.games import split_pgn
from kibitz.domain.players import CHESSCOM_SUFFIX, player_id, site_of
from kibitz.errors import (
    InvalidInput,
    RateLimited,
    UpstreamUnavailable,
    UserNotFound,
)
from kibitz.events import Envelope, Payload, RawGame, SyncRequested
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.dispatch import by_type
from kibitz.runtime.service import Service
from kibitz.services.context import Context

log = logging.getLogger("kibitz.ingest")

STREAM_ATTEMPTS = 5
STREAM_RETRY = Backoff(first=0.5, cap=30.0)  # between attempts at a broken export stream
PROGRESS_EVERY_SECONDS = 0.5
QUEUE_SLICE = 500  # PGN games queued per append: the event loop serves requests in between


async def set_followed(
    ctx: Context, username: str, followed: bool, source: str | None = None
) -> dict[str, Any]:
    """Follow or unfollow a player of a site (Lichess unless `source` says chesscom or the
    name ends with @chess.com); followed players are synced by the scheduler."""
    name, site = site_of(username, source)
    await ctx.store.players.follow(player_id(name, site), _sync_name(name, site), followed)
    return {"username": name, "source": site, "followed": followed}


def _sync_name(name: str, site: str) -> str:
    """The name a followed player is synced by (the scheduler reads the site from it)."""
    return name + CHESSCOM_SUFFIX if site == "chesscom" else name


async def request_sync(
    ctx: Context,
    username: str,
    *,
    max_games: int | None = None,
    since_ms: int | None = None,
    source: str | None = None,
) -> str:
    """Create a sync of a player's games from their site and queue it; returns the sync id."""
    name, site = site_of(username, source)
    if max_games is not None and max_games < 1:
        raise InvalidInput("max must be at least 1")
    sync_id = str(uuid.uuid4())
    key = player_id(name, site)

    await ctx.store.syncs.create_sync(sync_id, key, _sync_name(name, site), kind=site)
    await ctx.publisher.publish(
        topics.GAMES_SYNC_REQUESTED,
        SyncRequested(
            username=name, sync_id=sync_id, since_ms=since_ms, max_games=max_games, source=site
        ),
        key=key,
    )
    return sync_id


async def import_pgn(ctx: Context, text: str, filename: str | None = None) -> str:
    """Queue every game of a PGN file (each is validated when stored, and a broken one is
    rejected there by index with its reason).

    The file is split off the event loop. The import is "running" until every game is queued,
    then "streamed"; one a crash interrupted meanwhile is failed by `fail_interrupted_imports`.
    Returns the import's id (a sync of kind "pgn"); raises InvalidInput when there is no game.
    """
    entries = await ctx.run_cpu(split_pgn, text)
    if not entries:
        raise InvalidInput("no PGN game found in the upload")
    sync_id = str(uuid.uuid4())
    good = [e for e in entries if e.pgn is not None]
    rejected = [{"index": e.index, "reason": e.error} for e in entries if e.pgn is None]

    await ctx.store.syncs.create_import(sync_id, filename, len(entries), rejected, ctx.clock.now())
    # In slices: building envelopes is CPU work on the event loop, and a file of 60,000 games
    # in one call held the loop for seconds.
    for start in range(0, len(good), QUEUE_SLICE):
        await ctx.publisher.publish_many(
            topics.GAMES_RAW,
            [
                (
                    RawGame(source="pgn", import_id=sync_id, index=entry.index, pgn=entry.pgn),
                    f"{sync_id}:{entry.index}",
                )
                for entry in good[start : start + QUEUE_SLICE]
            ],
        )

    # Every game refused at the split: the import is done already.
    await ctx.store.syncs.import_queued(sync_id, finished=not good, now=ctx.clock.now())
    return sync_id


INTERRUPTED = (
    "the import was interrupted before all its games were queued (the server stopped); "
    "import the file again: the games already stored are kept and not doubled"
)


async def fail_interrupted_imports(ctx: Context, older_than_s: float) -> int:
    """Fail the PGN imports still queueing their games `older_than_s` seconds after they
    started: the process that queued them is gone (queueing takes seconds). Returns how many."""
    now = ctx.clock.now()
    failed = await ctx.store.syncs.fail_interrupted(now - older_than_s, INTERRUPTED, now)
    if failed:
        log.warning("imports_interrupted count=%d", failed)
    return failed


class _Pipeline:
    """Hands each game on as it arrives while the previous batch is being appended: one batch
    in flight, the next one filling, so a fast stream is published in batches and a slow one
    game by game, with no added wait."""

    def __init__(self, ctx: Context, cause: Envelope) -> None:
        self.ctx = ctx
        self.cause = cause
        self.buffer: list[tuple[Payload, str]] = []
        self.in_flight: asyncio.Task[object] | None = None

    async def add(self, payload: RawGame, key: str) -> None:
        self.buffer.append((payload, key))
        if self.in_flight is None or self.in_flight.done():
            await self._send()

    async def _send(self) -> None:
        if self.in_flight is not None:
            await self.in_flight  # raises if the previous batch failed
            self.in_flight = None
        if self.buffer:
            batch, self.buffer = self.buffer, []
            self.in_flight = asyncio.create_task(
                self.ctx.publisher.publish_many(
                    topics.GAMES_RAW, batch, causes=[self.cause] * len(batch)
                )
            )

    async def flush(self) -> None:
        await self._send()
        await self._send()


SITE_NAMES = {"lichess": "Lichess", "chesscom": "chess.com"}


def _paused(exc: RateLimited, source: str = "lichess") -> str:
    """What a sync waiting out a 429 pause shows (issue 17, item 4)."""
    site = SITE_NAMES.get(source, source)
    if exc.resumes_at is None:
        return f"{site} asked kibitz to slow down (HTTP 429); resuming in a minute"
    at = datetime.fromtimestamp(exc.resumes_at, UTC).strftime("%H:%M:%S UTC")
    return f"{site} asked kibitz to slow down (HTTP 429); resuming at {at}"


@dataclass
class _Position:
    received: int  # lines of the export received by this sync, over every attempt
    cursor: int | None  # the next attempt starts at this time (ms; Lichess's createdAt)
    # Games received by this run: an attempt that starts again at an inclusive cursor
    # (chess.com's end time) sends some twice, and each counts once.
    seen: set[str] = field(default_factory=set)


class SyncWorker:
    """`games.sync.requested`: stream the player's export into `games.raw`, game by game,
    resuming after the last stored game when a request is delivered again."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def handle(self, envelope: Envelope, payload: SyncRequested) -> None:
        try:
            await self.sync(envelope, payload)
        except Exception as exc:
            # Whoever watches the sync sees why; the runtime retries it (a retry resumes and
            # sets it running again) and parks it on the DLQ if it keeps failing.
            await self.ctx.store.syncs.fail(payload.sync_id, f"{type(exc).__name__}: {exc}"[:500])
            raise

    async def sync(self, envelope: Envelope, payload: SyncRequested) -> None:
        syncs, key = self.ctx.store.syncs, player_id(payload.username, payload.source)
        received, resume_ms = await syncs.start(payload.sync_id, key)
        cursor = max(
            filter(None, [payload.since_ms, resume_ms + 1 if resume_ms else None]), default=None
        )
        publishing = _Pipeline(self.ctx, envelope)
        at = _Position(received, cursor)
        failure: str | None = None
        for attempt in range(1, STREAM_ATTEMPTS + 1):
            if payload.max_games is not None and payload.max_games - at.received <= 0:
                break
            try:
                await self._stream(payload, publishing, at)
                break
            except UserNotFound as exc:
                failure = exc.detail
                break
            except RateLimited as exc:
                log.warning("sync_rate_limited sync=%s attempt=%d", payload.sync_id, attempt)
                await syncs.report(
                    payload.sync_id,
                    key,
                    at.received,
                    "running",
                    None,
                    self.ctx.clock.now(),
                    notice=_paused(exc, payload.source),
                )
            except UpstreamUnavailable as exc:
                log.warning(
                    "sync_stream_failed sync=%s attempt=%d error=%s", payload.sync_id, attempt, exc
                )
                if attempt == STREAM_ATTEMPTS:
                    failure = exc.detail
                    break
                await self.ctx.clock.sleep(STREAM_RETRY.delay(attempt))
        await publishing.flush()
        status = "failed" if failure else "streamed"
        await syncs.report(payload.sync_id, key, at.received, status, failure, self.ctx.clock.now())

    async def _stream(self, payload: SyncRequested, publishing: _Pipeline, at: _Position) -> None:
        """One attempt at the export from `at.cursor`; `at` follows every game received, so
        the next attempt resumes after the last one."""
        remaining = None if payload.max_games is None else payload.max_games - at.received
        last_report = time.monotonic()
        chesscom = payload.source == "chesscom"
        key = player_id(payload.username, payload.source)
        async for line, obj in self.ctx.source(payload.source).stream_games(
            payload.username, since_ms=at.cursor, until_ms=payload.until_ms, max_games=remaining
        ):
            game_key = _game_key(obj, chesscom)
            if chesscom:  # a retry starts at an inclusive cursor: skip what it sends again
                seen_as = game_key or hashlib.sha256(line.encode()).hexdigest()
                if seen_as in at.seen:
                    continue
                at.seen.add(seen_as)
            at.received += 1
            received = at.received
            # Every line is handed on with its index, a broken one too: the store rejects it
            # by index with its reason, and the games after it still come.
            raw = (
                RawGame(source="chesscom", sync_id=payload.sync_id, index=received, game_json=line)
                if chesscom
                else RawGame(
                    source="lichess", sync_id=payload.sync_id, index=received, lichess_json=line
                )
            )
            await publishing.add(raw, game_key or f"{payload.sync_id}:{received}")
            at.cursor = _cursor(obj, chesscom, at.cursor)
            if time.monotonic() - last_report > PROGRESS_EVERY_SECONDS:
                await self.ctx.store.syncs.report(
                    payload.sync_id, key, received, "running", None, self.ctx.clock.now()
                )
                last_report = time.monotonic()


def _game_key(obj: dict[str, Any] | None, chesscom: bool) -> str | None:
    """A received game's identity: Lichess's id, chess.com's game URL."""
    value = (obj or {}).get("url" if chesscom else "id")
    return value if isinstance(value, str) else None


def _cursor(obj: dict[str, Any] | None, chesscom: bool, cursor: int | None) -> int | None:
    """Where the next attempt starts after this game: just after Lichess's createdAt; at
    chess.com's end time (seconds: games ending in the same second are sent again and skipped
    by their URL)."""
    value = (obj or {}).get("end_time" if chesscom else "createdAt")
    if not isinstance(value, int) or isinstance(value, bool):
        return cursor
    return value * 1000 if chesscom else value + 1


def build(ctx: Context) -> Service:
    worker = SyncWorker(ctx)
    return Service(
        name="ingest",
        handlers={topics.GAMES_SYNC_REQUESTED: by_type("ingest", {SyncRequested: worker.handle})},
        retry=RetryPolicy(max_attempts=3, base_delay=5.0, handler_timeout=3600.0),
        description="streams players' games from Lichess and chess.com into games.raw",
    )
