"""`kibitz serve`, `kibitz run SERVICE`, `kibitz db upgrade`."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from typing import Annotated, Any

import typer

from kibitz.cli.common import (
    _fail,
    _logging,
    _run,
    _settings,
    app,
    console,
    db_app,
)
from kibitz.settings import Settings

KEEP_ALIVE_SECONDS = 75  # idle HTTP connections: longer than a proxy's usual 60 s


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    demo: Annotated[
        bool | None,
        typer.Option(help="Import the offline demo games on first start [default: KIBITZ_DEMO]."),
    ] = None,
    api_only: Annotated[
        bool, typer.Option(help="Serve the API and web UI only; services run as `kibitz run`.")
    ] = False,
) -> None:
    """Run the API, the web UI and (unless --api-only) every service in one process."""
    import uvicorn

    from kibitz.api.app import create_app
    from kibitz.runtime.bootstrap import bootstrap

    settings = _settings()
    if demo is not None:
        settings.demo = demo
    bind = host or settings.host
    _refuse_open_listen(bind, settings)
    _logging()
    if settings.upstream_wait == 0:  # no waiting for the store or the log: fail fast
        _run(lambda: _preflight(settings))
    application = create_app(bootstrap(settings), services=[] if api_only else None)
    console.print(f"kibitz on http://{bind}:{port or settings.port}  (home {settings.home})")
    uvicorn.run(
        application,
        host=bind,
        port=port or settings.port,
        log_level="warning",
        # Keep idle connections longer than clients and proxies do (httpx 5 s, nginx 60 s):
        # with uvicorn's 5 s, a client reusing a connection as the server closes it gets
        # "disconnected without a response" on a loaded machine.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    if application.state.failed:  # waited KIBITZ_UPSTREAM_WAIT seconds for the store or log
        raise _fail(application.state.failed)


async def _preflight(settings: Settings) -> None:
    """Reach the store and the log once before serving, so a bad URL is one clear line."""
    from kibitz.runtime.bootstrap import bootstrap

    container = bootstrap(settings.model_copy(update={"cpu_workers": 0}))
    try:
        await container.start([])
    finally:
        await container.close()


def _refuse_open_listen(bind: str, settings: Settings) -> None:
    """Exit 2 before listening on a non-loopback address without KIBITZ_API_TOKEN."""
    if not _is_loopback(bind) and not settings.api_token:
        raise _fail(
            f"refusing to listen on {bind} without KIBITZ_API_TOKEN: "
            "set a token, or listen on 127.0.0.1"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def run(
    service: Annotated[str, typer.Argument(help="A name from `kibitz services`.")],
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on this port [default: KIBITZ_METRICS_PORT]."),
    ] = None,
) -> None:
    """Run one service in this process (distributed mode: one process per service). While
    its store or log is unreachable it waits for them (up to KIBITZ_UPSTREAM_WAIT seconds);
    with a metrics port, `GET /health` there says how it is."""
    from kibitz.runtime.bootstrap import SERVICES, bootstrap
    from kibitz.runtime.health import ProcessHealth, serve_metrics_and_health

    if service not in SERVICES:
        raise _fail(f"no service {service!r}; `kibitz services` lists them")
    settings = _settings()
    _logging()
    port = metrics_port or settings.metrics_port
    if service == "tracker" or port is not None:  # it listens: its HTTP interface, its metrics
        _refuse_open_listen(settings.host, settings)
    health = ProcessHealth(service)
    if port is not None:
        try:
            serve_metrics_and_health(settings.host, port, health)  # /health; /metrics
        except OSError as exc:
            raise _fail(f"cannot serve metrics on {settings.host}:{port}: {exc}") from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        container = bootstrap(settings)
        http: asyncio.Task[None] | None = None
        watching = asyncio.create_task(health.watch(container))
        try:
            await container.start([service], patient=True)
            if service == "tracker":
                http = asyncio.create_task(_serve_tracker(container, settings, stop))
            console.print(f"service {service} running (Ctrl-C or SIGTERM stops it)")
            await stop.wait()
            if http is not None:
                await http
        finally:
            watching.cancel()
            # Finish in-flight work, commit, leave the group, stop the worker processes.
            await container.close()

    _run(main)


async def _serve_tracker(container: Any, settings: Settings, stop: asyncio.Event) -> None:
    """The tracker's own HTTP interface (POST /start-tracking, GET /health) until `stop`."""
    import contextlib
    from collections.abc import Iterator

    import uvicorn

    from kibitz.api.tracker_app import create_tracker_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # `run` handles the signals
            yield

    server = Server(
        uvicorn.Config(
            create_tracker_app(container.component("tracker")),
            host=settings.host,
            port=settings.tracker_port,
            log_level="warning",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    )
    serving = asyncio.create_task(server.serve())
    console.print(f"tracker on http://{settings.host}:{settings.tracker_port}")
    await stop.wait()
    server.should_exit = True
    await serving


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the store's migrations."""
    from kibitz.adapters.store_sql import SqlStore

    settings = _settings()
    try:
        SqlStore(settings.database_url).upgrade()
    except Exception as exc:
        raise _fail(f"cannot migrate {settings.database_url}: {exc}") from None
    console.print("store is at the latest schema")
