"""Server-rendered web pages; boards are python-chess SVG, no front-end build step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import chess
import chess.svg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from kibitz.api.deps import context
from kibitz.api.views import game_detail, get_game, get_sync, player_games, recent_games
from kibitz.errors import InvalidInput
from kibitz.services.context import Context

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, ctx: Context = Depends(context)) -> Response:
    games = await ctx.store.read(lambda s: [game_detail(g) for g in recent_games(s, 20)])
    return templates.TemplateResponse(request, "home.html", {"games": games})


@router.get("/imports/{sync_id}", response_class=HTMLResponse)
async def import_page(sync_id: str, request: Request, ctx: Context = Depends(context)) -> Response:
    sync = await ctx.store.read(lambda s: get_sync(s, sync_id))
    return templates.TemplateResponse(request, "import.html", {"sync": sync})


@router.get("/players/{username}", response_class=HTMLResponse)
async def player_page(username: str, request: Request, ctx: Context = Depends(context)) -> Response:
    games = await ctx.store.read(
        lambda s: [game_detail(g) for g in player_games(s, username, 200, 0)]
    )
    return templates.TemplateResponse(
        request, "player.html", {"username": username, "games": games}
    )


@router.get("/games/{game_id}", response_class=HTMLResponse)
async def game_page(game_id: str, request: Request, ctx: Context = Depends(context)) -> Response:
    game = await ctx.store.read(lambda s: game_detail(get_game(s, game_id)))
    return templates.TemplateResponse(request, "game.html", {"game": game})


@router.get("/games/{game_id}/board.svg")
async def board_svg(
    game_id: str, ply: int = Query(0, ge=0), ctx: Context = Depends(context)
) -> Response:
    """The position after `ply` moves, drawn by python-chess, last move highlighted."""
    game = await ctx.store.read(lambda s: game_detail(get_game(s, game_id)))
    moves: list[str] = game["moves_uci"]
    if ply > len(moves):
        raise InvalidInput(f"the game has {len(moves)} plies; ply {ply} does not exist")
    board = chess.Board(game["initial_fen"]) if game["initial_fen"] else chess.Board()
    last: chess.Move | None = None
    for uci in moves[:ply]:
        last = chess.Move.from_uci(uci)
        board.push(last)
    check: Any = board.king(board.turn) if board.is_check() else None
    svg = chess.svg.board(board, lastmove=last, check=check, size=400)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "max-age=3600"})
