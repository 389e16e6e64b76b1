"""The FastAPI application: JSON API under /api, web pages, /metrics; services in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kibitz import __version__, topics
from kibitz.api import (
    errors,
    routes_analysis,
    routes_games,
    routes_health,
    routes_live,
    routes_matches,
    routes_ops,
    routes_problems,
    routes_session,
    routes_training,
    web,
)
from kibitz.api.guard import RequestGuard
from kibitz.api.progress import TopicHub
from kibitz.errors import UpstreamUnavailable
from kibitz.runtime.bootstrap import Container
from kibitz.services import ingest

log = logging.getLogger("kibitz.api")

HERE = Path(__file__).parent


async def _start(
    app: FastAPI, container: Container, services: list[str] | None, *, patient: bool
) -> None:
    """Start the store, the log and `services` (when `patient`, waiting for the store and the
    log while they are unreachable), then the demo and the live hubs."""
    await container.start(services, patient=patient)
    if container.settings.database_url.startswith("sqlite"):
        # Embedded: one process owns the store, so an import still queueing its games was
        # interrupted when the last one died; fail it now with a reason, not in minutes.
        await ingest.fail_interrupted_imports(container.ctx, 0)
    if container.settings.demo:
        from kibitz.demo import analyse_demo, load_demo

        import_id = await load_demo(container.ctx, container.reader)
        if import_id is not None:
            app.state.demo = asyncio.create_task(
                analyse_demo(container.ctx, container.reader, import_id)
            )
    for hub in app.state.hubs:
        hub.start()
    # Everything built to start is kept for the process's life: out of the collector's
    # sight, a full collection under load scans only what requests make (shorter pauses).
    gc.freeze()


@asynccontextmanager
async def _lifespan(
    app: FastAPI, container: Container, services: list[str] | None
) -> AsyncIterator[None]:
    """Start everything, then serve; when the store or the log cannot be reached, serve at
    once anyway (503 meanwhile, saying what it waits for) and start in the background as soon
    as they can be. Stop it all in reverse order."""
    app.state.failed = None
    app.state.demo = None

    async def start_when_possible() -> None:
        try:
            await _start(app, container, services, patient=True)
        except UpstreamUnavailable as exc:  # waited `upstream_wait` seconds: give up
            log.error("giving up: %s", exc.detail)
            app.state.failed = exc.detail
            os.kill(os.getpid(), signal.SIGTERM)  # `kibitz serve` exits 2 with the reason

    starting: asyncio.Task[None] | None = None
    try:
        await _start(app, container, services, patient=False)
    except UpstreamUnavailable as exc:
        log.warning("starting degraded: %s", exc.detail)
        container.waiting = exc.detail
        starting = asyncio.create_task(start_when_possible())
    try:
        yield
    finally:
        if starting is not None:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        if app.state.demo is not None:
            app.state.demo.cancel()
        for hub in app.state.hubs:
            await hub.stop()
        await container.close()


def create_app(container: Container, *, services: list[str] | None = None) -> FastAPI:
    """The app over `container`; its lifespan starts the store, the log and `services`."""

    app = FastAPI(
        title="kibitz",
        version=__version__,
        description="Event-driven chess analysis: ingest, analyse, live, problems, matches.",
        lifespan=lambda app: _lifespan(app, container, services),
        responses=errors.ERROR_RESPONSES,
    )
    app.state.container = container
    app.state.engine_start = asyncio.Lock()  # explore starts the engine where none runs
    event_log = container.ctx.event_log
    game_of = lambda payload: getattr(payload, "game_id", None)  # noqa: E731
    app.state.progress = TopicHub(event_log, [topics.ANALYSIS_PROGRESS], game_of, "progress")
    app.state.live = TopicHub(
        event_log, [topics.LIVE_MOVES, topics.COMMENTARY, topics.LIVE_SESSIONS], game_of, "live"
    )
    match_of = lambda payload: getattr(payload, "match_id", None)  # noqa: E731
    app.state.matches = TopicHub(event_log, [topics.MATCH_EVENTS], match_of, "matches")
    app.state.hubs = [app.state.progress, app.state.live, app.state.matches]

    def starting() -> str | None:
        if container.started:
            return None
        return f"waiting for {container.waiting}" if container.waiting else "starting"

    app.add_middleware(
        RequestGuard,
        token=container.settings.api_token,
        body_limit=container.settings.max_upload_bytes + 64 * 1024,
        starting=starting,
    )
    errors.install(app)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        """The tab icon (an SVG, which browsers take at this address too)."""
        return Response(
            (HERE / "static" / "favicon.svg").read_bytes(),
            media_type="image/svg+xml",
            headers={"Cache-Control": "max-age=86400"},
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if container.started:  # the cluster-wide gauges, as of this scrape
            try:
                await asyncio.wait_for(routes_ops.refresh_gauges(container), 10)
            except Exception as exc:  # the log or the store away: the rest is still served
                log.warning("cluster_gauges_unavailable error=%s", exc)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(routes_health.router)
    app.include_router(routes_session.router)
    app.include_router(routes_games.router)
    app.include_router(routes_analysis.router)
    app.include_router(routes_live.router)
    app.include_router(routes_problems.router)
    app.include_router(routes_matches.router)
    app.include_router(routes_training.router)
    app.include_router(routes_ops.router)
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
