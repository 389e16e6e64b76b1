"""JSON API for training: a player's due cards and their answers (FSRS), the puzzle dashboard,
the streak's best."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from kibitz.api.deps import container, ensure_engine
from kibitz.read import models
from kibitz.runtime.bootstrap import Container
from kibitz.services import training

router = APIRouter(prefix="/api/training", tags=["training"])


class CardAnswer(BaseModel):
    move: str = Field(min_length=4, max_length=5, description="the answer, UCI (e.g. e2e4)")


class StreakScore(BaseModel):
    score: int = Field(ge=0, le=10_000, description="puzzles solved in a row before the miss")


@router.get("/{username}/due", response_model=models.DueCards)
async def due(
    username: str,
    app: Container = Depends(container),
    limit: int = Query(20, ge=1, le=500),
) -> dict[str, Any]:
    """The player's cards due now, soonest first: their own mistakes and the puzzles of their
    games. Their analysed games not yet made cards are made cards first."""
    return await training.due_cards(app.ctx, username, limit)


@router.post("/cards/{card_id}/answer", response_model=models.CardAnswered)
async def answer(
    card_id: str, body: CardAnswer, request: Request, app: Container = Depends(container)
) -> dict[str, Any]:
    """Check a move against the card (any move within 0.04 winning chances of the engine's
    best counts; a move not seen before is checked by the engine) and reschedule it with FSRS:
    right is Good, wrong is Again. 409 when the card was answered meanwhile."""
    card = await app.ctx.store.training.card(card_id)
    if card is not None and card.kind == "mistake":
        await ensure_engine(request, "checking an answer")
    return await training.answer(app.ctx, card_id, body.move)


@router.get("/{username}/dashboard", response_model=models.Dashboard)
async def dashboard(
    username: str,
    app: Container = Depends(container),
    days: int = Query(30, description="1, 7, 30 or 90"),
) -> dict[str, Any]:
    """Per theme over the last `days` days: first attempts, first-try wins, performance; weak
    themes; the puzzle rating, best streak, due cards and review streak."""
    return await app.reader.dashboard(
        training.player_id(username), training.check_days(days), app.ctx.clock.now()
    )


@router.post("/{username}/streak", response_model=models.StreakEnded)
async def streak_ended(
    username: str, body: StreakScore, app: Container = Depends(container)
) -> dict[str, Any]:
    """A streak ended at `score`: the best one is kept."""
    return await training.streak_ended(app.ctx, username, body.score)
