"""The tracker's own small HTTP interface (`kibitz run tracker` serves it on
KIBITZ_TRACKER_PORT): start tracking a player, and its health."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from kibitz.api import errors
from kibitz.api.guard import RequestGuard
from kibitz.services.tracker import Tracker


class StartTracking(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    profile: dict[str, Any] = Field(default_factory=dict)


def create_tracker_app(tracker: Tracker) -> FastAPI:
    app = FastAPI(title="kibitz tracker", description="Follows Lichess players' ongoing games.")
    errors.install(app)
    # Like the API's write endpoints: the API token when one is set, checked before the body.
    app.add_middleware(RequestGuard, token=tracker.ctx.settings.api_token, body_limit=64 * 1024)

    @app.post("/start-tracking")
    async def start_tracking(body: StartTracking) -> dict[str, str]:
        """Start a tracking task for the player at once (so no first move is missed)."""
        status = await tracker.start(body.username, body.profile)
        return {"status": status, "username": body.username.strip()}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "active_trackers": tracker.active}

    return app
