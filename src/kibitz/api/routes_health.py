"""`GET /api/health`: each component's state; 503 naming the failing one when any is down."""

from __future__ import annotations

import asyncio
import os
import shutil

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from kibitz.api import routes_ops
from kibitz.api.deps import container
from kibitz.read import models
from kibitz.runtime.bootstrap import Container
from kibitz.runtime.health import ping_upstreams, starting_state

router = APIRouter(tags=["ops"])


@router.get(
    "/api/health",
    response_model=models.Health,
    responses={503: {"model": models.Health, "description": "a component is down"}},
)
async def health(request: Request, app: Container = Depends(container)) -> JSONResponse:
    """Each component's state; 503 naming the failing one when any is down."""
    components = await ping_upstreams(app)
    if not app.started:  # a patient start still waits for the store or the log
        components["services"] = starting_state(app.waiting)
    else:
        try:
            components["services"] = await asyncio.wait_for(services_state(request, app), 5)
        except Exception as exc:
            components["services"] = f"unknown: {type(exc).__name__}"[:200]
    engine = app.settings.stockfish_path()
    if engine and (os.access(engine, os.X_OK) or shutil.which(engine)):
        components["engine"] = "ok"
    else:
        components["engine"] = "down: no Stockfish found (set KIBITZ_STOCKFISH)"
    ok = all(v == "ok" for v in components.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "components": components},
        status_code=200 if ok else 503,
    )


async def services_state(request: Request, app: Container) -> str:
    """ "ok", or which services are stopped: in this process, a service task that ended;
    elsewhere (`--api-only`), a consumer group that has run and has no live member."""
    if app.supervisor is not None and app.services:
        stopped = sorted(n for n, alive in app.supervisor.alive().items() if not alive)
        return f"down: stopped: {', '.join(stopped)}" if stopped else "ok"
    dead = await routes_ops.groups_without_members(request.app.state, app)
    return f"down: no live member in {', '.join(dead)}" if dead else "ok"
