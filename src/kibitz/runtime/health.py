"""`kibitz run SERVICE`'s own HTTP port: Prometheus metrics, and `GET /health` saying whether
the process runs or what it waits for (its store, its log), as `/api/health` does for `serve`."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

CHECK_EVERY = 2.0  # seconds between the store and log checks of a running process


def starting_state(waiting: str | None) -> str:
    """The services' state while the process starts (and what it waits for)."""
    return f"down: starting{f', waiting for {waiting}' if waiting else ''}"[:300]


async def ping_upstreams(container: Any) -> dict[str, str]:
    """ "ok" or "down: why" for the store and the log, each given 5 s to answer. Both are
    asked at once: on a busy event loop every await costs a turn of it."""
    checks = {"store": container.sql.ping(), "bus": container.ctx.event_log.ping()}
    answers = await asyncio.gather(
        *(asyncio.wait_for(check, 5) for check in checks.values()), return_exceptions=True
    )
    return {
        name: "ok"
        if not isinstance(answer, BaseException)
        else f"down: {type(answer).__name__}: {answer}"[:200]
        for name, answer in zip(checks, answers, strict=True)
    }


class ProcessHealth:
    """What `GET /health` answers, kept up to date by `watch` on the process's event loop
    (the HTTP server's threads only read it)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.components: dict[str, str] = {"services": "down: starting"}

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        components = dict(self.components)
        ok = all(v == "ok" for v in components.values())
        body = {"status": "ok" if ok else "degraded", "service": self.service}
        return (200 if ok else 503), {**body, "components": components}

    async def watch(self, container: Any) -> None:
        """Until cancelled: what the container waits for while it starts, then a ping of the
        store and the log and whether the service's task still runs, every few seconds."""
        while True:
            if container.supervisor is None:  # still starting
                self.components = {"services": starting_state(container.waiting)}
            else:
                components = await ping_upstreams(container)
                stopped = sorted(n for n, up in container.supervisor.alive().items() if not up)
                components["services"] = f"down: stopped: {', '.join(stopped)}" if stopped else "ok"
                self.components = components
            await asyncio.sleep(CHECK_EVERY)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve_metrics_and_health(host: str, port: int, health: ProcessHealth) -> None:
    """Serve `/health` and (any other path) the Prometheus metrics on `host:port`, from
    daemon threads; OSError when the port cannot be had."""
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health":
            status, body = health.snapshot()
            data = json.dumps(body).encode()
            reason = "OK" if status == 200 else "Service Unavailable"
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
            start_response(f"{status} {reason}", headers)
            return [data]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    server = make_server(host, port, app, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
