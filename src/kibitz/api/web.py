"""Server-rendered web pages. The analysis board is chessground (frontend/, bundled into
static/app/); the other boards are still python-chess SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import chess
import chess.svg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from kibitz.api.deps import reader
from kibitz.api.session import SESSION_DAYS
from kibitz.domain.judgment import CP_CEILING, stored_score, win_percent
from kibitz.errors import InvalidInput, NotFound
from kibitz.read.reader import Reader
from kibitz.services.problems import check_theme
from kibitz.services.training import DASHBOARD_DAYS, check_days, player_id

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, read: Reader = Depends(reader)) -> Response:
    games = await read.recent_games(20)
    return templates.TemplateResponse(request, "home.html", {"games": games})


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request) -> Response:
    """The API token, once, for a browser session (see kibitz.api.session)."""
    token = request.app.state.container.settings.api_token
    return templates.TemplateResponse(
        request, "signin.html", {"token_required": bool(token), "days": SESSION_DAYS}
    )


@router.get("/imports/{sync_id}", response_class=HTMLResponse)
async def import_page(sync_id: str, request: Request, read: Reader = Depends(reader)) -> Response:
    sync = await read.sync(sync_id)
    return templates.TemplateResponse(request, "import.html", {"sync": sync})


@router.get("/players/{username}", response_class=HTMLResponse)
async def player_page(username: str, request: Request, read: Reader = Depends(reader)) -> Response:
    games = await read.player_games(username, 200, 0, detail=True)
    try:
        report: dict[str, Any] | None = await read.player_report(username)
    except NotFound:
        report = None
    dash = await read.dashboard(player_id(username), 30, request_now(request))
    return templates.TemplateResponse(
        request,
        "player.html",
        {"username": username, "games": games, "report": report, "training": dash},
    )


def request_now(request: Request) -> float:
    return float(request.app.state.container.ctx.clock.now())


@router.get("/players/{username}/review", response_class=HTMLResponse)
async def review_page(username: str, request: Request) -> Response:
    """Review my mistakes: the player's due cards on a board."""
    player_id(username)
    return templates.TemplateResponse(request, "review.html", {"username": username})


def trend_points(
    months: dict[str, Any], width: int = 600, height: int = 160
) -> list[dict[str, Any]]:
    """The accuracy by month as points of an SVG chart (x by month, y 0-100 %)."""
    keys = [k for k in sorted(months) if months[k]["accuracy"] is not None]
    step = width / max(1, len(keys) - 1)
    return [
        {
            "month": k,
            "x": round(i * step if len(keys) > 1 else width / 2, 1),
            "y": round(height - months[k]["accuracy"] / 100 * height, 1),
            "accuracy": months[k]["accuracy"],
            "games": months[k]["games"],
        }
        for i, k in enumerate(keys)
    ]


@router.get("/players/{username}/insights", response_class=HTMLResponse)
async def insights_page(
    username: str, request: Request, read: Reader = Depends(reader)
) -> Response:
    """Insights across the player's analysed games; every number opens the games behind it."""
    try:
        found: dict[str, Any] | None = await read.insights(player_id(username))
    except NotFound:
        found = None
    return templates.TemplateResponse(
        request,
        "insights.html",
        {
            "username": username,
            "insights": found,
            "trend": trend_points(found["month"]) if found else [],
            "dimensions": INSIGHT_DIMENSIONS,
        },
    )


INSIGHT_DIMENSIONS = (
    ("colour", "By colour"),
    ("result", "By result"),
    ("phase", "By game phase"),
    ("clock", "By time left on the clock"),
    ("opening", "By opening family"),
)


@router.get("/players/{username}/dashboard", response_class=HTMLResponse)
async def dashboard_page(
    username: str,
    request: Request,
    read: Reader = Depends(reader),
    days: int = Query(30),
) -> Response:
    """The puzzle dashboard (as Lichess's): per theme, performance, weak themes, streaks."""
    dash = await read.dashboard(player_id(username), check_days(days), request_now(request))
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {"username": username, "dash": dash, "periods": DASHBOARD_DAYS},
    )


@router.get("/games/{game_id}", response_class=HTMLResponse)
async def game_page(game_id: str, request: Request, read: Reader = Depends(reader)) -> Response:
    game = await read.game(game_id)
    view = await read.analysis(game_id)
    plies = len(game["moves_uci"])
    marks = {m["ply"]: m for m in view.get("results", {}).get("judgments", {}).get("moves", [])}
    return templates.TemplateResponse(
        request,
        "game.html",
        {
            "game": game,
            "analysis": view,
            "marks": marks,
            "graph": eval_graph(view.get("evals") or [], plies, marks, game["result"]),
            "glyphs": GLYPHS,
        },
    )


GLYPHS = {"Inaccuracy": "?!", "Mistake": "?", "Blunder": "??"}
GRAPH_W, GRAPH_H = 640, 160


def eval_graph(
    evals: list[dict[str, Any]], plies: int, marks: dict[int, Any], result: str
) -> dict[str, Any] | None:
    """White's win percentage after each ply as SVG coordinates, with the judged moves."""
    if not evals or not plies:
        return None
    step = GRAPH_W / plies
    points = [(0.0, GRAPH_H / 2)]
    percents = []
    last = 50.0
    for e in evals:
        score = stored_score(e["cp"], e["mate"])
        if score is not None:
            last = win_percent(score.forced_cp())
        elif result in ("1-0", "0-1"):  # the finished position: mate
            last = win_percent(CP_CEILING if result == "1-0" else -CP_CEILING)
        percents.append(last)
        points.append((e["ply"] * step, GRAPH_H * (1 - last / 100)))
    return {
        "width": GRAPH_W,
        "height": GRAPH_H,
        "step": step,
        "polyline": " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
        "area": f"0,{GRAPH_H} "
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        + f" {points[-1][0]:.1f},{GRAPH_H}",
        "marks": [
            {
                "x": ply * step,
                "y": GRAPH_H * (1 - percents[ply - 1] / 100),
                "kind": m["judgment"].lower(),
                "title": f"{(ply + 1) // 2}{'.' if ply % 2 else '…'} {m['san']}: {m['comment']}",
                "ply": ply,
            }
            for ply, m in sorted(marks.items())
            if 0 < ply <= len(percents)
        ],
    }


@router.get("/games/{game_id}/board.svg")
async def board_svg(
    game_id: str, ply: int = Query(0, ge=0, le=10_000), read: Reader = Depends(reader)
) -> Response:
    """The position after `ply` moves, drawn by python-chess, last move highlighted."""
    game = await read.game(game_id)
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


@router.get("/live", response_class=HTMLResponse)
async def live_list(request: Request, read: Reader = Depends(reader)) -> Response:
    players = await read.tracking()
    return templates.TemplateResponse(request, "live_list.html", {"players": players})


@router.get("/live/{game_id}", response_class=HTMLResponse)
async def live_page(game_id: str, request: Request, read: Reader = Depends(reader)) -> Response:
    """A live game: the board follows the moves, the bar the engine, the feed the commentary."""
    try:
        view = await read.live(game_id)
    except NotFound:  # not started yet: the page fills in as events arrive
        view = {"game_id": game_id, "status": "waiting", "commentary": [], "result": None}
    return templates.TemplateResponse(request, "live.html", {"game_id": game_id, "view": view})


@router.get("/problems", response_class=HTMLResponse)
async def trainer_page(
    request: Request,
    player: str | None = Query(None, max_length=64),
    theme: str | None = Query(None, max_length=32),
    solver: str | None = Query(None, max_length=64),
    mode: str = Query("pool", pattern="^(pool|streak)$"),
) -> Response:
    """The puzzle trainer: the next least recently served puzzle, played on a clickable board;
    with a `solver`, near their rating and rated; `mode=streak`: rising ratings, one miss ends."""
    check_theme(theme)
    if solver:
        player_id(solver)
    elif mode == "streak":
        raise InvalidInput("a streak is played by someone: add solver=<your username>")
    return templates.TemplateResponse(
        request,
        "trainer.html",
        {"problem_id": None, "player": player, "theme": theme, "solver": solver, "mode": mode},
    )


@router.get("/problems/pool", response_class=HTMLResponse)
async def pool_page(
    request: Request,
    read: Reader = Depends(reader),
    player: str | None = Query(None, max_length=64),
) -> Response:
    """The puzzle pool by theme: how many, how many never served."""
    pool = await read.problem_pool(player)
    return templates.TemplateResponse(request, "pool.html", {"pool": pool})


@router.get("/problems/{problem_id}", response_class=HTMLResponse)
async def problem_page(
    problem_id: str, request: Request, read: Reader = Depends(reader)
) -> Response:
    """One puzzle in the trainer (a link to share)."""
    await read.problem(problem_id)  # 404 for an unknown id
    return templates.TemplateResponse(
        request,
        "trainer.html",
        {"problem_id": problem_id, "player": None, "theme": None, "solver": None, "mode": "pool"},
    )


@router.get("/matches", response_class=HTMLResponse)
async def matches_page(request: Request, read: Reader = Depends(reader)) -> Response:
    """Start a guess-the-move match; the robot pool at a glance."""
    pool = await read.robot_pool()
    return templates.TemplateResponse(request, "matches.html", {"pool": pool})


@router.get("/matches/{match_id}", response_class=HTMLResponse)
async def match_page(match_id: str, request: Request) -> Response:
    """One match: the board, your answer, the anonymous answers, votes, scores."""
    return templates.TemplateResponse(request, "match.html", {"match_id": match_id})


@router.get("/robots", response_class=HTMLResponse)
async def robots_page(request: Request, read: Reader = Depends(reader)) -> Response:
    pool = await read.robot_pool()
    return templates.TemplateResponse(request, "robots.html", {"pool": pool})


@router.get("/ops", response_class=HTMLResponse)
async def ops_page(request: Request) -> Response:
    """Consumer groups (workers alive, lag, throughput), DLQs with replay and discard."""
    return templates.TemplateResponse(request, "ops.html", {})


@router.get("/board.svg")
async def position_svg(
    fen: str = Query("", max_length=100),
    lastmove: str | None = Query(None, max_length=5),
    flipped: bool = False,
    coords: bool = True,
) -> Response:
    """Any position (FEN; empty: the start), drawn by python-chess, last move highlighted;
    `flipped` shows Black at the bottom; without `coords` the squares fill the image evenly
    (the trainer lays its clickable squares over it)."""
    try:
        board = chess.Board(fen) if fen else chess.Board()
        last = chess.Move.from_uci(lastmove) if lastmove else None
    except ValueError as exc:
        raise InvalidInput(f"not a position or move: {exc}") from None
    check: Any = board.king(board.turn) if board.is_check() else None
    svg = chess.svg.board(
        board, lastmove=last, check=check, size=400, flipped=flipped, coordinates=coords
    )
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})
