"""JSON API for players, syncs, PGN imports and games."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from pydantic import BaseModel, Field

from kibitz.api.deps import context, reader
from kibitz.domain.players import player_key
from kibitz.errors import InvalidInput, PayloadTooLarge
from kibitz.read import models
from kibitz.read.reader import Reader
from kibitz.services import ingest
from kibitz.services.context import Context

router = APIRouter(prefix="/api", tags=["games"])


SOURCE = Query(
    None,
    pattern="^(lichess|chesscom)$",
    description="the site: lichess (the default) or chesscom (or write the name as "
    "name@chess.com); the same name on two sites is two players",
)


class SyncRequest(BaseModel):
    max: int | None = Field(default=None, ge=1, le=100_000)
    since_ms: int | None = Field(default=None, ge=0)
    source: Literal["lichess", "chesscom"] | None = Field(
        default=None, description="the site the games come from (default: Lichess)"
    )


class Accepted(BaseModel):
    id: str
    status: str
    url: str


@router.post(
    "/players/{username}/sync",
    status_code=202,
    response_model=Accepted,
)
async def sync_player(
    username: str, body: SyncRequest | None = None, ctx: Context = Depends(context)
) -> Accepted:
    """Queue a sync of the player's games from Lichess (or chess.com: `source`, or the name
    written name@chess.com); follow it at /api/syncs/{id}."""
    body = body or SyncRequest()
    sync_id = await ingest.request_sync(
        ctx, username, max_games=body.max, since_ms=body.since_ms, source=body.source
    )
    return Accepted(id=sync_id, status="queued", url=f"/api/syncs/{sync_id}")


@router.post("/players/{username}/follow", response_model=models.Followed)
async def follow_player(
    username: str, ctx: Context = Depends(context), source: str | None = SOURCE
) -> dict[str, Any]:
    """Keep the player in sync: the scheduler syncs followed players every minute and
    analyses their new games (batch lane)."""
    return await ingest.set_followed(ctx, username, True, source)


@router.delete("/players/{username}/follow", response_model=models.Followed)
async def unfollow_player(
    username: str, ctx: Context = Depends(context), source: str | None = SOURCE
) -> dict[str, Any]:
    """Stop the scheduler's syncs of the player (their games stay)."""
    return await ingest.set_followed(ctx, username, False, source)


@router.get("/players/{username}/insights", response_model=models.Insights)
async def player_insights(username: str, read: Reader = Depends(reader)) -> dict[str, Any]:
    """Accuracy and average centipawn loss across the player's analysed games by colour,
    result, phase, time left, opening family and month, and their blunders' themes; each
    number with the games behind it. A chess.com player is written name@chess.com."""
    return await read.insights(player_key(username))


@router.get("/syncs/{sync_id}", response_model=models.SyncView)
async def sync_status(sync_id: str, read: Reader = Depends(reader)) -> dict[str, Any]:
    """A sync's or import's status and counts."""
    return await read.sync(sync_id)


@router.post(
    "/imports/pgn",
    status_code=202,
    response_model=Accepted,
)
async def import_pgn(
    file: UploadFile, request: Request, ctx: Context = Depends(context)
) -> Accepted:
    """Import a PGN file of one or many games (multipart field `file`)."""
    limit = ctx.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the PGN file is over the {limit}-byte limit")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if not text.strip():
        raise InvalidInput("the PGN file is empty")
    import_id = await ingest.import_pgn(ctx, text, filename=file.filename)
    return Accepted(id=import_id, status="queued", url=f"/api/syncs/{import_id}")


@router.get("/players/{username}/games", response_model=models.PlayerGames)
async def list_player_games(
    username: str,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
    read: Reader = Depends(reader),
) -> dict[str, Any]:
    """The player's games, newest first."""
    return {"username": username, "games": await read.player_games(username, limit, offset)}


@router.get("/games/{game_id}", response_model=models.GameDetail)
async def game(game_id: str, read: Reader = Depends(reader)) -> dict[str, Any]:
    """One game with moves, clocks, opening and any analysis kept with it."""
    return await read.game(game_id)
