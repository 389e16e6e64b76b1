"""Read side: live games with their commentary, and the tracked players."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import Commentary, TrackedPlayer, TrackingSession
from kibitz.domain.judgment import stored_score, white_percent
from kibitz.errors import NotFound


def live_view(session: Session, game_id: str) -> dict[str, Any]:
    """A live game: its session and every commentary line so far. NotFound when unknown."""
    game = session.get(TrackingSession, game_id)
    lines = session.scalars(
        select(Commentary).where(Commentary.game_id == game_id).order_by(Commentary.ply)
    ).all()
    if game is None and not lines:
        raise NotFound(f"no live game {game_id!r}")
    return {
        "game_id": game_id,
        "username": game.username if game else None,
        "white": game.white if game else None,
        "black": game.black if game else None,
        "status": game.status if game else "unknown",
        "result": game.result if game else None,
        "initial_fen": game.initial_fen if game else None,
        "plies": game.last_ply if game else len(lines),
        "commentary": [line_view(c) for c in lines],
    }


def line_view(c: Commentary) -> dict[str, Any]:
    return {
        "ply": c.ply,
        "san": c.san,
        "uci": c.uci,
        "fen": c.fen,
        "text": c.text,
        "commentator": c.commentator,
        "fallback": c.fallback,
        "judgment": c.judgment,
        "best_san": c.best_san,
        "cp": c.cp,
        "mate": c.mate,
        "white_clock": c.white_clock,
        "black_clock": c.black_clock,
        "audio_url": f"/api/live/{c.game_id}/audio/{c.ply}.wav" if c.audio else None,
        "white_percent": white_percent(stored_score(c.cp, c.mate)),
    }


def tracking_view(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """Tracked players, the active ones first, with their current or last game."""
    rows = session.scalars(
        select(TrackedPlayer).order_by(TrackedPlayer.updated_at.desc()).limit(limit)
    ).all()
    out = []
    for r in sorted(rows, key=lambda r: r.status == "ended"):
        out.append(
            {
                "username": r.name,
                "status": r.status,
                "game_id": r.game_id,
                "started_at": r.started_at,
                "updated_at": r.updated_at,
                "ended_at": r.ended_at,
                "end_reason": r.end_reason,
                "live_url": f"/live/{r.game_id}" if r.game_id else None,
            }
        )
    return out
