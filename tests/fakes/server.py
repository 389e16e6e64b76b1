"""What every local fake server shares: a Starlette app on a free port of 127.0.0.1, served by
uvicorn in a daemon thread until stopped."""

from __future__ import annotations

import threading

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from kibitz.runtime.cluster import free_port


class ThreadedServer:
    def __init__(self) -> None:
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, routes: list[Route]) -> None:
        """Start serving `routes`; returns once the server accepts connections."""
        self.port = free_port()
        config = uvicorn.Config(
            Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="critical"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started:
            threading.Event().wait(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
