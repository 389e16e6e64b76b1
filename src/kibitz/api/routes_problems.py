"""JSON API for puzzles: serve the least recently served one, check attempts, the pool."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kibitz.api.deps import container
from kibitz.read import models
from kibitz.runtime.bootstrap import Container
from kibitz.services import problems

router = APIRouter(prefix="/api/problems", tags=["problems"])


SOLVER = "the solver's username: their first attempt at a puzzle moves their puzzle rating"


class AttemptRequest(BaseModel):
    moves: list[str] = Field(min_length=1, max_length=64, description="the solver's moves, UCI")
    player: str | None = Field(default=None, min_length=1, max_length=64, description=SOLVER)


class BulkRequest(BaseModel):
    player: str | None = Field(default=None, min_length=1, max_length=64)


@router.get("/random", response_model=models.PuzzleView)
async def random_problem(
    app: Container = Depends(container),
    player: str | None = Query(default=None, max_length=64),
    theme: str | None = Query(default=None, max_length=32),
    near: str | None = Query(
        default=None, max_length=64, description="a solver: puzzles near their rating first"
    ),
    above: int | None = Query(
        default=None, ge=0, le=4000, description="a rating: the next puzzle just above (streak)"
    ),
) -> dict[str, Any]:
    """The least recently served puzzle (never-served first) of `player`'s games and `theme`,
    marked served: concurrent clients never get the same one while others remain. With `near`
    it is chosen near that solver's rating, with `above` just above that rating."""
    return await problems.serve_near(app.ctx, player, theme, near, above)


@router.get("/pool", response_model=models.PoolView)
async def pool(
    app: Container = Depends(container), player: str | None = Query(default=None, max_length=64)
) -> dict[str, Any]:
    """Totals, never-served count, counts by theme, games searched and left to search."""
    view = await app.reader.problem_pool(player)
    view["min_unserved"] = app.settings.problems_min_unserved
    return view


@router.get("/{problem_id}", response_model=models.PuzzleView)
async def get_problem(problem_id: str, app: Container = Depends(container)) -> dict[str, Any]:
    """One puzzle, without its solution (does not count as served)."""
    return await app.reader.problem(problem_id)


@router.post("/{problem_id}/attempts", response_model=models.AttemptResult)
async def attempt(
    problem_id: str, body: AttemptRequest, app: Container = Depends(container)
) -> dict[str, Any]:
    """Check the solver's moves: `correct`, `complete`, the `reply` to play next, or on a
    wrong move `wrong_at` and the `expected` move. An attempt counts once it ends."""
    return await problems.record_attempt(app.ctx, problem_id, body.moves, body.player)


class RevealRequest(BaseModel):
    counted: bool = Field(False, description="a wrong move already ended this attempt")
    player: str | None = Field(default=None, min_length=1, max_length=64, description=SOLVER)


@router.post("/{problem_id}/solution", response_model=models.SolutionView)
async def reveal(
    problem_id: str, body: RevealRequest | None = None, app: Container = Depends(container)
) -> dict[str, Any]:
    """The whole solution (the solver's moves and the replies). Asking for it ends the attempt
    unsolved, unless a wrong move already did (`counted`)."""
    counted = body.counted if body is not None else False
    solver = body.player if body is not None else None
    return await problems.reveal_solution(app.ctx, problem_id, counted=counted, solver=solver)


@router.get("/{problem_id}/hint", response_model=models.HintView)
async def hint(
    problem_id: str, step: int = Query(0, ge=0, le=50), app: Container = Depends(container)
) -> dict[str, Any]:
    """Where the piece stands that the solver moves at their move `step` (does not count)."""
    return await problems.hint(app.ctx, problem_id, step)


@router.post("/generate-bulk", status_code=202, response_model=models.GenerationAccepted)
async def generate_bulk(
    body: BulkRequest | None = None, app: Container = Depends(container)
) -> JSONResponse:
    """Search a player's games (or every game) for puzzles in the background; games not yet
    analysed are queued for analysis first."""
    player = body.player if body else None
    accepted = await problems.request_generation(app.ctx, player)
    return JSONResponse(accepted, status_code=202)
