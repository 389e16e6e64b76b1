"""JSON API for analysis: request it in a lane, follow its progress (SSE), read its results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from kibitz.api.deps import container, context, ensure_engine, reader
from kibitz.api.progress import KEEP_ALIVE, Subscription, sse, sse_response
from kibitz.events import AnalysisProgress
from kibitz.read import models
from kibitz.read.reader import Reader
from kibitz.runtime.bootstrap import Container
from kibitz.services import analysis, explore
from kibitz.services.context import Context

router = APIRouter(prefix="/api", tags=["analysis"])


class AnalysisRequest(BaseModel):
    priority: Literal["interactive", "batch"] = "interactive"
    force: bool = False


class PlayerAnalysisRequest(BaseModel):
    priority: Literal["interactive", "batch"] = "batch"


class ExploreRequest(BaseModel):
    fen: str = Field(min_length=8, max_length=120)
    nodes: int = Field(default=1_000_000, description="the search budget")


@router.post("/explore", response_model=models.ExploreView)
async def explore_position(
    body: ExploreRequest, request: Request, app: Container = Depends(container)
) -> dict[str, Any]:
    """The engine's evaluation and best line of any position (the analysis board's explore
    mode), on the interactive lane at `nodes` nodes, cached. A process without a running engine
    (the API of a distributed deployment) starts one on first use."""
    await ensure_engine(request, "explore")
    return await explore.explore(app.ctx, body.fen, body.nodes)


@router.post("/games/{game_id}/analysis", status_code=202, response_model=models.AnalysisQueued)
async def request_game_analysis(
    game_id: str, body: AnalysisRequest | None = None, ctx: Context = Depends(context)
) -> dict[str, Any]:
    """Queue the game's analysis (interactive by default); `force` analyses it again."""
    body = body or AnalysisRequest()
    view = await analysis.request_analysis(ctx, game_id, body.priority, force=body.force)
    return {**view, "url": f"/api/games/{game_id}/analysis"}


@router.delete("/games/{game_id}/analysis", response_model=models.AnalysisCancelled)
async def cancel_game_analysis(game_id: str, ctx: Context = Depends(context)) -> dict[str, Any]:
    """Cancel the game's queued or running analysis (409 when there is none to cancel)."""
    return await analysis.cancel_analysis(ctx, game_id)


@router.get("/games/{game_id}/analysis", response_model=models.AnalysisView)
async def get_game_analysis(game_id: str, read: Reader = Depends(reader)) -> dict[str, Any]:
    """Status, phase, progress (of the current phase) and every plugin's result."""
    return await read.analysis(game_id)


@router.get(
    "/games/{game_id}/analysis/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events",
            "content": {"text/event-stream": {"schema": models.ProgressEvent.model_json_schema()}},
        }
    },
)
async def game_analysis_events(
    game_id: str, request: Request, app: Container = Depends(container)
) -> StreamingResponse:
    """Server-Sent Events: `progress` for every update, then `done` (or `failed`)."""
    first = await app.reader.analysis(game_id, with_evals=False)

    async def stream() -> AsyncIterator[str]:
        subscription = Subscription(request.app.state.progress, game_id)
        try:
            yield sse("progress", _brief(first))
            if first["status"] in ("done", "failed"):
                yield sse(first["status"], _brief(first))
                return
            async for event in subscription.events(request):
                if event is None:
                    # No news: check the store (a worker elsewhere may have failed the job).
                    view = await app.reader.analysis(game_id, with_evals=False)
                    if view["status"] in ("done", "failed"):
                        yield sse(view["status"], _brief(view))
                        return
                    yield KEEP_ALIVE
                    continue
                if not isinstance(event, AnalysisProgress):
                    continue
                data = event.model_dump()
                total = data["positions_total"] or 1
                data["progress"] = round(data["positions_done"] / total, 4)
                yield sse("progress", data)
                if event.status == "done":
                    yield sse("done", data)
                    return
        finally:
            subscription.close()

    return sse_response(stream())


@router.post(
    "/players/{username}/analysis",
    status_code=202,
    response_model=models.PlayerAnalysisQueued,
)
async def request_player_analysis(
    username: str, body: PlayerAnalysisRequest | None = None, ctx: Context = Depends(context)
) -> dict[str, Any]:
    """Queue every not yet analysed game of the player (batch lane by default)."""
    body = body or PlayerAnalysisRequest()
    queued = await analysis.request_player_analysis(ctx, username, body.priority)
    return {"username": username, "queued": queued, "priority": body.priority}


@router.get("/players/{username}/report", response_model=models.PlayerReport)
async def player_report(username: str, read: Reader = Depends(reader)) -> dict[str, Any]:
    """Averages over the player's analysed games and their worst openings."""
    return await read.player_report(username)


def _brief(view: dict[str, Any]) -> dict[str, Any]:
    keys = ("game_id", "status", "phase", "progress", "positions_done", "positions_total", "error")
    return {k: view.get(k) for k in keys}
