"""The FastAPI application: JSON API under /api, web pages, /metrics; services in its lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kibitz import __version__, topics
from kibitz.api import (
    errors,
    routes_analysis,
    routes_games,
    routes_live,
    routes_matches,
    routes_ops,
    routes_problems,
    web,
)
from kibitz.api.guard import RequestGuard
from kibitz.api.progress import TopicHub
from kibitz.read import models
from kibitz.runtime.bootstrap import Container
from kibitz.services import ingest

log = logging.getLogger("kibitz.api")

HERE = Path(__file__).parent


def create_app(container: Container, *, services: list[str] | None = None) -> FastAPI:
    """The app over `container`; its lifespan starts the store, the log and `services`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await container.start(services)
        if container.settings.database_url.startswith("sqlite"):
            # Embedded: one process owns the store, so an import still queueing its games was
            # interrupted when the last one died; fail it now with a reason, not in minutes.
            await ingest.fail_interrupted_imports(container.ctx, 0)
        demo: asyncio.Task[list[str]] | None = None
        if container.settings.demo:
            from kibitz.demo import analyse_demo, load_demo

            import_id = await load_demo(container.ctx, container.reader)
            if import_id is not None:
                demo = asyncio.create_task(analyse_demo(container.ctx, container.reader, import_id))
        for hub in hubs:
            hub.start()
        # Everything built to start is kept for the process's life: out of the collector's
        # sight, a full collection under load scans only what requests make (shorter pauses).
        gc.freeze()
        try:
            yield
        finally:
            if demo is not None:
                demo.cancel()
            for hub in hubs:
                await hub.stop()
            await container.close()

    app = FastAPI(
        title="kibitz",
        version=__version__,
        description="Event-driven chess analysis: ingest, analyse, live, problems, matches.",
        lifespan=lifespan,
        responses=errors.ERROR_RESPONSES,
    )
    app.state.container = container
    event_log = container.ctx.event_log
    game_of = lambda payload: getattr(payload, "game_id", None)  # noqa: E731
    app.state.progress = TopicHub(event_log, [topics.ANALYSIS_PROGRESS], game_of, "progress")
    app.state.live = TopicHub(
        event_log, [topics.LIVE_MOVES, topics.COMMENTARY, topics.LIVE_SESSIONS], game_of, "live"
    )
    hubs = [app.state.progress, app.state.live]
    app.add_middleware(
        RequestGuard,
        token=container.settings.api_token,
        body_limit=container.settings.max_upload_bytes + 64 * 1024,
    )
    errors.install(app)

    @app.get(
        "/api/health",
        tags=["ops"],
        response_model=models.Health,
        responses={503: {"model": models.Health, "description": "a component is down"}},
    )
    async def health() -> JSONResponse:
        """Each component's state; 503 naming the failing one when any is down."""
        components: dict[str, str] = {}
        checks = {
            "store": container.sql.ping(),
            "bus": container.ctx.event_log.ping(),
        }
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check, 5)
                components[name] = "ok"
            except Exception as exc:
                components[name] = f"down: {type(exc).__name__}: {exc}"[:200]
        try:
            components["services"] = await asyncio.wait_for(services_state(), 5)
        except Exception as exc:
            components["services"] = f"unknown: {type(exc).__name__}"[:200]
        engine = container.settings.stockfish_path()
        if engine and (os.access(engine, os.X_OK) or shutil.which(engine)):
            components["engine"] = "ok"
        else:
            components["engine"] = "down: no Stockfish found (set KIBITZ_STOCKFISH)"
        ok = all(v == "ok" for v in components.values())
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "components": components},
            status_code=200 if ok else 503,
        )

    async def services_state() -> str:
        """ "ok", or which services are stopped: in this process, a service task that ended;
        elsewhere (`--api-only`), a consumer group that has run and has no live member."""
        if container.supervisor is not None and container.services:
            stopped = sorted(n for n, alive in container.supervisor.alive().items() if not alive)
            return f"down: stopped: {', '.join(stopped)}" if stopped else "ok"
        dead = await routes_ops.groups_without_members(app.state, container)
        return f"down: no live member in {', '.join(dead)}" if dead else "ok"

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(routes_games.router)
    app.include_router(routes_analysis.router)
    app.include_router(routes_live.router)
    app.include_router(routes_problems.router)
    app.include_router(routes_matches.router)
    app.include_router(routes_ops.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
