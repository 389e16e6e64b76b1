"""FastAPI dependencies: the container and its context (the token is checked by the guard)."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from kibitz.errors import EngineUnavailable, UpstreamUnavailable
from kibitz.read.reader import Reader
from kibitz.runtime.bootstrap import Container
from kibitz.services.context import Context

# The dependencies are coroutines: FastAPI runs a plain function in a worker thread, which
# cost every request a hand-over to the thread pool and back.


async def container(request: Request) -> Container:
    return cast(Container, request.app.state.container)


async def context(request: Request) -> Context:
    return cast(Container, request.app.state.container).ctx


async def reader(request: Request) -> Reader:
    """The read side."""
    return cast(Container, request.app.state.container).reader


async def ensure_engine(request: Request, who: str) -> None:
    """Start the engine in this process on first use when none runs here (the API of a
    distributed deployment): one pool, however many ask at once."""
    app = cast(Container, request.app.state.container)
    if app.ctx.evaluator.available:
        return
    async with request.app.state.engine_start:
        if not app.ctx.evaluator.available:
            try:
                await app.start_engines()
            except UpstreamUnavailable as exc:
                raise EngineUnavailable(f"{who} needs the engine: {exc.detail}") from None
