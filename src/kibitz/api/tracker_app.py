"""The tracker's own small HTTP interface (`kibitz run tracker` serves it on
KIBITZ_TRACKER_PORT): start tracking a player, and its health."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field

from kibitz.api import errors
from kibitz.errors import Unauthorized
from kibitz.services.tracker import Tracker


class StartTracking(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    profile: dict[str, Any] = Field(default_factory=dict)


def create_tracker_app(tracker: Tracker) -> FastAPI:
    app = FastAPI(title="kibitz tracker", description="Follows Lichess players' ongoing games.")
    errors.install(app)

    def token(request: Request) -> None:
        """Like the API's write endpoints: the API token when one is set."""
        expected = tracker.ctx.settings.api_token
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if expected and not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("this endpoint needs the API token (Authorization: Bearer …)")

    @app.post("/start-tracking", dependencies=[Depends(token)])
    async def start_tracking(body: StartTracking) -> dict[str, str]:
        """Start a tracking task for the player at once (so no first move is missed)."""
        status = await tracker.start(body.username, body.profile)
        return {"status": status, "username": body.username.strip()}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "active_trackers": tracker.active}

    return app
