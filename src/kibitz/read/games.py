"""Read side: syncs and imports, games, a player's games."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import Game, Sync
from kibitz.adapters.store_sql import Compiled
from kibitz.errors import GameNotFound, NotFound


def sync_view(sync: Sync) -> dict[str, Any]:
    """A sync or PGN import as users see it; `done` once every received game is accounted for."""
    accounted = sync.games_stored + sync.games_rejected
    status = sync.status
    if status == "streamed":
        status = "done" if accounted >= sync.games_received else "storing"
    return {
        "id": sync.id,
        "kind": sync.kind,
        "username": sync.username,
        "filename": sync.filename,
        "status": status,
        "games_received": sync.games_received,
        "games_stored": sync.games_stored,
        "games_new": sync.games_created,
        "games_rejected": sync.games_rejected,
        "rejected": sync.rejected or [],
        "accounted": accounted,
        "error": sync.error,
        "notice": sync.notice,
        "created_at": sync.created_at.isoformat() if sync.created_at else None,
        "finished_at": sync.finished_at.isoformat() if sync.finished_at else None,
    }


def get_sync(session: Session, sync_id: str) -> dict[str, Any]:
    sync = session.get(Sync, sync_id)
    if sync is None:
        raise NotFound(f"no sync or import {sync_id!r}")
    return sync_view(sync)


def game_summary(game: Game) -> dict[str, Any]:
    return {
        "id": game.id,
        "source": game.source,
        "white": game.white_name,
        "black": game.black_name,
        "white_rating": game.white_rating,
        "black_rating": game.black_rating,
        "result": game.result,
        "status": game.status,
        "speed": game.speed,
        "opening": {"eco": game.opening_eco, "name": game.opening_name, "ply": game.opening_ply},
        "plies": game.ply_count,
        "played_at": game.played_at.isoformat() if game.played_at else None,
    }


def game_detail(game: Game) -> dict[str, Any]:
    return {
        **game_summary(game),
        "variant": game.variant,
        "rated": game.rated,
        "perf": game.perf,
        "initial_fen": game.initial_fen,
        "moves_uci": game.moves_uci.split() if game.moves_uci else [],
        "moves_san": game.moves_san.split() if game.moves_san else [],
        "clock": {"initial": game.clock_initial, "increment": game.clock_increment},
        "clocks_cs": game.clocks_cs,
        "server_analysis": game.server_analysis,
        "player_analysis": game.player_analysis,
        "pgn_evals": game.pgn_evals,
        "headers": game.headers,
    }


# What `game_detail` reads of a game (not its verbatim NDJSON line nor its PGN), by id: the
# statement PostgreSQL runs on the asyncio pool.
DETAIL_COLUMNS = (
    Game.id,
    Game.source,
    Game.white_name,
    Game.black_name,
    Game.white_rating,
    Game.black_rating,
    Game.result,
    Game.status,
    Game.speed,
    Game.opening_eco,
    Game.opening_name,
    Game.opening_ply,
    Game.ply_count,
    Game.played_at,
    Game.variant,
    Game.rated,
    Game.perf,
    Game.initial_fen,
    Game.moves_uci,
    Game.moves_san,
    Game.clock_initial,
    Game.clock_increment,
    Game.clocks_cs,
    Game.server_analysis,
    Game.player_analysis,
    Game.pgn_evals,
    Game.headers,
)
GAME_BY_ID = Compiled.of(
    select(*DETAIL_COLUMNS).where(Game.id == bindparam("id")).compile(dialect=PGDialect_psycopg())  # type: ignore[no-untyped-call]
)


def get_game(session: Session, game_id: str) -> Game:
    game = session.get(Game, game_id)
    if game is None:
        raise GameNotFound(f"no game {game_id!r}")
    return game


def player_games(session: Session, username: str, limit: int, offset: int) -> list[Game]:
    pid = username.lower()
    return list(
        session.scalars(
            select(Game)
            .where(or_(Game.white_id == pid, Game.black_id == pid))
            .order_by(Game.played_at_ms.desc().nulls_last(), Game.id)
            .limit(limit)
            .offset(offset)
        )
    )


def recent_games(session: Session, limit: int) -> list[Game]:
    return list(
        session.scalars(select(Game).order_by(Game.created_at.desc(), Game.id).limit(limit))
    )
