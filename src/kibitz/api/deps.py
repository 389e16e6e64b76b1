"""FastAPI dependencies: the container and its context (the token is checked by the guard)."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from kibitz.errors import EngineUnavailable, UpstreamUnavailable
from kibitz.read.reader import Reader
from kibitz.runtime.bootstrap import Container
from kibitz.services.context import Context


def container(request: Request) -> Container:
    return cast(Container, request.app.state.container)


def context(request: Request) -> Context:
    return container(request).ctx


def reader(request: Request) -> Reader:
    """The read side."""
    return container(request).reader


async def ensure_engine(request: Request, who: str) -> None:
    """Start the engine in this process on first use when none runs here (the API of a
    distributed deployment): one pool, however many ask at once."""
    app = container(request)
    if app.ctx.evaluator.available:
        return
    async with request.app.state.engine_start:
        if not app.ctx.evaluator.available:
            try:
                await app.start_engines()
            except UpstreamUnavailable as exc:
                raise EngineUnavailable(f"{who} needs the engine: {exc.detail}") from None
