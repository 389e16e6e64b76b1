"""ingest: a player's games from Lichess into `games.raw`, one message per game as it arrives;
PGN files enter the same topic."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kibitz import topics
from kibitz.adapters.store_models import Game, Player, Sync
from kibitz.backoff import Backoff
from kibitz.domain.games import split_pgn
from kibitz.domain.players import check_username
from kibitz.errors import InvalidInput, LichessRateLimited, LichessUserNotFound, UpstreamUnavailable
from kibitz.events import Envelope, Payload, RawGame, SyncRequested
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.service import Service
from kibitz.services.context import Context

log = logging.getLogger("kibitz.ingest")

STREAM_ATTEMPTS = 5
STREAM_RETRY = Backoff(first=0.5, cap=30.0)  # between attempts at a broken export stream
PROGRESS_EVERY_SECONDS = 0.5
QUEUE_SLICE = 500  # PGN games queued per append: the event loop serves requests in between


async def set_followed(ctx: Context, username: str, followed: bool) -> dict[str, Any]:
    """Follow or unfollow a player; followed players are synced by the scheduler."""
    name = check_username(username)

    def write(session: Session) -> None:
        player = session.get(Player, name.lower())
        if player is None:
            session.add(Player(id=name.lower(), name=name, followed=followed))
        else:
            player.followed = followed

    await ctx.store.run(write)
    return {"username": name, "followed": followed}


async def request_sync(
    ctx: Context,
    username: str,
    *,
    max_games: int | None = None,
    since_ms: int | None = None,
) -> str:
    """Create a sync of `username`'s games and queue it; returns the sync id."""
    name = check_username(username)
    if max_games is not None and max_games < 1:
        raise InvalidInput("max must be at least 1")
    sync_id = str(uuid.uuid4())

    def create(session: Session) -> None:
        if session.get(Player, name.lower()) is None:
            session.add(Player(id=name.lower(), name=name))
        session.add(Sync(id=sync_id, kind="lichess", username=name.lower(), status="queued"))

    await ctx.store.run(create)
    await ctx.publisher.publish(
        topics.GAMES_SYNC_REQUESTED,
        SyncRequested(username=name, sync_id=sync_id, since_ms=since_ms, max_games=max_games),
        key=name.lower(),
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

    def create(session: Session) -> None:
        session.add(
            Sync(
                id=sync_id,
                kind="pgn",
                filename=filename[:255] if filename else None,
                status="running",
                created_at=datetime.fromtimestamp(ctx.clock.now(), UTC),
                games_received=len(entries),
                games_rejected=len(rejected),
                rejected=rejected,
            )
        )

    await ctx.store.run(create)
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

    def queued(session: Session) -> None:
        sync = session.get(Sync, sync_id)
        if sync is not None and sync.status == "running":
            sync.status = "streamed"
            if not good:  # every game was refused at the split: done already
                sync.finished_at = datetime.fromtimestamp(ctx.clock.now(), UTC)

    await ctx.store.run(queued)
    return sync_id


INTERRUPTED = (
    "the import was interrupted before all its games were queued (the server stopped); "
    "import the file again: the games already stored are kept and not doubled"
)


async def fail_interrupted_imports(ctx: Context, older_than_s: float) -> int:
    """Fail the PGN imports still queueing their games `older_than_s` seconds after they
    started: the process that queued them is gone (queueing takes seconds). Returns how many."""
    cutoff = datetime.fromtimestamp(ctx.clock.now() - older_than_s, UTC)

    def fail(session: Session) -> int:
        stuck = session.scalars(
            select(Sync).where(
                Sync.kind == "pgn", Sync.status == "running", Sync.created_at <= cutoff
            )
        ).all()
        now = datetime.fromtimestamp(ctx.clock.now(), UTC)
        for sync in stuck:
            sync.status, sync.error, sync.finished_at = "failed", INTERRUPTED, now
        return len(stuck)

    failed = await ctx.store.run(fail)
    if failed:
        log.warning("imports_interrupted count=%d", failed)
    return failed


def latest_game_ms(session: Session, player_id: str) -> int | None:
    value = session.scalar(
        select(func.max(Game.played_at_ms)).where(
            (Game.white_id == player_id) | (Game.black_id == player_id)
        )
    )
    return int(value) if value is not None else None


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


def build(ctx: Context) -> Service:
    async def handle_sync_requested(envelope: Envelope, payload: Payload) -> None:
        assert isinstance(payload, SyncRequested)
        try:
            await sync_games(envelope, payload)
        except Exception as exc:
            # Whoever watches the sync sees why; the runtime retries it (a retry resumes and
            # sets it running again) and parks it on the DLQ if it keeps failing.
            reason = f"{type(exc).__name__}: {exc}"[:500]

            def fail(session: Session) -> None:
                sync = session.get(Sync, payload.sync_id)
                if sync is not None and sync.status not in ("streamed", "failed"):
                    sync.status, sync.error = "failed", reason

            await ctx.store.run(fail)
            raise

    async def sync_games(envelope: Envelope, payload: SyncRequested) -> None:
        player_id = payload.username.lower()
        sync_id = payload.sync_id

        def start(session: Session) -> tuple[int, int | None]:
            sync = session.get(Sync, sync_id)
            if sync is None:
                session.add(Sync(id=sync_id, kind="lichess", username=player_id))
                sync = session.get(Sync, sync_id)
            assert sync is not None
            sync.status = "running"
            # A redelivered request resumes after the last game this sync stored.
            resume = latest_game_ms(session, player_id) if sync.games_received else None
            return sync.games_received, resume

        received, resume_ms = await ctx.store.run(start)
        cursor = max(
            filter(None, [payload.since_ms, resume_ms + 1 if resume_ms else None]), default=None
        )
        last_report = time.monotonic()

        async def report(status: str, error: str | None = None) -> None:
            now = datetime.fromtimestamp(ctx.clock.now(), UTC)

            def write(session: Session) -> None:
                sync = session.get(Sync, sync_id)
                if sync is None:
                    return
                sync.games_received = received
                sync.status = status
                sync.error = error
                if status in ("streamed", "failed"):
                    sync.finished_at = now
                    player = session.get(Player, player_id)
                    if player is not None and status == "streamed":
                        player.last_synced_at = now

            await ctx.store.run(write)

        publishing = _Pipeline(ctx, envelope)
        for attempt in range(1, STREAM_ATTEMPTS + 1):
            remaining = None if payload.max_games is None else payload.max_games - received
            if remaining is not None and remaining <= 0:
                break
            try:
                async for line, obj in ctx.lichess.stream_games(
                    payload.username,
                    since_ms=cursor,
                    until_ms=payload.until_ms,
                    max_games=remaining,
                ):
                    received += 1
                    # Every line is handed on with its index, a broken one too: the store
                    # rejects it by index with its reason, and the games after it still come.
                    game_id = obj.get("id") if obj is not None else None
                    await publishing.add(
                        RawGame(
                            source="lichess", sync_id=sync_id, index=received, lichess_json=line
                        ),
                        game_id if isinstance(game_id, str) else f"{sync_id}:{received}",
                    )
                    created = obj.get("createdAt") if obj is not None else None
                    if isinstance(created, int) and not isinstance(created, bool):
                        cursor = created + 1
                    if time.monotonic() - last_report > PROGRESS_EVERY_SECONDS:
                        await report("running")
                        last_report = time.monotonic()
                break
            except LichessUserNotFound as exc:
                await publishing.flush()
                await report("failed", exc.detail)
                return
            except LichessRateLimited:
                log.warning("sync_rate_limited sync=%s attempt=%d", sync_id, attempt)
            except UpstreamUnavailable as exc:
                log.warning("sync_stream_failed sync=%s attempt=%d error=%s", sync_id, attempt, exc)
                if attempt == STREAM_ATTEMPTS:
                    await publishing.flush()
                    await report("failed", exc.detail)
                    return
                await ctx.clock.sleep(STREAM_RETRY.delay(attempt))
        await publishing.flush()
        await report("streamed")

    return Service(
        name="ingest",
        handlers={topics.GAMES_SYNC_REQUESTED: handle_sync_requested},
        retry=RetryPolicy(max_attempts=3, base_delay=5.0, handler_timeout=3600.0),
        description="streams players' games from Lichess into games.raw",
    )
