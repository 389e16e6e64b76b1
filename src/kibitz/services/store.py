"""store: validates each raw game (python-chess) and upserts it by id into the store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from kibitz import topics
from kibitz.adapters.store_models import Game, Sync, SyncGame
from kibitz.domain.games import GameRecord, game_from_lichess, game_from_pgn
from kibitz.errors import InvalidPgn
from kibitz.events import Envelope, GameRejected, GameStored, Payload, RawGame
from kibitz.runtime.consumer import RetryPolicy
from kibitz.runtime.service import Service
from kibitz.services.context import Context


def upsert_game(session: Session, record: GameRecord) -> bool:
    """Insert or update the game; returns True when it was new. Unchanged games are untouched."""
    digest = record.content_hash()
    game = session.get(Game, record.id)
    created = game is None
    if game is None:
        game = Game(id=record.id)
        session.add(game)
    elif game.content_hash == digest:
        return False
    game.source = record.source
    game.white_id, game.black_id = record.white_id, record.black_id
    game.white_name, game.black_name = record.white_name, record.black_name
    game.white_rating, game.black_rating = record.white_rating, record.black_rating
    game.result, game.status, game.winner = record.result, record.status, record.winner
    game.rated, game.variant, game.speed, game.perf = (
        record.rated,
        record.variant,
        record.speed,
        record.perf,
    )
    game.opening_eco, game.opening_name, game.opening_ply = (
        record.opening_eco,
        record.opening_name,
        record.opening_ply,
    )
    game.clock_initial, game.clock_increment = record.clock_initial, record.clock_increment
    game.initial_fen = record.initial_fen
    game.moves_uci = " ".join(record.moves_uci)
    game.moves_san = " ".join(record.moves_san)
    game.ply_count = len(record.moves_uci)
    game.clocks_cs = record.clocks_cs
    game.server_analysis = record.server_analysis
    game.player_analysis = record.player_analysis
    game.pgn_evals = record.pgn_evals
    game.headers = record.headers or None
    game.raw = record.raw
    game.pgn = record.pgn
    game.played_at = record.played_at
    game.played_at_ms = record.played_at_ms
    game.content_hash = digest
    game.updated_at = datetime.now(UTC)
    return created


def _count_into_sync(
    session: Session, insert: Any, sync_id: str, game_id: str, created: bool
) -> None:
    """Count the game into its sync once, however often it is delivered (atomic increments:
    concurrent handlers of other partitions update the same row)."""
    result = session.execute(
        insert(SyncGame)
        .values(sync_id=sync_id, game_id=game_id, created=created)
        .on_conflict_do_nothing()
    )
    added = cast(CursorResult[Any], result).rowcount
    if added:
        session.execute(
            update(Sync)
            .where(Sync.id == sync_id)
            .values(
                games_stored=Sync.games_stored + 1,
                games_created=Sync.games_created + (1 if created else 0),
            )
        )


def build(ctx: Context) -> Service:
    async def handle_raw_game(envelope: Envelope, payload: Payload) -> None:
        assert isinstance(payload, RawGame)
        batch_id = payload.sync_id or payload.import_id
        try:
            if payload.source == "lichess" and payload.lichess is not None:
                record = game_from_lichess(payload.lichess)
            elif payload.pgn is not None:
                record = game_from_pgn(payload.pgn)
            else:
                raise InvalidPgn("raw game without Lichess JSON or PGN text")
        except InvalidPgn as exc:
            await _reject(ctx, envelope, payload, batch_id, exc.detail)
            return

        def write(session: Session) -> bool:
            created = upsert_game(session, record)
            if batch_id:
                _count_into_sync(session, ctx.store.insert, batch_id, record.id, created)
            return created

        created = await ctx.store.run(write)
        await ctx.publisher.publish(
            topics.GAMES_STORED,
            GameStored(
                game_id=record.id,
                created=created,
                sync_id=payload.sync_id,
                import_id=payload.import_id,
            ),
            key=record.id,
            cause=envelope,
        )

    return Service(
        name="store",
        handlers={topics.GAMES_RAW: handle_raw_game},
        retry=RetryPolicy(max_attempts=4, base_delay=0.5),
        description="validates and upserts games from games.raw",
    )


async def _reject(
    ctx: Context, envelope: Envelope, payload: RawGame, batch_id: str | None, reason: str
) -> None:
    def write(session: Session) -> None:
        if not batch_id:
            return
        sync = session.get(Sync, batch_id, with_for_update=not ctx.store.is_sqlite)
        if sync is not None:
            sync.rejected = [*(sync.rejected or []), {"index": payload.index, "reason": reason}]
            sync.games_rejected += 1

    await ctx.store.run(write)
    await ctx.publisher.publish(
        topics.GAMES_REJECTED,
        GameRejected(
            reason=reason,
            sync_id=payload.sync_id,
            import_id=payload.import_id,
            index=payload.index,
        ),
        key=batch_id or "unknown",
        cause=envelope,
    )
