"""Read side: the robot pool."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kibitz.adapters.store_models import Robot
from kibitz.domain.robots import PERSONALITIES


def pool_view(session: Session) -> dict[str, Any]:
    rows = session.scalars(select(Robot).where(Robot.state != "released").order_by(Robot.id)).all()
    by: dict[str, dict[str, int]] = {p: {"idle": 0, "busy": 0} for p in PERSONALITIES}
    for robot in rows:
        by.setdefault(robot.personality, {"idle": 0, "busy": 0})[robot.state] += 1
    released = session.scalar(select(func.count(Robot.id)).where(Robot.state == "released")) or 0
    return {
        "total": len(rows),
        "released": released,
        "by_personality": {
            p: {**counts, "identity": PERSONALITIES[p].identity if p in PERSONALITIES else p}
            for p, counts in by.items()
        },
        "robots": [
            {
                "id": r.id,
                "personality": r.personality,
                "state": r.state,
                "match": r.match_id,
                "round": r.round,
            }
            for r in rows
        ],
    }


def instances(session: Session) -> dict[str, dict[str, Any]]:
    """Every robot instance the store holds (released ones too): id → what the compacted
    `robot-pool-state` topic says of it."""
    return {
        r.id: {
            "personality": r.personality,
            "state": r.state,
            "match_id": r.match_id,
            "round": r.round,
        }
        for r in session.scalars(select(Robot).order_by(Robot.id))
    }
