"""A player's training as they see it: the puzzle dashboard (Lichess's is the anchor: lila
`modules/puzzle/src/main/PuzzleDashboard.scala`), their due cards and review streak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import CardReview, PuzzleAttempt, Solver, TrainingCard
from kibitz.domain import training
from kibitz.domain.training import START_RATING, START_RD

PERIODS = (1, 7, 30, 90)


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).date().isoformat()


def review_streak(days_reviewed: set[str], now: float) -> int:
    """Days in a row with a review, up to today (or yesterday: today's may come yet)."""
    day = datetime.fromtimestamp(now, UTC).date()
    if day.isoformat() not in days_reviewed:
        day -= timedelta(days=1)
    streak = 0
    while day.isoformat() in days_reviewed:
        streak += 1
        day -= timedelta(days=1)
    return streak


def _results_view(r: training.Results) -> dict[str, Any]:
    return {
        "attempts": r.attempts,
        "first_wins": r.first_wins,
        "failed": r.failed,
        "win_rate": round(r.win_rate, 4),
        "puzzle_rating_avg": round(r.rating_avg),
        "performance": r.performance if r.attempts else None,
    }


def dashboard(session: Session, player: str, days: int, now: float) -> dict[str, Any]:
    """Per theme over the last `days` days: first attempts, first-try wins, performance; the
    weak themes; the solver's rating, best streak, due cards and review streak."""
    since = now - days * 86400
    rows = session.execute(
        select(PuzzleAttempt.solved, PuzzleAttempt.puzzle_rating, PuzzleAttempt.themes).where(
            PuzzleAttempt.player_id == player,
            PuzzleAttempt.first.is_(True),
            PuzzleAttempt.at >= since,
        )
    ).all()
    overall = training.results([(bool(r.solved), float(r.puzzle_rating)) for r in rows])
    themes: dict[str, list[tuple[bool, float]]] = {}
    for r in rows:
        for theme in r.themes or []:
            themes.setdefault(str(theme), []).append((bool(r.solved), float(r.puzzle_rating)))
    by_theme = {t: training.results(a) for t, a in themes.items()}
    solver = session.get(Solver, player)
    mine = TrainingCard.player_id == player
    due = session.scalar(select(func.count()).where(mine, TrainingCard.due <= now)) or 0
    total = session.scalar(select(func.count()).where(mine)) or 0
    reviewed = {
        _day(at)
        for at in session.scalars(
            select(CardReview.at).where(
                CardReview.player_id == player, CardReview.at >= now - 400 * 86400
            )
        )
    }
    return {
        "player": player,
        "days": days,
        "rating": round(solver.rating) if solver else round(START_RATING),
        "rd": round(solver.rd) if solver else round(START_RD),
        "rated_attempts": solver.rated_attempts if solver else 0,
        "best_streak": solver.best_streak if solver else 0,
        "global": _results_view(overall),
        "themes": {
            t: _results_view(r)
            for t, r in sorted(by_theme.items(), key=lambda item: -item[1].attempts)
        },
        "weak_themes": training.weak_themes(overall, by_theme),
        "cards_due": int(due),
        "cards_total": int(total),
        "review_streak": review_streak(reviewed, now),
        "reviewed_today": _day(now) in reviewed,
    }
