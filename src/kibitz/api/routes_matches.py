"""JSON API for guess-the-move matches and the robot pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from kibitz.api.deps import container
from kibitz.api.progress import KEEP_ALIVE, Subscription, sse, sse_response
from kibitz.read import models
from kibitz.runtime.bootstrap import Container
from kibitz.services import matches

router = APIRouter(prefix="/api", tags=["matches"])


class MatchRequest(BaseModel):
    rounds: int = Field(default=5, ge=1, le=20)
    robots_per_round: int = Field(default=3, ge=0, le=6)
    source: str = Field(default="problems", description="problems | games")
    player: str | None = Field(default=None, max_length=64, description="whose games or puzzles")
    name: str = Field(default="you", min_length=1, max_length=40)


class ResponseRequest(BaseModel):
    move: str = Field(min_length=2, max_length=10, description="UCI (e2e4) or SAN (e4)")
    reason: str = Field(min_length=1, max_length=280)


class VoteRequest(BaseModel):
    identity: str = Field(min_length=1, max_length=2, description="the answer's letter")


@router.post("/matches", status_code=201, response_model=models.MatchCreated)
async def create(body: MatchRequest, app: Container = Depends(container)) -> JSONResponse:
    """Start a match: positions from the problem pool or the player's analysed games."""
    made = await matches.create_match(
        app.ctx,
        rounds=body.rounds,
        robots_per_round=body.robots_per_round,
        source=body.source,
        player=body.player,
        person=body.name,
    )
    return JSONResponse(made, status_code=201, headers={"Location": f"/api/matches/{made['id']}"})


@router.get("/matches/{match_id}", response_model=models.MatchView)
async def get_match(match_id: str, app: Container = Depends(container)) -> dict[str, Any]:
    """The match as the person sees it: rounds, anonymous answers, scores, ranking."""
    return await app.reader.match(match_id)


@router.get(
    "/matches/{match_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `changed` whenever the match moves on",
            "content": {"text/event-stream": {"schema": models.MatchChanged.model_json_schema()}},
        }
    },
)
async def match_events(match_id: str, request: Request) -> StreamingResponse:
    """`changed` once on connecting and after every event of the match (an answer, a vote, a
    round's phase): the page then reads the match again, instead of polling it."""

    async def stream() -> AsyncIterator[str]:
        subscription = Subscription(request.app.state.matches, match_id)  # before the store
        try:
            yield sse("changed", {"match_id": match_id, "event": "connected"})
            async for event in subscription.events(request):
                if event is None:
                    yield KEEP_ALIVE
                else:
                    yield sse("changed", {"match_id": match_id, "event": event.event_type})
        finally:
            subscription.close()

    return sse_response(stream())


@router.post(
    "/matches/{match_id}/rounds/{number}/response",
    status_code=202,
    response_model=models.AnswerAccepted,
)
async def respond(
    match_id: str,
    body: ResponseRequest,
    number: int = Path(ge=1, le=100),
    app: Container = Depends(container),
) -> dict[str, Any]:
    """Your move and one line of why, for the current round while it takes answers."""
    return await matches.submit_response(app.ctx, match_id, number, body.move, body.reason)


@router.post(
    "/matches/{match_id}/rounds/{number}/vote",
    status_code=202,
    response_model=models.AnswerAccepted,
)
async def vote(
    match_id: str,
    body: VoteRequest,
    number: int = Path(ge=1, le=100),
    app: Container = Depends(container),
) -> dict[str, Any]:
    """Your vote for the best answer other than yours, by its letter."""
    return await matches.submit_vote(app.ctx, match_id, number, body.identity)


@router.get("/robots/pool", response_model=models.RobotPool)
async def robot_pool(app: Container = Depends(container)) -> dict[str, Any]:
    """Robot instances by personality and state."""
    return await app.reader.robot_pool()
