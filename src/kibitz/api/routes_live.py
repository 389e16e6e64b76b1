"""JSON API for live games: start tracking a player, follow a game's moves and commentary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from kibitz.api.deps import container
from kibitz.api.progress import KEEP_ALIVE, Subscription, sse, sse_response
from kibitz.errors import NotFound
from kibitz.events import CommentaryPublished, LiveMove, LiveSession
from kibitz.read import models
from kibitz.runtime.bootstrap import Container
from kibitz.services.tracker import request_tracking, tracker_active

router = APIRouter(prefix="/api", tags=["live"])


class TrackingRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    profile: dict[str, Any] = Field(default_factory=dict)


@router.post("/tracking", response_model=models.TrackingStarted)
async def start_tracking(body: TrackingRequest, app: Container = Depends(container)) -> Any:
    """Start following a Lichess player's ongoing game (and their next ones for a while):
    `tracking_started`, `already_tracking`, or `requested` (queued on the topic because the
    tracker could not be reached)."""
    return await request_tracking(app.ctx, app.component("tracker"), body.username, body.profile)


@router.get("/tracking", response_model=models.Tracking)
async def list_tracking(app: Container = Depends(container)) -> dict[str, Any]:
    """Tracked players, active first, each with their current or last game."""
    players = await app.reader.tracking()
    tracker = app.component("tracker")
    active = tracker.active if tracker else await tracker_active(app.ctx)
    return {"players": players, "active_trackers": active}


@router.get("/live/{game_id}", response_model=models.LiveView)
async def get_live_game(game_id: str, app: Container = Depends(container)) -> dict[str, Any]:
    """A live game: players, status, result, every commentary line so far."""
    return await app.reader.live(game_id)


@router.get(
    "/live/{game_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events",
            "content": {"text/event-stream": {"schema": models.CommentaryLine.model_json_schema()}},
        }
    },
)
async def live_events(
    game_id: str, request: Request, app: Container = Depends(container)
) -> StreamingResponse:
    """Server-Sent Events: `move` for each ply, `commentary` for each line, `ended` at the end.
    Subscribes first, then sends what the store already has, so nothing falls in between."""

    async def stream() -> AsyncIterator[str]:
        subscription = Subscription(request.app.state.live, game_id)  # before the store
        try:
            try:
                view = await app.reader.live(game_id)
            except NotFound:
                view = None
            if view is not None:
                yield sse("state", {k: v for k, v in view.items() if k != "commentary"})
                for line in view["commentary"]:
                    yield sse("commentary", line)
            async for event in subscription.events(request):
                if event is None:
                    yield KEEP_ALIVE
                elif isinstance(event, LiveMove):
                    yield sse("move", event.model_dump(mode="json"))
                elif isinstance(event, CommentaryPublished):
                    yield sse("commentary", event.model_dump(mode="json"))
                elif isinstance(event, LiveSession):
                    yield sse("ended" if event.state == "ended" else "started", event.model_dump())
        finally:
            subscription.close()

    return sse_response(stream())


@router.get(
    "/live/{game_id}/audio/{ply}.wav",
    response_class=Response,
    responses={
        200: {
            "description": "the spoken line",
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def live_audio(
    game_id: str, ply: int = Path(ge=1, le=10_000), app: Container = Depends(container)
) -> Response:
    """The spoken commentary of one ply (WAV), when speech was asked for."""
    audio = await app.reader.audio(game_id, ply)
    if not audio:
        raise NotFound(f"no audio for ply {ply} of {game_id!r}")
    return Response(audio, media_type="audio/wav", headers={"Cache-Control": "max-age=86400"})
